"""Make face.png: a 256x256 crop of the face in scikit-image's bundled `astronaut` photo.

`astronaut` is a public-domain NASA portrait of Eileen Collins shipped inside the scikit-image wheel, so the
project's demo image needs no download. The crop is taken at full resolution (no resampling), so face.png is
real camera detail for the super-resolution demo. `astronaut` is the held-out face: keep it out of training.

    python tools/make_face.py            # rewrites face.png in the repository root

The output is written whole or not at all; a folder, a file where a folder should be, or a name without an image
suffix is refused in one line (exit 2).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from skimage import data

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from anywhere: the project's modules
import srcnn.startup  # noqa: F401, E402, I001 - first: a signal while the libraries load exits quietly
from srcnn.core import EXIT_OK, OneLineErrorParser, SrcnnError  # noqa: E402
from srcnn.errors import run_guarded  # noqa: E402
from srcnn.images import IMAGE_SUFFIXES, write_image  # noqa: E402
from srcnn.plan import check_output_file  # noqa: E402

FACE_TOP, FACE_LEFT = 0, 97  # top-left corner of the crop in astronaut (512x512): centres the face horizontally
FACE_SIZE = 256  # the tutorial's demo runs on a 256x256 face; x3 gives 768x768 and x4 gives 1024x1024
ASTRONAUT_FILE = Path(data.data_dir) / "astronaut.png"  # the input: never written over


def face_crop() -> np.ndarray:
    """The face as an RGB uint8 array of shape (FACE_SIZE, FACE_SIZE, 3)."""
    astronaut = data.astronaut()  # (512, 512, 3) RGB uint8
    return astronaut[FACE_TOP : FACE_TOP + FACE_SIZE, FACE_LEFT : FACE_LEFT + FACE_SIZE].copy()


def write_face(output: Path) -> int:
    """Check `output`, then write the face there; return the exit code."""
    try:
        check_output_file(output, "output", [ASTRONAUT_FILE], suffixes=IMAGE_SUFFIXES)
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a name too long to look up, or a folder that cannot be made
        raise SrcnnError(f"cannot write {output}: {exc.strerror or exc}") from None
    write_image(output, cv2.cvtColor(face_crop(), cv2.COLOR_RGB2BGR))  # whole or not at all
    print(f"wrote {output}")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = OneLineErrorParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = ROOT / "face.png"
    parser.add_argument("output", nargs="?", type=Path, default=default, help=f"where to write (default: {default})")
    args = parser.parse_args(argv)
    return run_guarded(lambda: write_face(args.output))


if __name__ == "__main__":
    sys.exit(main())
