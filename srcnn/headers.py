"""Image headers: width, height, bit depth and channels read from a file's first bytes, before any pixel is decoded.

A PNG of under 1 MB can declare 30000x30000 pixels and a JPEG header of 1 KB 65535x65535: decoding them first
would allocate gigabytes. Every image is therefore read here first and refused (srcnn.plan) on what it declares.
Only PNG, JPEG, BMP, TIFF and WebP are read, each recognised by its signature, whatever its suffix.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from srcnn.core import SrcnnError

MAX_JPEG_FILL = 4096  # 0xFF fill bytes before one marker: encoders that pad use a few
JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}  # start-of-frame markers
EXIF_ORIENTATION_TAG = 0x0112  # values 5 to 8 turn the picture a quarter: the decoded width and height swap
PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}  # colour type -> channels (3: palette, decoded as colour)


@dataclass(frozen=True)
class ImageHeader:
    """What an image file declares: its decoded size (EXIF orientation applied), bit depth and channels."""

    format: str  # "PNG", "JPEG", "BMP", "TIFF" or "WebP"
    height: int
    width: int
    depth: int  # bits per sample
    channels: int  # 1 grey, 2 grey+alpha, 3 colour, 4 colour+alpha (a palette counts as colour)

    @property
    def alpha(self) -> bool:
        """Whether the decoded image may carry an alpha channel."""
        return self.channels in (2, 4)


class HeaderError(SrcnnError):
    """A file that is not, or not entirely, an image header this module can read."""


def _unpack(fmt: str, data: bytes, offset: int = 0) -> tuple[int, ...]:
    """struct.unpack_from that reports a truncated header as a HeaderError."""
    try:
        return struct.unpack_from(fmt, data, offset)
    except struct.error:
        raise HeaderError("the header is truncated") from None


def _png(head: bytes) -> ImageHeader:
    if head[12:16] != b"IHDR":
        raise HeaderError("the PNG has no IHDR chunk first")
    width, height, depth, colour = _unpack(">IIBB", head, 16)
    if colour not in PNG_CHANNELS:
        raise HeaderError(f"the PNG has colour type {colour}")
    return ImageHeader("PNG", height, width, 8 if colour == 3 else depth, PNG_CHANNELS[colour])


Reader = Callable[[int, int], bytes]  # (offset, size) -> that many bytes of a TIFF structure, or fewer at its end
MAX_TIFF_TAGS = 4096  # a first directory lists a few dozen tags; more is a hostile count


def _tiff_tags(read: Reader, wanted: set[int]) -> dict[int, int]:
    """The first value of each wanted SHORT or LONG tag in a TIFF structure's first directory (IFD)."""
    head = read(0, 8)
    order = {b"II": "<", b"MM": ">"}.get(head[:2])
    if order is None or _unpack(order + "H", head, 2)[0] != 42:
        raise HeaderError("not a classic TIFF structure (BigTIFF is not read)")
    (ifd,) = _unpack(order + "I", head, 4)
    (count,) = _unpack(order + "H", read(ifd, 2))
    if count > MAX_TIFF_TAGS:
        raise HeaderError(f"the TIFF's first directory declares {count} tags")
    entries = read(ifd + 2, 12 * count)
    tags = {}
    for i in range(count):
        tag, kind, number, value = _unpack(order + "HHI4s", entries, 12 * i)
        if tag in wanted and kind in (3, 4):  # SHORT or LONG
            fmt = order + ("H" if kind == 3 else "I")
            inline = number * struct.calcsize(fmt) <= 4  # else the value field holds the offset of the values
            tags[tag] = _unpack(fmt, value if inline else read(_unpack(order + "I", value)[0], 4))[0]
    return tags


def _tiff(file: BinaryIO) -> ImageHeader:
    def read(offset: int, size: int) -> bytes:
        file.seek(offset)
        return file.read(size)

    tags = _tiff_tags(read, {256, 257, 258, 277, 339})  # width, height, bits per sample, samples, sample format
    if 256 not in tags or 257 not in tags:
        raise HeaderError("the TIFF's first directory declares no size")
    if tags.get(339, 1) not in (1, 2):  # 1 unsigned, 2 signed integers; 3 is floating point
        raise HeaderError("the TIFF holds floating-point samples")
    return ImageHeader("TIFF", tags[257], tags[256], tags.get(258, 1), tags.get(277, 1))


def _bmp(head: bytes) -> ImageHeader:
    (info_size,) = _unpack("<I", head, 14)
    if info_size == 12:  # OS/2 BITMAPCOREHEADER
        width, height, _, bits = _unpack("<HHHH", head, 18)
    else:
        width, height, _, bits = _unpack("<iiHH", head, 18)
    return ImageHeader("BMP", abs(height), width, 8, 4 if bits == 32 else 3)


