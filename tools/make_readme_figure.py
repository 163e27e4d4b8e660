"""Draw docs/parity.png: the face, PyTorch and ONNX Runtime results, and their difference, for the README.

    python tools/make_readme_figure.py [--weights PATH] [--out PATH]

--out and the weights are checked (one line on stderr, exit 2, nothing written) before anything is exported.
Exports the model once at x3 (TorchScript exporter), runs PyTorch and ONNX Runtime at x3 and at x4, and puts the
pictures side by side at one display size, with the ORT-PyTorch difference amplified so it can be seen.
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
import srcnn.startup  # noqa: F401, E402, I001 - first: a signal while the libraries load exits quietly
import srcnn_dynamic as sd  # noqa: E402
from srcnn.errors import run_guarded  # noqa: E402
from srcnn.images import IMAGE_SUFFIXES, read_picture, write_image  # noqa: E402
from srcnn.pytorch import run_torch  # noqa: E402
from srcnn.weights import load_model  # noqa: E402
from srcnn.plan import check_output_file  # noqa: E402

TILE = 256  # every panel is shown at this size, so the figure stays small; the files hold full resolution
DIFF_GAIN = 1e4  # |ORT - PyTorch| is ~1e-6 to 2e-5 on [0, 1]: multiply by 1e4 to make it visible


def panel(image: np.ndarray, label: str) -> np.ndarray:
    """(1, 3, H, W) RGB in [0, 1] -> labelled TILE x TILE BGR uint8 panel."""
    bgr = np.ascontiguousarray(sd.tensor_to_pixels(image)[:, :, ::-1])
    tile = cv2.resize(bgr, (TILE, TILE), interpolation=cv2.INTER_AREA)
    cv2.rectangle(tile, (0, 0), (TILE, 22), (0, 0, 0), thickness=-1)
    cv2.putText(tile, label, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def draw_figure(weights: Path, out: Path) -> int:
    """Run the model with `weights` in both runtimes and write the figure to `out`; return the exit code."""
    check_output_file(out, "--out", [weights, sd.DEFAULT_IMAGE])
    if out.suffix.lower() not in IMAGE_SUFFIXES:
        raise sd.SrcnnError(f"--out {out}: give an image suffix ({', '.join(IMAGE_SUFFIXES)})")
    model = load_model(weights)  # a missing, foreign or damaged file is named in one line, before the export
    image = read_picture(sd.DEFAULT_IMAGE).rgb  # (1, 3, H, W) numpy
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
    out.parent.mkdir(parents=True, exist_ok=True)
    write_image(out, np.concatenate(panels, axis=1))  # whole or not at all
    print(f"wrote {out} (max |ORT-PyTorch| at x3: {np.abs(ort3 - torch3).max():.2e})")
    return sd.EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = sd.OneLineErrorParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, default=sd.DEFAULT_WEIGHTS, metavar="PATH",
                        help="weights (default: the shipped weights/srcnn_dynamic.pth)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "parity.png", metavar="PATH",
                        help="the figure to write (default: docs/parity.png)")
    args = parser.parse_args(argv)
    return run_guarded(lambda: draw_figure(args.weights, args.out))


if __name__ == "__main__":
    sys.exit(main())
