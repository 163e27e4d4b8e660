"""Image headers: width, height, bit depth and channels read from a file's first bytes, before any pixel is decoded.

A PNG of under 1 MB can declare 30000x30000 pixels and a JPEG header of 1 KB 65535x65535: decoding them first
would allocate gigabytes. Every image is therefore read here first and refused (srcnn.plan) on what it declares.
Only PNG, JPEG, BMP, TIFF and WebP are read, each recognised by its signature, whatever its suffix. The channels are
those OpenCV 5.0 decodes with IMREAD_UNCHANGED (measured format by format; tests/test_headers.py holds the two
together), but for the alpha that OpenCV drops and srcnn.images recovers: a grey PNG's tRNS, a grey+alpha TIFF.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from srcnn.core import SrcnnError

HEAD_BYTES = 64 * 1024  # the headers of BMP and WebP lie in the first bytes; PNG, JPEG and TIFF are walked
MAX_JPEG_FILL = 4096  # 0xFF fill bytes before one marker: encoders that pad use a few
MAX_JPEG_SEGMENTS = 1 << 16  # segments before the frame header: a photo has a few dozen
JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}  # start-of-frame markers
EXIF_ORIENTATION_TAG = 0x0112  # values 5 to 8 turn the picture a quarter: the decoded width and height swap
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}  # colour type -> bit depths
PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}  # colour type -> channels (3: palette, decoded as colour)
MAX_PNG_CHUNKS = 1 << 16  # chunks walked to IEND: a large PNG's IDAT chunks pass; past this its end is not known
MAX_TIFF_TAGS = 4096  # a first directory lists a few dozen tags; more is a hostile count
# Compressions that turn bytes into bytes, whatever the samples mean: a grey+alpha TIFF can be re-declared under them
TIFF_BYTE_CODECS = {1, 5, 8, 32773, 32946, 34925, 50000}  # none, LZW, Deflate, PackBits, Deflate, LZMA, Zstandard
TIFF_PREDICTED_CODECS = {5, 8, 32946, 34925, 50000}  # the codecs libtiff applies the Predictor tag under

# What decoding may read of a file, besides the encoded end where a format declares it (ImageHeader.read_limit):
READ_MARGIN = 2  # encoded pixels may outgrow raw ones: JPEG at quality 100 on noise, LZW's 12-bit codes (x1.5)
READ_ALLOWANCE = 64 * 2**20  # what a photo carries besides pixels: EXIF, ICC, XMP (Photoshop's can reach tens of MB)


@dataclass(frozen=True)
class ImageHeader:
    """What an image file declares: its decoded size (EXIF orientation applied), bit depth and channels."""

    format: str  # "PNG", "JPEG", "BMP", "TIFF" or "WebP"
    height: int
    width: int
    depth: int  # bits per sample
    channels: int  # 1 grey, 2 grey+alpha (read as colour+alpha), 3 colour (palette, CMYK), 4 colour+alpha
    end: int | None = None  # where the encoded image ends (PNG's IEND, WebP's RIFF size): later bytes are not read
    transparent: int | None = None  # a grey PNG's tRNS: the grey level, as decoded (8 or 16 bits), that is transparent

    @property
    def alpha(self) -> bool:
        """Whether the decoded image may carry an alpha channel."""
        return self.channels in (2, 4)

    @property
    def read_limit(self) -> int:
        """The most bytes of the file that decoding may read: memory follows the picture, not the file (an 8x8 photo
        padded to gigabytes is read in kilobytes). The picture's raw bytes, at 4 channels, READ_MARGIN times, plus
        READ_ALLOWANCE for its metadata."""
        raw = self.height * self.width * 4 * (2 if self.depth > 8 else 1)
        return READ_MARGIN * raw + READ_ALLOWANCE


class HeaderError(SrcnnError):
    """A file that is not, or not entirely, an image header this module can read."""


def _unpack(fmt: str, data: bytes, offset: int = 0) -> tuple[int, ...]:
    """struct.unpack_from that reports a truncated header as a HeaderError."""
    try:
        return struct.unpack_from(fmt, data, offset)
    except struct.error:
        raise HeaderError("the header is truncated") from None


# --- PNG ------------------------------------------------------------------------------------------------------------

def _png_chunks(file: BinaryIO, size: int) -> tuple[dict[bytes, tuple[int, int]], int | None]:
    """(offset, length) of each kind's first chunk before the pixels (IDAT), and the end of IEND (None past
    MAX_PNG_CHUNKS). Only the 8-byte chunk headers are read: the data is sought past."""
    before: dict[bytes, tuple[int, int]] = {}
    pos, pixels = 8, False
    for _ in range(MAX_PNG_CHUNKS):
        file.seek(pos)
        head = file.read(8)
        if len(head) < 8:  # libpng, and so OpenCV, decodes no PNG without its IEND
            raise HeaderError(f"the PNG is cut short: it ends at byte {size:,}, before its IEND chunk")
        length, kind = struct.unpack(">I4s", head)
        if not kind.isalpha():  # the chunk types are ASCII letters: anything else is a broken or shifted file
            raise HeaderError(f"the PNG has a broken chunk at byte {pos:,}")
        if pos + 12 + length > size:
            raise HeaderError(f"the PNG is cut short: its {kind.decode()} chunk at byte {pos:,} declares {length:,}"
                              f" bytes, the file has {size:,}")
        if kind == b"IEND":
            return before, pos + 12
        pixels = pixels or kind == b"IDAT"
        if not pixels:
            before.setdefault(kind, (pos, length))
        pos += 12 + length
    return before, None


def _png_transparency(file: BinaryIO, colour: int, depth: int,
                      before: dict[bytes, tuple[int, int]]) -> tuple[int, int | None]:
    """(channels, transparent grey level) of a PNG with its tRNS chunk, as libpng takes it: the first one before
    IDAT (after PLTE for a palette), of a valid length and CRC. OpenCV decodes a palette or RGB one as colour+alpha,
    and drops a grey one's: its level is returned for srcnn.images to make the alpha."""
    found = before.get(b"tRNS")
    if found is None or colour not in (0, 2, 3):
        return PNG_CHANNELS[colour], None
    pos, length = found
    if colour == 3:
        palette = before.get(b"PLTE")
        valid = palette is not None and palette[0] < pos and 0 < length <= min(palette[1] // 3, 256)
    else:
        valid = length == (2 if colour == 0 else 6)
    file.seek(pos + 4)
    chunk = file.read(length + 8) if valid else b""  # type, data and CRC: at most 264 bytes
    if not valid or zlib.crc32(chunk[:-4]) != int.from_bytes(chunk[-4:], "big"):
        return PNG_CHANNELS[colour], None
    if colour != 0:
        return 4, None
    level = int.from_bytes(chunk[4:6], "big")
    if level >= 1 << depth:  # no pixel has it
        return 1, None
    return 2, level * (255 // ((1 << depth) - 1)) if depth < 8 else level  # 1, 2 and 4 bits decode scaled to 8


def _png(file: BinaryIO, head: bytes, size: int) -> ImageHeader:
    if head[12:16] != b"IHDR":
        raise HeaderError("the PNG has no IHDR chunk first")
    width, height, depth, colour = _unpack(">IIBB", head, 16)
    if depth not in PNG_DEPTHS.get(colour, ()):
        raise HeaderError(f"the PNG declares colour type {colour} at {depth} bits")
    before, end = _png_chunks(file, size)
    channels, transparent = _png_transparency(file, colour, depth, before)
    return ImageHeader("PNG", height, width, 8 if colour == 3 else depth, channels, end, transparent)


# --- TIFF -----------------------------------------------------------------------------------------------------------

Reader = Callable[[int, int], bytes]  # (offset, size) -> that many bytes of a TIFF structure, or fewer at its end
Entry = tuple[int, int, int, int, bytes]  # a directory entry: its offset, tag, type, count and 4-byte value field


def _tiff_directory(read: Reader) -> tuple[str, list[Entry]]:
    """The byte order ("<" or ">") and the entries of a TIFF structure's first directory (IFD)."""
    head = read(0, 8)
    order = {b"II": "<", b"MM": ">"}.get(head[:2])
    if order is None or _unpack(order + "H", head, 2)[0] != 42:
        raise HeaderError("not a classic TIFF structure (BigTIFF is not read)")
    (ifd,) = _unpack(order + "I", head, 4)
    (count,) = _unpack(order + "H", read(ifd, 2))
    if count > MAX_TIFF_TAGS:
        raise HeaderError(f"the TIFF's first directory declares {count} tags")
    entries = read(ifd + 2, 12 * count)
    return order, [(ifd + 2 + 12 * i, *_unpack(order + "HHI4s", entries, 12 * i)) for i in range(count)]


def _tiff_tags(read: Reader, wanted: set[int]) -> dict[int, int]:
    """The first value of each wanted SHORT or LONG tag in a TIFF structure's first directory (IFD)."""
    order, entries = _tiff_directory(read)
    tags = {}
    for _, tag, kind, number, value in entries:
        if tag in wanted and tag not in tags and kind in (3, 4):  # SHORT or LONG; libtiff keeps a tag's first entry
            fmt = order + ("H" if kind == 3 else "I")
            inline = number * struct.calcsize(fmt) <= 4  # else the value field holds the offset of the values
            tags[tag] = _unpack(fmt, value if inline else read(_unpack(order + "I", value)[0], 4))[0]
    return tags


def _tiff(file: BinaryIO) -> ImageHeader:
    def read(offset: int, size: int) -> bytes:
        file.seek(offset)
        return file.read(size)

    # width, height, bits per sample, photometric interpretation, samples per pixel, sample format
    tags = _tiff_tags(read, {256, 257, 258, 262, 277, 339})
    if 256 not in tags or 257 not in tags:
        raise HeaderError("the TIFF's first directory declares no size")
    if tags.get(339, 1) not in (1, 2):  # 1 unsigned, 2 signed integers; 3 is floating point
        raise HeaderError("the TIFF holds floating-point samples")
    samples, depth = tags.get(277, 1), tags.get(258, 1)
    photometric = tags.get(262, 1 if samples < 3 else 2)
    if photometric in (0, 1):  # grey; a second sample is alpha, which srcnn.images recovers (grey_alpha_as_grey)
        channels = 2 if samples == 2 else 1
    elif photometric == 3:  # a palette decodes as colour, and OpenCV drops a palette's alpha sample
        channels = 3
    else:  # RGB, CMYK (decoded as colour+alpha, opaque), YCbCr...: OpenCV keeps at most 4
        channels = min(samples, 4)
    if depth > 8 and channels != 2 and (photometric > 2 or samples not in (1, 3, 4)):
        depth = 8  # OpenCV decodes these through libtiff's 8-bit RGBA reader
    return ImageHeader("TIFF", tags[257], tags[256], depth, channels)


@dataclass(frozen=True)
class GreyAlphaTiff:
    """What decoding a grey+alpha TIFF re-declared by grey_alpha_as_grey leaves to undo on its pixels."""

    orientation: int  # the TIFF's own (the re-declared file says 1: the samples are split before turning)
    run: int | None  # pixels per run of horizontal differencing (a row, or a tile's row), when the file declares it
    white_is_zero: bool  # photometric 0: the grey sample counts down from white


def grey_alpha_as_grey(data: memoryview) -> GreyAlphaTiff:
    """Re-declare, in place, a grey+alpha TIFF's first directory (in `data`, the file's bytes) as one grey sample
    twice as wide: OpenCV decodes a 2-sample TIFF through libtiff's RGBA reader, which keeps the grey alone, but
    returns this one's samples interleaved. Codecs of bytes (TIFF_BYTE_CODECS) are unaffected; the differencing
    predictor, white-is-zero and the orientation are declared away and left to the caller (GreyAlphaTiff)."""
    def read(offset: int, size: int) -> bytes:
        return bytes(data[offset : offset + size])

    # width, bits, compression, photometric, orientation, samples, planar configuration, predictor, tile width
    tags = _tiff_tags(read, {256, 258, 259, 262, 274, 277, 284, 317, 322, 339})
    if tags.get(277) != 2 or tags.get(262, 1) not in (0, 1) or 256 not in tags:
        raise HeaderError("the TIFF is not grey+alpha")
    bits, compression = tags.get(258, 1), tags.get(259, 1)
    if bits not in (8, 16) or tags.get(339, 1) != 1:
        raise HeaderError(f"a grey+alpha TIFF of {bits}-bit {'un' if tags.get(339, 1) == 1 else ''}signed samples"
                          " is not read; 8 and 16 bits unsigned are")
    if tags.get(284, 1) != 1 or compression not in TIFF_BYTE_CODECS or tags.get(317, 1) not in (1, 2):
        raise HeaderError("a grey+alpha TIFF in separate planes, or compressed as pictures (JPEG...), is not read;"
                          " save it with LZW, Deflate or no compression, or as PNG")
    order, entries = _tiff_directory(read)
    for at, tag, _, _, _ in entries:
        if tag in (256, 322):  # width, tile width: each pixel's two samples become two pixels
            struct.pack_into(order + "HII", data, at + 2, 4, 1, 2 * tags[tag])
        elif tag in (262, 274, 277, 317):  # black is zero, upright, one sample, no differencing
            struct.pack_into(order + "HII", data, at + 2, 4, 1, 1)
        elif tag == 338:  # ExtraSamples: no sample is left to declare
            struct.pack_into(order + "I", data, at + 4, 0)
    orientation = tags.get(274, 1) if 1 <= tags.get(274, 1) <= 8 else 1
    run = tags.get(322, tags[256]) if tags.get(317, 1) == 2 and compression in TIFF_PREDICTED_CODECS else None
    return GreyAlphaTiff(orientation, run, tags.get(262, 1) == 0)


# --- BMP, WebP ------------------------------------------------------------------------------------------------------

def _bmp(head: bytes) -> ImageHeader:
    (info_size,) = _unpack("<I", head, 14)
    if info_size == 12:  # OS/2 BITMAPCOREHEADER: OpenCV 5.0 decodes every one as grey
        width, height, _, bits = _unpack("<HHHH", head, 18)
        return ImageHeader("BMP", height, width, 8, 1)
    width, height, _, bits, compression = _unpack("<iiHHI", head, 18)
    if bits <= 8:  # a palette: OpenCV decodes it as grey when each of its colours is
        (used,) = _unpack("<I", head, 46)
        count = min(used or 1 << bits, 1 << bits)
        palette = head[14 + info_size : 14 + info_size + 4 * count]
        if len(palette) < 4 * count:
            raise HeaderError("the header is truncated")
        grey = all(palette[i] == palette[i + 1] == palette[i + 2] for i in range(0, len(palette), 4))
        return ImageHeader("BMP", abs(height), width, 8, 1 if grey else 3)
    alpha = bits == 32 and compression == 3  # BI_BITFIELDS: OpenCV keeps the fourth byte as alpha; BI_RGB's is padding
    return ImageHeader("BMP", abs(height), width, 8, 4 if alpha else 3)


def _webp(head: bytes, size: int) -> ImageHeader:
    if len(head) < 30:  # every first chunk's sizes lie within the first 30 bytes
        raise HeaderError("the header is truncated")
    end = 8 + int.from_bytes(head[4:8], "little")
    if size < end:  # libwebp, and so OpenCV, decodes no WebP shorter than its RIFF header says
        raise HeaderError(f"the WebP is cut short: its RIFF header declares {end:,} bytes, the file has {size:,}")
    chunk = head[12:16]
    if chunk == b"VP8X":  # extended: canvas size and an alpha flag
        flags = head[20]
        width = int.from_bytes(head[24:27], "little") + 1
        height = int.from_bytes(head[27:30], "little") + 1
        return ImageHeader("WebP", height, width, 8, 4 if flags & 0x10 else 3, end)
    if chunk == b"VP8L":  # lossless: 14-bit width - 1 and height - 1 after the 0x2f signature
        (bits,) = _unpack("<I", head, 21)
        alpha = bool(bits >> 28 & 1)
        return ImageHeader("WebP", (bits >> 14 & 0x3FFF) + 1, (bits & 0x3FFF) + 1, 8, 4 if alpha else 3, end)
    if chunk == b"VP8 ":  # lossy: 14-bit sizes after the 9d 01 2a start code
        width, height = _unpack("<HH", head, 26)
        return ImageHeader("WebP", height & 0x3FFF, width & 0x3FFF, 8, 3, end)
    raise HeaderError(f"the WebP has an unknown first chunk {chunk!r}")


# --- JPEG -----------------------------------------------------------------------------------------------------------

def _jpeg_marker(file: BinaryIO) -> int:
    """The next marker's code. The standard lets any number of 0xFF fill bytes stand before it (some encoders
    pad with them); more than MAX_JPEG_FILL of them is not a photo."""
    first = file.read(1)
    if not first:
        raise HeaderError("the JPEG ends before its frame header")
    if first != b"\xff":  # libjpeg skips such bytes, with a warning that the file is corrupt: it is refused here
        raise HeaderError(f"the JPEG is corrupt: no marker at byte {file.tell() - 1:,}, where a segment's length leads")
    for _ in range(MAX_JPEG_FILL):
        code = file.read(1)
        if not code:
            raise HeaderError("the JPEG ends before its frame header")
        if code != b"\xff":
            return code[0]
    raise HeaderError(f"the JPEG has over {MAX_JPEG_FILL:,} fill bytes before a marker")


def _exif_orientation(exif: bytes) -> int | None:
    """The orientation tag of an EXIF block (1 when it has none), or None when the block is broken: a broken EXIF
    block is dropped (srcnn.metadata drops it too), not a reason to refuse the photo."""
    try:
        return _tiff_tags(lambda offset, size: exif[offset : offset + size],
                          {EXIF_ORIENTATION_TAG}).get(EXIF_ORIENTATION_TAG, 1)
    except HeaderError:
        return None


def _jpeg(file: BinaryIO) -> ImageHeader:
    """Walk the JPEG's segments to its start of frame; its first readable Exif segment may turn it a quarter."""
    file.seek(2)
    orientation = None
    for _ in range(MAX_JPEG_SEGMENTS):
        code = _jpeg_marker(file)
        if code in (0xD8, 0x01) or 0xD0 <= code <= 0xD7:  # markers without a length
            continue
        (length,) = _unpack(">H", file.read(2))
        if length < 2:  # the length counts its own two bytes: 0 or 1 is a broken file, not "read to the end"
            raise HeaderError(f"a JPEG segment declares a length of {length}")
        if code != 0xE1 and code not in JPEG_SOF:  # sought past, not read
            file.seek(length - 2, os.SEEK_CUR)
            continue
        segment = file.read(length - 2)
        if code == 0xE1 and segment.startswith(b"Exif\0\0") and orientation is None:
            orientation = _exif_orientation(segment[6:])
        if code in JPEG_SOF:
            depth, height, width, components = _unpack(">BHHB", segment)
            if height == 0:
                raise HeaderError("the JPEG declares its height later (DNL), which is not read")
            if orientation in (5, 6, 7, 8):
                height, width = width, height
            # JPEG has no alpha: 4 components are CMYK or YCCK (Adobe APP14), which OpenCV decodes as colour
            return ImageHeader("JPEG", height, width, depth, 1 if components == 1 else 3)
    raise HeaderError(f"the JPEG has over {MAX_JPEG_SEGMENTS:,} segments before its frame header")


def read_header(path: Path) -> ImageHeader:
    """The header of the image at `path`; one-line SrcnnError for a special file or anything not read here."""
    if path.exists() and not path.is_file() and not path.is_dir():
        raise SrcnnError(f"{path} is not a regular file (a device, a FIFO or a socket); give an image file")
    if not path.is_file():
        raise SrcnnError(f"{path} is a folder, not an image" if path.is_dir() else f"image not found: {path}")
    try:
        with path.open("rb", buffering=256) as file:  # small: a walk seeks between headers of a few bytes
            size = os.fstat(file.fileno()).st_size
            head = file.read(HEAD_BYTES)
            if not head:
                raise SrcnnError(f"cannot read {path} as an image: the file is empty")
            if head.startswith(PNG_SIGNATURE):
                header = _png(file, head, size)
            elif head.startswith(b"\xff\xd8"):
                header = _jpeg(file)
            elif head[:4] in (b"II*\0", b"MM\0*"):
                header = _tiff(file)
            elif head.startswith(b"BM"):
                header = _bmp(head)
            elif head.startswith(b"RIFF") and head[8:12] == b"WEBP":
                header = _webp(head, size)
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
