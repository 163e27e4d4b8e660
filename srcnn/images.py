"""Image files as users have them: grey, colour or colour+alpha, 8 or 16 bits, upright by EXIF; atomic writes."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

import srcnn_dynamic as sd
from srcnn.headers import read_header

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")  # what --image DIR picks up
DEPTHS = (np.dtype(np.uint8), np.dtype(np.uint16))  # what files hold and results keep


@dataclass(frozen=True)
class Picture:
    """An image file's pixels as the model takes them, and what it takes to write a result in the same format."""

    rgb: torch.Tensor  # (1, 3, H, W) float32 in [0, 1]; a grey image as three equal channels
    alpha: torch.Tensor | None  # (1, 1, H, W) float32 in [0, 1], or None
    grey: bool
    dtype: np.dtype  # uint8 or uint16, as in the file


def read_picture(path: Path) -> Picture:
    """Read a grey, colour or colour+alpha image of 8 or 16 bits; one-line SrcnnError for anything else.

    Its header is read first: an image that declares more than sd.MAX_INPUT_PIXELS is refused before decoding.
    """
    header = read_header(path)
    if header.height * header.width > sd.MAX_INPUT_PIXELS:
        raise sd.SrcnnError(f"{path} declares {header.height}x{header.width} pixels, over the limit of"
                            f" {sd.MAX_INPUT_PIXELS:,} for any input")
    pixels = sd.decode_image(path, cv2.IMREAD_UNCHANGED)  # keeps grey, alpha and 16 bits, but ignores EXIF
    if pixels.ndim == 2 or pixels.shape[2] != 4:
        # Without alpha, ANYDEPTH | ANYCOLOR keeps grey and 16 bits and turns the picture upright by its EXIF
        # orientation (phone photos), as image viewers do. (OpenCV applies EXIF only when it drops alpha.)
        pixels = sd.decode_image(path, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)
    if pixels.dtype not in DEPTHS:
        raise sd.SrcnnError(f"{path} has {pixels.dtype} pixels; 8-bit and 16-bit images are supported")
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    if channels not in (1, 3, 4):
        raise sd.SrcnnError(f"{path} has {channels} channels; grey, colour and colour+alpha are supported")
    rgb = np.repeat(pixels[:, :, None], 3, axis=2) if channels == 1 else pixels[:, :, 2::-1]  # BGR(A) -> RGB
    alpha = sd.pixels_to_tensor(pixels[:, :, 3:]) if channels == 4 else None  # (1, 1, H, W)
    return Picture(sd.pixels_to_tensor(rgb), alpha, channels == 1, pixels.dtype)


def upscale_alpha(alpha: torch.Tensor, factor: sd.Factor) -> np.ndarray:
    """The alpha channel upscaled by the model's own bicubic resize, clamped to [0, 1]: (1, 1, H', W')."""
    return sd.bicubic_resize(alpha, factor.tensor()).clamp(0.0, 1.0).numpy()


def picture_pixels(rgb: np.ndarray, like: Picture, alpha: np.ndarray | None = None) -> np.ndarray:
    """(1, 3, H, W) RGB float result -> the (H, W[, C]) array OpenCV writes, in `like`'s channels and bit depth.

    A grey input comes back grey (BT.601 luma of the result: its three channels differ only slightly), an input
    with alpha gets `alpha` (see upscale_alpha) back, and 16-bit inputs come back 16-bit.
    """
    pixels = sd.tensor_to_pixels(rgb, like.dtype.type)  # (H, W, 3) RGB
    if like.grey:
        return cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
    bgr = pixels[:, :, ::-1]
    if alpha is None:
        return np.ascontiguousarray(bgr)
    return np.dstack([bgr, sd.tensor_to_pixels(alpha, like.dtype.type)])  # (H, W, 4)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside `path`, moved into place if the block succeeds and removed in any case."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_image(path: Path, pixels: np.ndarray) -> None:
    """Write an (H, W[, C]) OpenCV array (grey, BGR or BGRA) in the format of `path`'s suffix: whole or not at all."""
    ok, encoded = cv2.imencode(path.suffix or ".png", pixels)
    if not ok:
        raise sd.SrcnnError(f"OpenCV cannot encode an image as {path.suffix!r} for {path}")
    try:
        with atomic_path(path) as tmp:
            tmp.write_bytes(encoded.tobytes())
    except OSError as exc:  # a full disk or a read-only folder: nothing half-written is left
        raise sd.SrcnnError(f"cannot write {path}: {exc.strerror or exc}") from None


def write_picture(path: Path, rgb: np.ndarray, like: Picture, alpha: np.ndarray | None = None) -> None:
    """Write a result in the format of `like` (channels, depth) and of `path`'s suffix; whole or not at all."""
    write_image(path, picture_pixels(rgb, like, alpha))


def image_paths(image: Path, option: str = "--image") -> list[Path]:
    """[image] for a file; the images in a folder (by suffix, sorted) for a folder. `option` names it in errors."""
    if not image.is_dir():
        return [image]
    # Special files (a FIFO named photo.png) are listed too, so that they are refused and named, never read.
    paths = sorted(p for p in image.iterdir() if not p.is_dir() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise sd.SrcnnError(f"{option} {image}: the folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return paths
