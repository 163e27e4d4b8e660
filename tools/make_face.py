"""Make face.png: a 256x256 crop of the face in scikit-image's bundled `astronaut` photo.

`astronaut` is a public-domain NASA portrait of Eileen Collins shipped inside the scikit-image wheel, so the
project's demo image needs no download. The crop is taken at full resolution (no resampling), so face.png is
real camera detail for the super-resolution demo. `astronaut` is the held-out face: keep it out of training.

    python tools/make_face.py            # rewrites face.png in the repository root
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from skimage import data

FACE_TOP, FACE_LEFT = 0, 97  # top-left corner of the crop in astronaut (512x512): centres the face horizontally
FACE_SIZE = 256  # the tutorial's demo runs on a 256x256 face; x3 gives 768x768 and x4 gives 1024x1024


def face_crop() -> np.ndarray:
    """The face as an RGB uint8 array of shape (FACE_SIZE, FACE_SIZE, 3)."""
    astronaut = data.astronaut()  # (512, 512, 3) RGB uint8
    return astronaut[FACE_TOP : FACE_TOP + FACE_SIZE, FACE_LEFT : FACE_LEFT + FACE_SIZE].copy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = Path(__file__).resolve().parent.parent / "face.png"
    parser.add_argument("output", nargs="?", type=Path, default=default, help=f"where to write (default: {default})")
    args = parser.parse_args()
    if not cv2.imwrite(str(args.output), cv2.cvtColor(face_crop(), cv2.COLOR_RGB2BGR)):
        raise SystemExit(f"error: could not write {args.output}")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
