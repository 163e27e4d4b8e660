"""Real-world images: grey stays grey, alpha is kept, 16 bits stay 16 bits, the suffix decides the format;
--image DIR does every image and skips (and names) the bad ones."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import cli_env

import srcnn_dynamic as sd
from srcnn import app, core, errors, headers, images

ROOT = Path(__file__).resolve().parent.parent
FACTOR = sd.Factor.parse("2.5")
SIZE = (24, 20)  # (height, width) -> 60x50 at x2.5


def face(size: tuple[int, int] = SIZE) -> np.ndarray:
    """A small BGR uint8 crop of face.png."""
    return cv2.resize(cv2.imread(str(ROOT / "face.png")), (size[1], size[0]), interpolation=cv2.INTER_AREA)


def make(kind: str, folder: Path) -> Path:
    """Write one test image of `kind`; return its path."""
    bgr = face()
    if kind == "grey":
        path, pixels = folder / "grey.png", cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    elif kind == "rgba":
        alpha = np.tile(np.linspace(0, 255, SIZE[1]).astype(np.uint8), (SIZE[0], 1))  # a left-to-right fade
        path, pixels = folder / "rgba.png", np.dstack([bgr, alpha])
    elif kind == "deep":
        path, pixels = folder / "deep.png", bgr.astype(np.uint16) * 257  # 16-bit, full range
    elif kind == "deep-grey":
        path, pixels = folder / "deep-grey.tiff", cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.uint16) * 257
    elif kind == "jpeg":
        path, pixels = folder / "photo.jpg", bgr
    else:
        raise ValueError(kind)
    assert cv2.imwrite(str(path), pixels), f"could not write {path}"
    return path


# kind -> (output suffix, ndim, channels, dtype)
EXPECTED = {
    "grey": (".png", 2, 1, np.uint8),
    "rgba": (".png", 3, 4, np.uint8),
    "deep": (".png", 3, 3, np.uint16),
    "deep-grey": (".tiff", 2, 1, np.uint16),
    "jpeg": (".jpg", 3, 3, np.uint8),
}


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_result_keeps_the_input_format(kind, tmp_path) -> None:
    path = make(kind, tmp_path)
    report = app.run(path, [FACTOR], output_dir=tmp_path / "out", check=True)
    assert [r.ok for r in report.comparisons] == [True], f"{kind}: {report.comparisons}"
    suffix, ndim, channels, dtype = EXPECTED[kind]
    for runtime in ("torch", "ort"):
        out = tmp_path / "out" / f"{path.stem}_{runtime}_2.5{suffix}"
        assert out.is_file(), f"{kind}: {out.name} missing; got {sorted(p.name for p in out.parent.iterdir())}"
        pixels = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
        got = (pixels.ndim, 1 if pixels.ndim == 2 else pixels.shape[2], pixels.dtype, pixels.shape[:2])
        assert got == (ndim, channels, dtype, (60, 50)), f"{kind} {runtime}: (ndim, channels, dtype, size) = {got}"


def test_alpha_is_upscaled_with_the_same_bicubic(tmp_path) -> None:
    path = make("rgba", tmp_path)
    app.run(path, [FACTOR], output_dir=tmp_path / "out")
    out = cv2.imread(str(tmp_path / "out" / "rgba_x2.5.png"), cv2.IMREAD_UNCHANGED)
    alpha_in = torch.from_numpy(cv2.imread(str(path), cv2.IMREAD_UNCHANGED)[:, :, 3].astype(np.float32) / 255)
    expected = np.rint(sd.bicubic_resize(alpha_in[None, None], FACTOR.tensor()).clamp(0, 1)[0, 0].numpy() * 255)
    diff = np.abs(out[:, :, 3].astype(float) - expected).max()
    assert diff <= 1, f"alpha differs from its bicubic upscale by {diff} grey levels"
    assert out[:, 0, 3].mean() < 20 and out[:, -1, 3].mean() > 235, "the left-to-right fade must survive"


def test_sixteen_bits_keep_their_precision(tmp_path) -> None:
    """A 16-bit result uses the fine levels: not an 8-bit image multiplied by 257."""
    path = make("deep", tmp_path)
    app.run(path, [FACTOR], output_dir=tmp_path / "out")
    out = cv2.imread(str(tmp_path / "out" / "deep_x2.5.png"), cv2.IMREAD_UNCHANGED)
    assert np.count_nonzero(out % 257) > out.size // 2, "16-bit output holds only 8-bit levels"


def test_grey_input_is_three_equal_channels() -> None:
    picture = images.read_picture(ROOT / "face.png")
    assert not picture.grey and picture.alpha is None and picture.dtype == np.uint8


def test_folder_mode_skips_a_bad_file_and_says_so(tmp_path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for kind in ("grey", "rgba", "jpeg"):
        make(kind, folder)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (folder / "notes.txt").write_text("not an image, and not picked up: wrong suffix")
    done = subprocess.run(
        [sys.executable, "-m", "srcnn", "--image", str(folder), "--factor", "2", "--output-dir", "out"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, env=cli_env(),
    )
    assert done.returncode == errors.EXIT_SKIPPED, f"exit {done.returncode}, expected {errors.EXIT_SKIPPED}\n{done.stderr}"
    assert "broken.png" in done.stderr and "Traceback" not in done.stderr, done.stderr
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["grey_x2.png", "photo_x2.jpg", "rgba_x2.png"], written
    assert done.stderr.count("broken.png") == 1, f"the skipped file must be named once:\n{done.stderr}"
    assert "upscaled 3 images into 3 results" in done.stdout and "1 skipped" in done.stdout, done.stdout


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp", ".tif"])
def test_exif_orientation_is_applied_once(tmp_path, suffix) -> None:
    """A photo stored sideways with EXIF orientation 6 (turn 90 degrees clockwise) is read upright, as viewers show
    it, whatever its format (OpenCV turns TIFFs itself): the same pixels as Pillow's exif_transpose."""
    from PIL import Image, ImageOps  # Pillow comes with the test extra

    path = tmp_path / f"phone{suffix}"
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the stored 20x40 picture is shown turned, 40x20
    Image.fromarray(face((20, 40))[:, :, ::-1]).save(path, exif=exif, **({"quality": 95} if suffix == ".jpg" else {}))
    got = images.read_picture(path).rgb
    assert got.shape == (1, 3, 40, 20), f"{suffix}: EXIF orientation ignored, {got.shape}"
    with Image.open(path) as stored:
        shown = np.asarray(ImageOps.exif_transpose(stored).convert("RGB"), np.float32) / 255
    diff = float(np.abs(got[0].transpose(1, 2, 0) - shown).max())
    assert diff < 1 / 255 + 1e-6, f"{suffix}: turned the wrong way (max difference {diff:.3f} from Pillow's view)"


def test_a_jpeg_with_fill_bytes_before_a_marker_is_read(tmp_path) -> None:
    """The JPEG standard allows 0xFF fill bytes before any marker; OpenCV and Pillow read such files, so must we."""
    ok, encoded = cv2.imencode(".jpg", face((30, 40)))
    data = encoded.tobytes()
    padded = data.replace(b"\xff\xc0", b"\xff\xff\xff\xff\xc0", 1)  # fill bytes before the frame header
    assert padded != data, "the baseline frame header must be there to pad"
    (tmp_path / "padded.jpg").write_bytes(padded)
    header = headers.read_header(tmp_path / "padded.jpg")
    assert (header.height, header.width) == (30, 40), header
    assert images.read_picture(tmp_path / "padded.jpg").rgb.shape == (1, 3, 30, 40)


@pytest.mark.parametrize("length", [0, 1])
def test_a_jpeg_segment_declaring_length_0_or_1_is_refused_at_once(tmp_path, length) -> None:
    path = tmp_path / "bad.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0" + length.to_bytes(2, "big") + b"\0" * 100_000)
    with pytest.raises(core.SrcnnError, match=f"declares a length of {length}") as info:
        headers.read_header(path)
    assert "\n" not in str(info.value)
