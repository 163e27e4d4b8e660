"""face.png is exactly the documented crop of scikit-image's astronaut photo."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import make_face  # noqa: E402


def test_face_png_is_the_astronaut_crop() -> None:
    shipped = cv2.cvtColor(cv2.imread(str(ROOT / "face.png"), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    crop = make_face.face_crop()
    assert shipped.shape == (256, 256, 3), f"face.png is {shipped.shape}"
    assert np.array_equal(shipped, crop), f"face.png differs from the crop in {int((shipped != crop).sum())} values"