def _webp(head: bytes) -> ImageHeader:
    if len(head) < 30:  # every first chunk's sizes lie within the first 30 bytes
        raise HeaderError("the header is truncated")
    chunk = head[12:16]
    if chunk == b"VP8X":  # extended: canvas size and an alpha flag
        flags = head[20]
        width = int.from_bytes(head[24:27], "little") + 1
        height = int.from_bytes(head[27:30], "little") + 1
        return ImageHeader("WebP", height, width, 8, 4 if flags & 0x10 else 3)
    if chunk == b"VP8L":  # lossless: 14-bit width - 1 and height - 1 after the 0x2f signature
        (bits,) = _unpack("<I", head, 21)
        alpha = bool(bits >> 28 & 1)
        return ImageHeader("WebP", (bits >> 14 & 0x3FFF) + 1, (bits & 0x3FFF) + 1, 8, 4 if alpha else 3)
    if chunk == b"VP8 ":  # lossy: 14-bit sizes after the 9d 01 2a start code
        width, height = _unpack("<HH", head, 26)
        return ImageHeader("WebP", height & 0x3FFF, width & 0x3FFF, 8, 3)
    raise HeaderError(f"the WebP has an unknown first chunk {chunk!r}")


def _jpeg_marker(file: BinaryIO) -> int:
    """The next marker's code. The standard lets any number of 0xFF fill bytes stand before it (some encoders
    pad with them); more than MAX_JPEG_FILL of them is not a photo."""
    if file.read(1) != b"\xff":
        raise HeaderError("the JPEG ends before its frame header")
    for _ in range(MAX_JPEG_FILL):
        code = file.read(1)
        if not code:
            raise HeaderError("the JPEG ends before its frame header")
        if code != b"\xff":
            return code[0]
    raise HeaderError(f"the JPEG has over {MAX_JPEG_FILL:,} fill bytes before a marker")


def _jpeg(file: BinaryIO) -> ImageHeader:
    """Walk the JPEG's segments to its start of frame; an Exif segment on the way may turn it a quarter."""
    file.seek(2)
    orientation = 1
    while True:
        code = _jpeg_marker(file)
        if code in (0xD8, 0x01) or 0xD0 <= code <= 0xD7:  # markers without a length
            continue
        (length,) = _unpack(">H", file.read(2))
        if length < 2:  # the length counts its own two bytes: 0 or 1 is a broken file, not "read to the end"
            raise HeaderError(f"a JPEG segment declares a length of {length}")
        segment = file.read(length - 2)
        if code == 0xE1 and segment.startswith(b"Exif\0\0"):
            exif = segment[6:]
            orientation = _tiff_tags(lambda offset, size: exif[offset : offset + size],
                                     {EXIF_ORIENTATION_TAG}).get(EXIF_ORIENTATION_TAG, 1)
        if code in JPEG_SOF:
            depth, height, width, channels = _unpack(">BHHB", segment)
            if height == 0:
                raise HeaderError("the JPEG declares its height later (DNL), which is not read")
            if orientation in (5, 6, 7, 8):
                height, width = width, height
            return ImageHeader("JPEG", height, width, depth, channels)


def read_header(path: Path) -> ImageHeader:
    """The header of the image at `path`; one-line SrcnnError for a special file or anything not read here."""
    if path.exists() and not path.is_file() and not path.is_dir():
        raise SrcnnError(f"{path} is not a regular file (a device, a FIFO or a socket); give an image file")
    if not path.is_file():
        raise SrcnnError(f"{path} is a folder, not an image" if path.is_dir() else f"image not found: {path}")
    try:
        with path.open("rb") as file:
            head = file.read(64 * 1024)  # every header read here but JPEG's lies in the first bytes
            if not head:
                raise SrcnnError(f"cannot read {path} as an image: the file is empty")
            if head.startswith(b"\x89PNG\r\n\x1a\n"):
                header = _png(head)
            elif head.startswith(b"\xff\xd8"):
                header = _jpeg(file)
            elif head[:4] in (b"II*\0", b"MM\0*"):
                header = _tiff(file)
            elif head.startswith(b"BM"):
                header = _bmp(head)
            elif head.startswith(b"RIFF") and head[8:12] == b"WEBP":
                header = _webp(head)
            else:
                raise SrcnnError(f"cannot read {path} as an image: PNG, JPEG, BMP, TIFF and WebP are read")
    except HeaderError as exc:
        raise SrcnnError(f"cannot read {path} as an image: {exc}") from None
    except OSError as exc:
        raise SrcnnError(f"cannot read {path}: {exc.strerror or exc}") from None
    if header.width < 1 or header.height < 1:
        raise SrcnnError(f"{path} declares {header.width}x{header.height} pixels")
    if header.depth not in (1, 2, 4, 8, 16):
        raise SrcnnError(f"{path} has {header.depth}-bit samples; 8-bit and 16-bit images are supported")
    return header
