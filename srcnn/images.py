"""Image files as users have them: grey, colour or colour+alpha, 8 or 16 bits, upright by EXIF; atomic writes."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

# first: srcnn.core sets OpenCV's pixel limit before cv2 loads
from srcnn.core import MAX_INPUT_PIXELS, SrcnnError, real_path

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from srcnn.headers import ImageHeader, grey_alpha_as_grey, read_header  # noqa: E402
from srcnn.metadata import Metadata, embed, read_metadata, upright  # noqa: E402

log = logging.getLogger("srcnn")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")  # what --image DIR picks up
DEPTHS = (np.dtype(np.uint8), np.dtype(np.uint16))  # what files hold and results keep


@dataclass(frozen=True)
class Picture:
    """An image file's pixels as the model takes them, and what it takes to write a result in the same format."""

    rgb: np.ndarray  # (1, 3, H, W) float32 in [0, 1]; a grey image as three equal channels
    alpha: np.ndarray | None  # (1, 1, H, W) float32 in [0, 1], or None
    grey: bool
    dtype: np.dtype  # uint8 or uint16, as in the file
    metadata: Metadata = field(default_factory=Metadata)  # EXIF, ICC profile, PNG text: carried to the results


def image_bytes(path: Path, header: ImageHeader) -> tuple[np.ndarray, bool]:
    """The bytes of `path` that decoding takes: up to the encoded end where the header gives it, and never over its
    read_limit; with True when the file goes on past that limit (its rest is left unread)."""
    size = path.stat().st_size
    if header.end is not None and header.end > header.read_limit:
        raise SrcnnError(f"{path} declares {header.end:,} bytes for a {header.height}x{header.width} picture, over"
                         f" the limit of {header.read_limit:,} for a picture of that size")
    end = size if header.end is None else min(header.end, size)
    count = min(end, header.read_limit)
    return np.fromfile(path, dtype=np.uint8, count=count), count < end  # fromfile also reads non-ASCII paths


def imdecode(path: Path, data: np.ndarray, flags: int, cut: bool = False) -> np.ndarray:
    """cv2.imdecode of `path`'s bytes `data` (`cut`: its first bytes only); one-line SrcnnError when it cannot."""
    try:
        pixels = cv2.imdecode(data, flags)
    except cv2.error:  # an empty file, or one whose header declares over MAX_INPUT_PIXELS: nothing was decoded
        raise SrcnnError(f"cannot read {path} as an image: empty, or over {MAX_INPUT_PIXELS:,} pixels") from None
    if pixels is None:
        read = f"; only its first {len(data):,} bytes were read, all that a picture of its size may take" if cut else ""
        raise SrcnnError(f"cannot read {path} as an image (OpenCV could not decode it{read})")
    return pixels


def decode_image(path: Path, flags: int, header: ImageHeader | None = None) -> np.ndarray:
    """A file's pixels as OpenCV decodes them with `flags`, reading no more of it than its header allows (read here
    unless given); one-line SrcnnError when it cannot."""
    if not path.is_file():  # a FIFO or a device would block the read
        raise SrcnnError(f"{path} is not an image file" if path.exists() else f"image not found: {path}")
    try:
        data, cut = image_bytes(path, read_header(path) if header is None else header)
    except OSError as exc:
        raise SrcnnError(f"cannot read {path}: {exc.strerror or exc}") from None
    return imdecode(path, data, flags, cut)


def decode_grey_alpha_tiff(path: Path, header: ImageHeader) -> np.ndarray:
    """A grey+alpha TIFF's pixels as BGRA, upright. OpenCV decodes a 2-sample TIFF as grey alone, so its directory
    is re-declared in memory as one grey sample twice as wide (srcnn.headers.grey_alpha_as_grey), and the
    interleaved samples are split here."""
    try:
        data, cut = image_bytes(path, header)
        layout = grey_alpha_as_grey(memoryview(data))
    except OSError as exc:
        raise SrcnnError(f"cannot read {path}: {exc.strerror or exc}") from None
    except SrcnnError as exc:
        raise SrcnnError(f"cannot read {path} as an image: {exc}") from None
    pixels = imdecode(path, data, cv2.IMREAD_UNCHANGED, cut)
    if pixels.shape != (header.height, 2 * header.width):
        raise SrcnnError(f"cannot read {path} as grey+alpha (OpenCV decoded {pixels.shape} samples)")
    samples = pixels.reshape(header.height, header.width, 2)
    if layout.run is not None:  # the file's horizontal differencing, declared away: summed back along each run
        for x in range(0, header.width, layout.run):
            np.cumsum(samples[:, x : x + layout.run], axis=1, dtype=samples.dtype, out=samples[:, x : x + layout.run])
    grey, alpha = samples[:, :, 0], samples[:, :, 1]
    if layout.white_is_zero:
        grey = np.iinfo(grey.dtype).max - grey
    return upright(np.dstack([grey, grey, grey, alpha]), layout.orientation)


