"""Why a soft photo at x2 and a sharp one at x3 or x4 pull the shared model in opposite directions.

    python tools/soft_conflict.py
    python tools/soft_conflict.py --figure docs/soft_conflict.png   # the face: two inputs alike, two targets apart

The convolutions never see the factor: they see the bicubic-upsampled image. For each blur sigma, this prints
how close (Y-PSNR, dB) the upsampled x2 input of the validation photos blurred by sigma is to the upsampled input
of the sharp photos at each factor of data.EVAL_FACTORS, and how close the two targets (the blurred photo and the
sharp one) are. Where the inputs agree far better than the targets, one filter must map nearly the same input to
two different outputs: sharpening it helps the sharp photo and hurts the soft one. docs/training.md quotes it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere: the project's modules

import srcnn.startup  # noqa: F401, E402, I001 - first: a signal while the libraries load exits quietly
import evaluate  # noqa: E402
import srcnn_dynamic as sd  # noqa: E402
from srcnn import data  # noqa: E402
from srcnn.errors import run_guarded  # noqa: E402
from srcnn.images import write_image  # noqa: E402
from srcnn.plan import check_output_file  # noqa: E402

SIGMAS = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5)  # srcnn.recipe.SOFT_SIGMAS spans 0.5 to 2.5; the soft case is data.SOFT_SIGMA
SOFT_FACTOR = sd.Factor(2.0, 2.0)  # the soft case's factor
CROP = sd.Factor(4.0, 4.0)  # psnr_y crops ceil(factor) border pixels: the largest factor's, for every pair


def upsampled(photo: torch.Tensor, factor: sd.Factor) -> torch.Tensor:
    """What the convolutions see: the photo degraded at `factor`, then bicubic-upsampled (1, 3, H', W')."""
    lr, _ = data.make_pair(photo, factor)
    return evaluate.bicubic(lr, factor)


def psnr_y_common(a: torch.Tensor, b: torch.Tensor) -> float:
    """Y-PSNR of two images over the top-left region they share (make_pair crops each factor differently)."""
    height, width = min(a.shape[2], b.shape[2]), min(a.shape[3], b.shape[3])
    return data.psnr_y(a[:, :, :height, :width], b[:, :, :height, :width], CROP)


def agreement(photos: list[torch.Tensor], sigmas: tuple[float, ...]) -> list[tuple[dict[str, float], float]]:
    """For each sigma: the mean Y-PSNR of the photos' soft x2 input (blurred by sigma) against their sharp input at
    each factor of data.EVAL_FACTORS, and of the soft target (the blurred photo) against the sharp one."""
    sharp_inputs = {tag: [upsampled(p, sd.Factor.parse(tag)) for p in photos] for tag in data.EVAL_FACTORS}  # once
    results = []
    for sigma in sigmas:
        soft = [data.gaussian_blur(p, sigma) for p in photos]
        soft_inputs = [upsampled(s, SOFT_FACTOR) for s in soft]
        inputs = {tag: float(np.mean([psnr_y_common(s, x) for s, x in zip(soft_inputs, sharp)]))
                  for tag, sharp in sharp_inputs.items()}
        results.append((inputs, float(np.mean([psnr_y_common(s, p) for s, p in zip(soft, photos)]))))
    return results


def table(photos: list[torch.Tensor]) -> str:
    """agreement() at each of SIGMAS, as a markdown table."""
    lines = ["| blur sigma | " + " | ".join(f"input vs sharp x{tag}" for tag in data.EVAL_FACTORS)
             + " | target vs sharp |", "|" + "---|" * (2 + len(data.EVAL_FACTORS))]
    for sigma, (inputs, target) in zip(SIGMAS, agreement(photos, SIGMAS)):
        lines.append(f"| {sigma:g} | " + " | ".join(f"{v:.1f}" for v in inputs.values()) + f" | {target:.1f} |")
    return "\n".join(lines)


FIGURE_SIGMA = data.SOFT_SIGMA  # the soft case's blur
FIGURE_SHARP = sd.Factor(3.0, 3.0)  # the sharp photo's factor: its input looks like the soft one's at x2
FIGURE_CROP = (slice(70, 198), slice(176, 320))  # rows, columns of astronaut: the face
FIGURE_ZOOM = 2


def figure(path: Path) -> None:
    """The face: the convolutions' input for the soft photo at x2 and for the sharp one at x3 (alike), above the
    targets each must produce (apart), each pair's Y-PSNR in its caption."""
    face = data.load_photo_tensor("astronaut")
    soft = data.gaussian_blur(face, FIGURE_SIGMA)
    inputs = (upsampled(soft, SOFT_FACTOR), upsampled(face, FIGURE_SHARP))
    panels = [(inputs[0], f"input: soft photo, x{SOFT_FACTOR.tag}"),
              (inputs[1], f"input: sharp photo, x{FIGURE_SHARP.tag}"),
              (soft, "target: the soft photo"), (face, "target: the sharp photo")]
    tiles = []
    for image, label in panels:
        pixels = sd.tensor_to_pixels(image.numpy())[:, :, ::-1][FIGURE_CROP]  # BGR, as OpenCV writes
        tile = cv2.resize(np.ascontiguousarray(pixels), None, fx=FIGURE_ZOOM, fy=FIGURE_ZOOM,
                          interpolation=cv2.INTER_NEAREST)
        tiles.append(evaluate._label(tile, label))
    rows = [np.concatenate(tiles[:2], axis=1), np.concatenate(tiles[2:], axis=1)]
    captions = [f"the inputs: {psnr_y_common(*inputs):.1f} dB alike", f"the targets: {psnr_y_common(soft, face):.1f}"
                " dB alike"]
    band = [evaluate._label(np.zeros((22, rows[0].shape[1], 3), np.uint8), text) for text in captions]
    write_image(path, np.concatenate([band[0], rows[0], band[1], rows[1]], axis=0))
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    parser = sd.OneLineErrorParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--figure", type=Path, metavar="PATH",
                        help="draw the face's soft x2 and sharp x3 inputs and their targets to PATH (.png) instead")
    args = parser.parse_args(argv)

    def work() -> int:
        if args.figure:
            check_output_file(args.figure, "--figure", suffixes=(".png",))
            figure(args.figure)
        else:
            print(table([data.load_photo_tensor(n) for n in data.VALIDATION_PHOTOS]))
        return sd.EXIT_OK

    return run_guarded(work)


if __name__ == "__main__":
    sys.exit(main())
