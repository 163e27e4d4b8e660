"""Draw docs/parity.png: the face, PyTorch and ONNX Runtime results, and their difference, for the README.

    python tools/make_readme_figure.py [--weights PATH]

Exports the model once at x3 (TorchScript exporter), runs PyTorch and ONNX Runtime at x3 and at x4, and puts
the pictures side by side at one display size, with the ORT-PyTorch difference amplified so it can be seen.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import srcnn_dynamic as sd  # noqa: E402
from srcnn.images import read_picture, write_image  # noqa: E402
from srcnn.pytorch import run_torch  # noqa: E402
from srcnn.weights import load_model  # noqa: E402

TILE = 256  # every panel is shown at this size, so the figure stays small; the files hold full resolution
DIFF_GAIN = 1e4  # |ORT - PyTorch| is ~1e-6 to 2e-5 on [0, 1]: multiply by 1e4 to make it visible


def panel(image: np.ndarray, label: str) -> np.ndarray:
    """(1, 3, H, W) RGB in [0, 1] -> labelled TILE x TILE BGR uint8 panel."""
    bgr = np.ascontiguousarray(sd.tensor_to_pixels(image)[:, :, ::-1])
    tile = cv2.resize(bgr, (TILE, TILE), interpolation=cv2.INTER_AREA)
    cv2.rectangle(tile, (0, 0), (TILE, 22), (0, 0, 0), thickness=-1)
    cv2.putText(tile, label, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, default=sd.DEFAULT_WEIGHTS, metavar="PATH",
                        help="weights (default: the shipped weights/srcnn_dynamic.pth)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "parity.png", metavar="PATH")
    args = parser.parse_args()

    image = read_picture(sd.DEFAULT_IMAGE).rgb  # (1, 3, H, W) numpy
    model = load_model(args.weights)
    with tempfile.TemporaryDirectory() as tmp:
        session = sd.create_session(sd.export_onnx(model, Path(tmp) / "srcnn3.onnx"))  # as exported
        x3, x4 = sd.Factor.parse("3"), sd.Factor.parse("4")
        torch3, ort3 = run_torch(model, image, x3), sd.run_session(session, image, x3)
        ort4 = sd.run_session(session, image, x4)
    diff = np.abs(ort3 - torch3).max(axis=1, keepdims=True).repeat(3, axis=1) * DIFF_GAIN
    panels = [
        panel(image, "input 256x256"),
        panel(torch3, "PyTorch x3 (768x768)"),
        panel(ort3, "ONNX Runtime x3"),
        panel(ort4, "ONNX Runtime x4 (1024x1024)"),
        panel(diff, f"|ORT-PyTorch| x3, x{DIFF_GAIN:.0e}"),
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_image(args.out, np.concatenate(panels, axis=1))
    print(f"wrote {args.out} (max |ORT-PyTorch| at x3: {np.abs(ort3 - torch3).max():.2e})")


if __name__ == "__main__":
    main()