def keyed_alpha(grey: np.ndarray, level: int) -> np.ndarray:
    """BGRA of a grey picture whose pixels of one `level` are transparent (a grey PNG's tRNS, dropped by OpenCV)."""
    alpha = np.where(grey == level, 0, np.iinfo(grey.dtype).max).astype(grey.dtype)
    return np.dstack([grey, grey, grey, alpha])


def to_model_input(pixels: np.ndarray) -> np.ndarray:
    """(H, W, C) integers (8 or 16 bits), e.g. RGB -> (1, C, H, W) float32 in [0, 1]."""
    values = pixels.astype(np.float32) / np.iinfo(pixels.dtype).max
    return np.ascontiguousarray(values.transpose(2, 0, 1))[None]


def to_pixels(image: np.ndarray, dtype: type = np.uint8) -> np.ndarray:
    """(1, C, H, W) float, e.g. RGB -> (H, W, C) integers of `dtype`, clamped to [0, 1] and rounded."""
    values = np.clip(image[0], 0.0, 1.0)  # the one float copy: a 48-megapixel result's takes 576 MB
    values *= np.iinfo(dtype).max
    np.rint(values, out=values)
    return values.astype(dtype).transpose(1, 2, 0)  # (H, W, C), a view of the small integer copy


def read_picture(path: Path) -> Picture:
    """Read a grey, colour or colour+alpha image of 8 or 16 bits, upright by its EXIF orientation, with its metadata.

    Its header is read first: an image that declares more than MAX_INPUT_PIXELS is refused before decoding. Grey+alpha
    (a PNG's, a TIFF's, a grey PNG's tRNS) comes back as colour+alpha.
    """
    header = read_header(path)
    if header.height * header.width > MAX_INPUT_PIXELS:
        raise SrcnnError(f"{path} declares {header.height}x{header.width} pixels, over the limit of"
                         f" {MAX_INPUT_PIXELS:,} for any input")
    metadata = read_metadata(path)
    # UNCHANGED keeps grey, alpha and 16 bits; the orientation is applied here, the same way for every format
    # and with or without alpha (OpenCV applies it only to some formats, and never when it keeps alpha).
    if header.format == "TIFF" and header.channels == 2:  # grey+alpha, which OpenCV would read as grey
        pixels = decode_grey_alpha_tiff(path, header)  # upright by the TIFF's orientation, as OpenCV turns TIFFs
    else:
        pixels = decode_image(path, cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION, header)
    if pixels.ndim == 3 and pixels.shape[2] not in (1, 3, 4):  # odd channel counts: as OpenCV's colour
        pixels = decode_image(path, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR | cv2.IMREAD_IGNORE_ORIENTATION, header)
    if pixels.ndim == 2 and header.transparent is not None:
        pixels = keyed_alpha(pixels, header.transparent)
    if pixels.dtype not in DEPTHS:
        raise SrcnnError(f"{path} has {pixels.dtype} pixels; 8-bit and 16-bit images are supported")
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    if channels not in (1, 3, 4):
        raise SrcnnError(f"{path} has {channels} channels; grey, colour and colour+alpha are supported")
    # OpenCV 5.0's TIFF decoder turns the picture by its orientation even when told not to: do it once.
    pixels = upright(pixels, 1 if header.format == "TIFF" else metadata.orientation)
    rgb = np.repeat(pixels[:, :, None], 3, axis=2) if channels == 1 else pixels[:, :, 2::-1]  # BGR(A) -> RGB
    alpha = to_model_input(pixels[:, :, 3:]) if channels == 4 else None  # (1, 1, H, W)
    return Picture(to_model_input(rgb), alpha, channels == 1, pixels.dtype, metadata)


def picture_pixels(rgb: np.ndarray, like: Picture, alpha: np.ndarray | None = None) -> np.ndarray:
    """(1, 3, H, W) RGB float result -> the (H, W[, C]) array OpenCV writes, in `like`'s channels and bit depth.

    A grey input comes back grey (BT.601 luma of the result: its three channels differ only slightly), an input
    with alpha gets `alpha` (upscaled by the same bicubic) back, and 16-bit inputs come back 16-bit.
    """
    pixels = to_pixels(rgb, like.dtype.type)  # (H, W, 3) RGB
    if like.grey:
        return cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
    bgr = pixels[:, :, ::-1]
    if alpha is None:
        return np.ascontiguousarray(bgr)
    return np.dstack([bgr, to_pixels(alpha, like.dtype.type)])  # (H, W, 4)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside `path`, moved into place if the block succeeds and removed in any case. Its name is
    short (a result's may be as long as the file system allows) and hidden (never read as a photo)."""
    tmp = path.with_name(f".srcnn.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_image(path: Path, pixels: np.ndarray, metadata: Metadata | None = None) -> None:
    """Write an (H, W[, C]) OpenCV array (grey, BGR or BGRA) in the format of `path`'s suffix, with `metadata`
    where the format holds it: whole or not at all."""
    ok, encoded = cv2.imencode(path.suffix or ".png", pixels)
    if not ok:
        raise SrcnnError(f"OpenCV cannot encode an image as {path.suffix!r} for {path}")
    data = encoded.tobytes()
    if metadata is not None:
        data, dropped = embed(data, path.suffix.lower() or ".png", metadata, size=pixels.shape[:2])
        for what in dropped:
            log.debug("%s: not kept: %s", path.name, what)
    try:
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
    except OSError as exc:  # a full disk or a read-only folder: nothing half-written is left
        raise SrcnnError(f"cannot write {path}: {exc.strerror or exc}") from None


def write_picture(path: Path, rgb: np.ndarray, like: Picture, alpha: np.ndarray | None = None) -> None:
    """Write a result in the format of `like` (channels, depth, metadata) and of `path`'s suffix; whole or not at
    all."""
    write_image(path, picture_pixels(rgb, like, alpha), like.metadata)


def image_paths(image: Path, option: str = "--image", *, recursive: bool = False, exclude: Path | None = None,
                unreadable: list[tuple[Path, str]] | None = None, left_out: list[Path] | None = None) -> list[Path]:
    """[image] for a file; the images in a folder (by suffix, sorted), and with `recursive` in its sub-folders.

    `exclude` (the results' folder) is never read, nor anything under it: results are not inputs. Hidden files and
    folders (a name starting with a dot: thumbnails, macOS's ._ companions, this project's temporary files) are
    not photos. Links to folders are not followed, so a link loop cannot trap the walk. A sub-folder that cannot be
    listed is added to `unreadable` with the reason; without `recursive`, the sub-folders are added to `left_out`.
    `option` names the folder in errors.
    """
    if not image.is_dir():
        return [image]
    skip = real_path(exclude) if exclude is not None else None

    def note(error: OSError) -> None:
        if unreadable is not None and error.filename is not None:
            unreadable.append((Path(error.filename), error.strerror or str(error)))

    paths = []
    for folder, subfolders, files in os.walk(image, onerror=note, followlinks=False):
        if skip is not None and real_path(Path(folder)) == skip:
            subfolders.clear()
            continue
        # Special files (a FIFO named photo.png) are listed too, so that they are refused and named, never read.
        paths += [Path(folder) / name for name in files
                  if Path(name).suffix.lower() in IMAGE_SUFFIXES and not name.startswith(".")]
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))  # os.walk descends these
        if not recursive:
            if left_out is not None:  # named in the last line, so that -r is not forgotten
                left_out.extend(Path(folder) / name for name in subfolders if real_path(Path(folder) / name) != skip)
            break
    if not paths and not unreadable:
        where = "or its sub-folders " if recursive else ""
        raise SrcnnError(f"{option} {image}: the folder {where}holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return sorted(paths)
