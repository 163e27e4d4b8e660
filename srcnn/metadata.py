"""Photo metadata carried from an input file to its upscaled result: EXIF (orientation reset to 1), ICC, PNG text.

OpenCV 5.0.0's imdecodeWithMetadata / imencodeWithMetadata, measured: EXIF and ICC for JPEG, PNG and WebP, but nothing
for TIFF or BMP ("not supported") and no PNG text; reading decodes every pixel (110 ms for a 12 MP JPEG, 0.5 ms here),
writing needs the pixels (a JPEG re-encoded loses quality), and a JPEG profile over one segment (~64 KB) fails the
whole encode. Pillow opens 16-bit colour TIFF as 8 bits. So the files' own structures are read here, and JPEG segments,
PNG chunks, WebP RIFF chunks or a new TIFF directory are spliced into cv2.imencode's bytes, pixel data untouched.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

log = logging.getLogger("srcnn")

MAX_EXIF = 64 * 1024  # JPEG's limit for one APP1 segment: a larger EXIF block is dropped, whatever its source
MAX_ICC = 4 * 1024 * 1024  # real profiles weigh 0.5 to a few hundred KB
MAX_TEXT = 1024 * 1024  # all PNG text chunks together: keywords, texts and 12 bytes of chunk framing each
MAX_CHUNKS = 1 << 16  # chunks or segments walked in one file: a large PNG's IDAT chunks pass, a hostile count does not
MAX_IFD_ENTRIES = 1024  # a camera's IFD lists a few dozen tags; the 16-bit count allows 65,535
MAX_IFD_DEPTH = 2  # IFD0 -> Exif -> Interoperability; deeper is a loop or hostile
EXIF_READ_BUDGET = 4 * MAX_EXIF  # value bytes one EXIF walk may ask for: entries aiming at one huge value stop here

JPEG_EXIF = b"Exif\0\0"
JPEG_ICC = b"ICC_PROFILE\0"
JPEG_SEGMENT = 0xFFFF - 2  # body bytes in one segment after its length field
JPEG_ICC_CHUNK = JPEG_SEGMENT - len(JPEG_ICC) - 2  # 65,519 profile bytes per APP2 (after sequence and count bytes)
JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}  # start-of-frame markers
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_TEXT_CHUNKS = {b"tEXt", b"zTXt", b"iTXt"}
PNG_ICC_NAME = b"ICC profile"  # the profile's name in iCCP (required, 1-79 Latin-1 characters; ours is not kept)
PNG_COMPRESS_TEXT = 1024  # texts longer than this are written zlib-compressed (zTXt, or iTXt with its flag set)
WEBP_ICC, WEBP_ALPHA, WEBP_EXIF = 0x20, 0x10, 0x08  # VP8X flag bits

ORIENTATION = 0x0112
EXIF_IFD = 0x8769  # IFD0's pointer to the Exif sub-IFD
PIXEL_DIMENSIONS = (0xA002, 0xA003)  # PixelXDimension, PixelYDimension: the size the camera recorded
ICC_TAG = 34675  # TIFF's InterColorProfile
SUB_IFDS = {0x8769, 0x8825, 0xA005}  # pointers to the Exif, GPS and Interoperability IFDs
TIFF_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}  # bytes per value
# Tags that say how a TIFF's pixels are stored (size, strips, compression, samples...): they belong to each file
TIFF_IMAGE_TAGS = frozenset({254, 255, 256, 257, 258, 259, 262, 263, 264, 265, 266, 273, 277, 278, 279, 280, 281, 284,
                             288, 289, 290, 291, 292, 293, 317, 320, 321, 322, 323, 324, 325, 330, 332, 338, 339, 340,
                             341, 347, *range(512, 522), 529, 530, 531, 532})
NOT_EXIF_TAGS = TIFF_IMAGE_TAGS | {ICC_TAG, 700, 33723, 34377, 37724}  # and ICC, XMP, IPTC, Photoshop blocks, layers

Reader = Callable[[int, int], bytes]  # (offset, size) -> that many bytes, fewer at the end, none past it


@dataclass(frozen=True)
class Metadata:
    """What an image file carries besides its pixels that the upscaled result should keep."""

    exif: bytes | None = None  # the EXIF TIFF structure (starting b"II*\0" or b"MM\0*"), without b"Exif\0\0"
    icc: bytes | None = None  # the ICC profile, uncompressed
    text: tuple[tuple[str, str], ...] = ()  # PNG text chunks (keyword, text), in file order

    @property
    def orientation(self) -> int:
        """The EXIF orientation tag, 1..8; 1 when absent or unreadable."""
        found = _ifd0_entry_offset(self.exif, ORIENTATION) if self.exif else None
        if found is None:
            return 1
        order, at = found
        kind, count = struct.unpack_from(order + "HI", self.exif, at + 2)
        if kind not in (3, 4) or count < 1:
            return 1
        (value,) = struct.unpack_from(order + ("H" if kind == 3 else "I"), self.exif, at + 8)
        return value if 1 <= value <= 8 else 1


class _Malformed(Exception):
    """A metadata block, or an encoded file, that is not what its format says: what it holds is dropped."""


@dataclass(frozen=True)
class _Entry:
    """One TIFF directory entry: its value bytes in big-endian order, and the entries of the IFD it points to."""

    tag: int
    kind: int
    count: int
    value: bytes
    sub: tuple[_Entry, ...] = ()


# --- TIFF structures (EXIF blocks are one) --------------------------------------------------------------------------

def _tiff_order(head: bytes) -> str | None:
    """The struct byte order of a classic TIFF header ("<" or ">"), or None (BigTIFF is not read)."""
    return {b"II*\0": "<", b"MM\0*": ">"}.get(bytes(head[:4]))


def _ifd0(block: bytes) -> tuple[str, int, int] | None:
    """(byte order, offset, declared entry count) of a TIFF structure's first IFD, or None where it has none."""
    order = _tiff_order(block)
    if order is None or len(block) < 8:
        return None
    (ifd,) = struct.unpack_from(order + "I", block, 4)
    if ifd + 2 > len(block):
        return None
    return order, ifd, struct.unpack_from(order + "H", block, ifd)[0]


def _ifd0_entry_offset(block: bytes, tag: int) -> tuple[str, int] | None:
    """(byte order, the offset of the 12-byte entry) of `tag` in a TIFF structure's first IFD, or None."""
    found = _ifd0(block)
    if found is None:
        return None
    order, ifd, count = found
    for at in range(ifd + 2, min(ifd + 2 + 12 * min(count, MAX_IFD_ENTRIES), len(block) - 11), 12):
        if struct.unpack_from(order + "H", block, at)[0] == tag:
            return order, at
    return None


def _has_ifd1(block: bytes) -> bool:
    """Whether an EXIF block links a second IFD after IFD0 (the thumbnail's)."""
    found = _ifd0(block)
    if found is None:
        return False
    order, ifd, count = found
    link = ifd + 2 + 12 * count
    return link + 4 <= len(block) and struct.unpack_from(order + "I", block, link)[0] != 0


def _reset_orientation(block: bytes) -> bytes:
    """The EXIF block with its orientation tag set to 1 (upright) in place; unchanged when it has none."""
    position = _ifd0_entry_offset(block, ORIENTATION)
    if position is None:
        return block
    order, at = position
    out = bytearray(block)
    out[at + 2 : at + 12] = struct.pack(order + "HIH2x", 3, 1, 1)  # SHORT, one value, 1
    return bytes(out)


def _set_pixel_dimensions(block: bytes, height: int, width: int) -> bytes:
    """The EXIF block with the Exif IFD's PixelXDimension and PixelYDimension, where present, set to `width` and
    `height` in place (as LONGs: a SHORT entry may not hold an upscaled side); unchanged where it has neither."""
    pointer = _ifd0_entry_offset(block, EXIF_IFD)
    if pointer is None:
        return block
    order, at = pointer
    (ifd,) = struct.unpack_from(order + "I", block, at + 8)
    if ifd + 2 > len(block):
        return block
    (count,) = struct.unpack_from(order + "H", block, ifd)
    out = bytearray(block)
    for entry in range(ifd + 2, min(ifd + 2 + 12 * min(count, MAX_IFD_ENTRIES), len(block) - 11), 12):
        tag = struct.unpack_from(order + "H", block, entry)[0]
        if tag in PIXEL_DIMENSIONS:
            side = width if tag == PIXEL_DIMENSIONS[0] else height
            out[entry + 2 : entry + 12] = struct.pack(order + "HII", 4, 1, side)  # LONG, one value
    return bytes(out)


def _swap(value: bytes, kind: int) -> bytes:
    """A TIFF value's bytes in the other byte order: each element reversed (a RATIONAL is two LONGs)."""
    unit = 4 if kind in (5, 10) else TIFF_TYPE_SIZES[kind]
    if unit == 1:
        return value
    return np.frombuffer(value, dtype=f">u{unit}").byteswap().tobytes()


def _budget(read: Reader, limit: int) -> Reader:
    """`read` that raises _Malformed once more than `limit` bytes in all are asked for."""
    used = 0

    def limited(offset: int, size: int) -> bytes:
        nonlocal used
        used += size
        if used > limit:
            raise _Malformed(f"its directories point at over {limit:,} bytes of values")
        return read(offset, size)

    return limited


def _read_ifd(read: Reader, order: str, offset: int, skip: frozenset[int] = frozenset(), depth: int = 0,
              seen: set[int] | None = None) -> tuple[_Entry, ...]:
    """The entries of the IFD at `offset` but `skip`, with their values and sub-IFDs; _Malformed for a broken IFD.

    An entry of unknown type or whose value lies outside is left out (logged), as a viewer would ignore it.
    """
    seen = set() if seen is None else seen
    if depth > MAX_IFD_DEPTH or offset in seen:
        raise _Malformed("its IFDs loop or nest too deep")
    seen.add(offset)
    head = read(offset, 2)
    if len(head) < 2:
        raise _Malformed(f"an IFD offset ({offset:,}) points outside it")
    (count,) = struct.unpack(order + "H", head)
    if count > MAX_IFD_ENTRIES:
        raise _Malformed(f"an IFD declares {count:,} entries, over {MAX_IFD_ENTRIES:,}")
    table = read(offset + 2, 12 * count)
    if len(table) < 12 * count:
        raise _Malformed(f"an IFD of {count:,} entries at {offset:,} runs past its end")
    entries = []
    for i in range(count):
        tag, kind, number, inline = struct.unpack_from(order + "HHI4s", table, 12 * i)
        if tag in skip:
            continue
        size = TIFF_TYPE_SIZES.get(kind, 0) * number
        if size > EXIF_READ_BUDGET:  # checked before asking: a declared count is not trusted
            raise _Malformed(f"tag 0x{tag:04x} declares {size:,} bytes")
        value = inline[:size] if size <= 4 else read(struct.unpack(order + "I", inline)[0], size)
        if kind not in TIFF_TYPE_SIZES or len(value) < size:
            log.debug("metadata: EXIF tag 0x%04x (type %d) left out: unknown type or value outside", tag, kind)
            continue
        sub: tuple[_Entry, ...] = ()
        if tag in SUB_IFDS:
            if kind not in (4, 13) or number != 1:
                raise _Malformed(f"its IFD pointer 0x{tag:04x} is not one LONG")
            sub = _read_ifd(read, order, struct.unpack(order + "I", value)[0], frozenset(), depth + 1, seen)
        entries.append(_Entry(tag, kind, number, value if order == ">" else _swap(value, kind), sub))
    return tuple(entries)


def _exif_entries(block: bytes) -> tuple[_Entry, ...]:
    """The IFD0 entries of an EXIF block, sub-IFDs included; _Malformed if its structure is broken."""
    order = _tiff_order(block)
    if order is None or len(block) < 8:
        raise _Malformed("it does not start with a TIFF header")
    read = _budget(lambda offset, size: block[offset : offset + size], EXIF_READ_BUDGET)
    return _read_ifd(read, order, struct.unpack_from(order + "I", block, 4)[0])


def _exif_problem(block: bytes) -> str | None:
    """Why an EXIF block cannot be carried (over the cap, not a TIFF structure, broken IFDs), or None."""
    if len(block) > MAX_EXIF:
        return f"{len(block):,} bytes, over the {MAX_EXIF:,}-byte cap"
    try:
        _exif_entries(block)
    except _Malformed as exc:
        return str(exc)
    return None


def _write_ifd(entries: Sequence[_Entry], order: str, base: int, kept: Sequence[bytes] = (),
               next_ifd: int = 0) -> bytes:
    """`entries`, and `kept` (12-byte entries already in `order`), as one IFD sorted by tag at file offset `base`
    (even), followed by the values longer than 4 bytes and the IFDs the entries point to, each on an even offset."""
    rows = [(struct.unpack_from(order + "H", raw)[0], raw) for raw in kept]
    end = base + 2 + 12 * (len(entries) + len(kept)) + 4
    tail = bytearray()
    for entry in entries:
        at = end + len(tail)
        if entry.tag in SUB_IFDS:
            tail += _write_ifd(entry.sub, order, at)
            kind, count, inline = 4, 1, struct.pack(order + "I", at)
        else:
            value = entry.value if order == ">" else _swap(entry.value, entry.kind)
            kind, count = entry.kind, entry.count
            if len(value) <= 4:
                inline = value.ljust(4, b"\0")
            else:
                tail += value
                inline = struct.pack(order + "I", at)
        tail += b"\0" * (len(tail) & 1)  # TIFF offsets are even
        rows.append((entry.tag, struct.pack(order + "HHI", entry.tag, kind, count) + inline))
    rows.sort(key=lambda row: row[0])  # readers may binary-search a directory
    table = b"".join(raw for _, raw in rows)
    return struct.pack(order + "H", len(rows)) + table + struct.pack(order + "I", next_ifd) + bytes(tail)


def _exif_block(entries: Sequence[_Entry], order: str) -> bytes:
    """A standalone EXIF TIFF structure holding `entries` as its IFD0."""
    return (b"II*\0" if order == "<" else b"MM\0*") + struct.pack(order + "I", 8) + _write_ifd(entries, order, 8)


# --- reading --------------------------------------------------------------------------------------------------------

class _File:
    """An unbuffered file read at offsets, clipped to its size: a declared length is never trusted past the end, and
    no read-ahead pulls in pixel data that a walk skips."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.size = os.fstat(raw.fileno()).st_size

    def read(self, offset: int, size: int) -> bytes:
        """Up to `size` bytes at `offset`: fewer at the end of the file, none past it."""
        size = min(size, self.size - offset)
        if size <= 0:
            return b""
        self.raw.seek(offset)
        parts = []
        while size > 0:
            part = self.raw.read(size)  # an unbuffered read may return less than asked
            if not part:
                break
            parts.append(part)
            size -= len(part)
        return b"".join(parts)


@dataclass
class _Found:
    """What a walk through a file has kept so far, and what it dropped and why."""

    exif: bytes | None = None
    icc: bytes | None = None
    text: list[tuple[str, str]] = field(default_factory=list)
    text_bytes: int = 0
    dropped: list[str] = field(default_factory=list)

    def add_exif(self, block: bytes, where: str) -> None:
        """Keep the file's first EXIF block that can be carried; some writers keep JPEG's prefix in PNG and WebP."""
        if self.exif is not None:
            return
        block = block[len(JPEG_EXIF) :] if block.startswith(JPEG_EXIF) else block
        problem = _exif_problem(block)
        if problem:
            self.dropped.append(f"the EXIF block in {where} ({problem})")
        else:
            self.exif = block

    def add_icc(self, profile: bytes) -> None:
        """Keep the file's first ICC profile."""
        if self.icc is None:
            self.icc = profile

    def text_left(self) -> int:
        """Bytes of text the cap still allows."""
        return MAX_TEXT - self.text_bytes

    def add_text(self, keyword: str, text: str) -> None:
        """Keep a text chunk while all of them stay within MAX_TEXT."""
        size = 12 + len(keyword.encode()) + len(text.encode())
        if size > self.text_left():
            if self.text_bytes <= MAX_TEXT:  # said once, not once per chunk
                self.dropped.append(f"the PNG text chunks from {keyword!r} on (over the {MAX_TEXT:,}-byte cap)")
            self.text_bytes = MAX_TEXT + 1
            return
        self.text_bytes += size
        self.text.append((keyword, text))


def _read_jpeg(file: _File, found: _Found) -> None:
    """Walk a JPEG's segments from SOI to its first scan: its first Exif APP1 and its ICC_PROFILE APP2 chunks."""
    icc: dict[int, bytes] = {}
    icc_counts: set[int] = set()
    icc_problem = None
    pos = 2
    for _ in range(MAX_CHUNKS):
        head = file.read(pos, 4)
        if len(head) < 2 or head[0] != 0xFF:
            found.dropped.append(f"what follows byte {pos:,} (not a JPEG marker)")
            break
        marker = head[1]
        if marker == 0xFF:  # a fill byte before a marker
            pos += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        if marker in (0xDA, 0xD9):  # a scan (pixels) or the end: JPEG metadata precedes both
            break
        length = int.from_bytes(head[2:4], "big") if len(head) == 4 else 0
        if length < 2 or pos + 2 + length > file.size:  # the length counts its own 2 bytes
            found.dropped.append(f"what follows byte {pos:,} (a segment's length field says {length:,};"
                                 f" the file has {file.size:,} bytes)")
            break
        body, size = pos + 4, length - 2
        if marker == 0xE1 and size >= 6 and file.read(body, 6) == JPEG_EXIF:
            found.add_exif(file.read(body + 6, size - 6), "an APP1 segment")
        elif marker == 0xE2 and size >= 14 and file.read(body, 12) == JPEG_ICC:
            sequence, count = file.read(body + 12, 2)
            if sequence in icc or not 1 <= sequence <= count:
                icc_problem = f"chunk {sequence} of {count} is repeated or out of range"
            elif sum(map(len, icc.values())) + size - 14 > MAX_ICC:
                icc_problem = f"over the {MAX_ICC:,}-byte cap"
            else:
                icc[sequence] = file.read(body + 14, size - 14)
                icc_counts.add(count)
        pos += 2 + length
    else:
        found.dropped.append(f"what follows byte {pos:,} (over {MAX_CHUNKS:,} segments)")
    if icc and not icc_problem and icc_counts != {len(icc)}:
        icc_problem = f"{len(icc)} APP2 chunks, where they declare {' or '.join(map(str, sorted(icc_counts)))}"
    if icc_problem:
        found.dropped.append(f"the ICC profile ({icc_problem})")
    elif icc:
        found.add_icc(b"".join(icc[i] for i in sorted(icc)))


def _inflate(data: bytes, limit: int) -> bytes:
    """A zlib stream's content, _Malformed past `limit` bytes (a small chunk may inflate to gigabytes) or if broken."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise _Malformed(f"broken zlib data: {exc}") from None
    if len(out) > limit:
        raise _Malformed(f"it inflates past {limit:,} bytes")
    if not inflater.eof:
        raise _Malformed("its zlib data is truncated")
    return out


def _split_keyword(body: bytes) -> tuple[str, bytes]:
    """A PNG chunk's NUL-terminated Latin-1 keyword (1-79 bytes, as the spec says) and what follows it."""
    keyword, nul, rest = body.partition(b"\0")
    if not nul or not 1 <= len(keyword) <= 79:
        raise _Malformed("no keyword of 1 to 79 bytes")
    return keyword.decode("latin-1"), rest


def _png_text(kind: bytes, body: bytes, limit: int) -> tuple[str, str]:
    """(keyword, text) of a tEXt, zTXt or iTXt chunk; iTXt's language tag and translated keyword are not kept."""
    keyword, rest = _split_keyword(body)
    if kind == b"tEXt":
        return keyword, rest.decode("latin-1")
    if kind == b"zTXt":
        if rest[:1] != b"\0":
            raise _Malformed("unknown compression method")
        return keyword, _inflate(rest[1:], limit).decode("latin-1")
    if len(rest) < 2 or rest[1] != 0:
        raise _Malformed("unknown compression method")
    compressed = rest[0] == 1
    _language, _, rest = rest[2:].partition(b"\0")
    _translated, nul, text = rest.partition(b"\0")
    if not nul:
        raise _Malformed("its language tag or translated keyword is unterminated")
    try:
        return keyword, (_inflate(text, limit) if compressed else text).decode("utf-8")
    except UnicodeDecodeError:
        raise _Malformed("its text is not UTF-8") from None


def _png_icc(body: bytes) -> bytes:
    """The profile in an iCCP chunk: name, NUL, compression method 0, zlib data."""
    _name, rest = _split_keyword(body)
    if rest[:1] != b"\0":
        raise _Malformed("unknown compression method")
    return _inflate(rest[1:], MAX_ICC)


def _read_png_chunk(file: _File, pos: int, kind: bytes, length: int, found: _Found) -> None:
    """Keep one iCCP, eXIf or text chunk whose size fits its cap and whose CRC matches."""
    name = kind.decode("latin-1")
    cap = {b"iCCP": MAX_ICC + 1024, b"eXIf": MAX_EXIF}.get(kind, MAX_TEXT)  # iCCP: its profile deflated, plus name
    if length > cap:
        found.dropped.append(f"the {name} chunk at byte {pos:,} ({length:,} bytes, over the {cap:,}-byte cap)")
        return
    data = file.read(pos + 8, length + 4)
    body, crc = data[:length], data[length:]
    if zlib.crc32(kind + body) != int.from_bytes(crc, "big"):
        found.dropped.append(f"the {name} chunk at byte {pos:,} (its CRC does not match)")
        return
    try:
        if kind == b"iCCP":
            found.add_icc(_png_icc(body))
        elif kind == b"eXIf":
            found.add_exif(body, "the eXIf chunk")
        elif found.text_left() > 0:
            found.add_text(*_png_text(kind, body, found.text_left()))
    except _Malformed as exc:
        found.dropped.append(f"the {name} chunk at byte {pos:,} ({exc})")


def _read_png(file: _File, found: _Found) -> None:
    """Walk a PNG's chunks to IEND; the pixel data (IDAT) is skipped, never read, and only text may follow it."""
    pos, before_pixels = 8, True
    for _ in range(MAX_CHUNKS):
        head = file.read(pos, 8)
        if len(head) < 8:
            break
        length, kind = struct.unpack(">I4s", head)
        if pos + 12 + length > file.size:
            found.dropped.append(f"what follows byte {pos:,} (a {kind!r} chunk declares {length:,} bytes;"
                                 f" the file has {file.size:,})")
            break
        if kind == b"IEND":
            break
        if kind == b"IDAT":
            before_pixels = False
        elif kind in PNG_TEXT_CHUNKS or (before_pixels and kind in (b"iCCP", b"eXIf")):  # the spec's order
            _read_png_chunk(file, pos, kind, length, found)
        pos += 12 + length
    else:
        found.dropped.append(f"what follows byte {pos:,} (over {MAX_CHUNKS:,} chunks)")


def _read_webp(file: _File, found: _Found) -> None:
    """Walk a WebP's RIFF chunks: ICCP and EXIF; the image chunks are skipped, never read."""
    end = min(8 + int.from_bytes(file.read(4, 4), "little"), file.size)
    pos = 12
    for _ in range(MAX_CHUNKS):
        head = file.read(pos, 8)
        if len(head) < 8:
            break
        kind, length = head[:4], int.from_bytes(head[4:], "little")
        if pos + 8 + length > end:
            found.dropped.append(f"what follows byte {pos:,} (a {kind!r} chunk declares {length:,} bytes;"
                                 f" the file has {end:,})")
            break
        if kind == b"ICCP":
            if length > MAX_ICC:
                found.dropped.append(f"the ICC profile ({length:,} bytes, over the {MAX_ICC:,}-byte cap)")
            else:
                found.add_icc(file.read(pos + 8, length))
        elif kind == b"EXIF":
            if length > MAX_EXIF:
                found.dropped.append(f"the EXIF block ({length:,} bytes, over the {MAX_EXIF:,}-byte cap)")
            else:
                found.add_exif(file.read(pos + 8, length), "the EXIF chunk")
        pos += 8 + length + (length & 1)  # chunks are padded to an even size
    else:
        found.dropped.append(f"what follows byte {pos:,} (over {MAX_CHUNKS:,} chunks)")


def _read_tiff(file: _File, found: _Found) -> None:
    """A TIFF's ICC tag, and its first IFD's descriptive tags with the Exif and GPS IFDs rebuilt as an EXIF block."""
    order = _tiff_order(file.read(0, 4))
    if order is None:
        return
    (ifd,) = struct.unpack(order + "I", file.read(4, 4))
    icc = _tiff_icc(file, order, ifd)
    if isinstance(icc, str):
        found.dropped.append(f"the ICC profile ({icc})")
    elif icc:
        found.add_icc(icc)
    try:
        # Entries may all point at one value: what they ask for in all is bounded by the file as well as the cap
        entries = _read_ifd(_budget(file.read, min(EXIF_READ_BUDGET, file.size)), order, ifd, NOT_EXIF_TAGS)
    except _Malformed as exc:
        found.dropped.append(f"the EXIF tags ({exc})")
        return
    if entries:
        found.add_exif(_exif_block(entries, order), "the TIFF's tags")


def _tiff_icc(file: _File, order: str, ifd: int) -> bytes | str | None:
    """The profile in a TIFF's first IFD (tag 34675), None without one, or why it is dropped."""
    (count,) = struct.unpack(order + "H", file.read(ifd, 2).ljust(2, b"\0"))
    table = file.read(ifd + 2, 12 * min(count, MAX_IFD_ENTRIES))
    for at in range(0, len(table) - 11, 12):
        tag, kind, number, inline = struct.unpack_from(order + "HHI4s", table, at)
        if tag != ICC_TAG:
            continue
        if kind not in (1, 7) or number > MAX_ICC:
            return f"type {kind}, {number:,} bytes (UNDEFINED bytes up to {MAX_ICC:,} are read)"
        profile = inline[:number] if number <= 4 else file.read(struct.unpack(order + "I", inline)[0], number)
        return profile if len(profile) == number else "its bytes lie past the end of the file"
    return None


READERS: dict[bytes, Callable[[_File, _Found], None]] = {b"\xff\xd8": _read_jpeg, b"\x89P": _read_png,
                                                         b"RI": _read_webp, b"II": _read_tiff, b"MM": _read_tiff}


def read_metadata(path: Path) -> Metadata:
    """The EXIF, ICC profile and PNG text of a PNG, JPEG, WebP or TIFF file (known by its signature), without
    decoding pixels. Reads only the metadata's bytes, never trusting a declared length past the file's end; a block
    over its cap (EXIF 64 KiB, ICC 4 MiB, text 1 MiB in all) or malformed is dropped and logged at debug level. Any
    other file, or one that cannot be read, gives Metadata(): metadata never fails a run."""
    found = _Found()
    try:
        if not path.is_file():  # a folder, a FIFO or a device: nothing to read, and a FIFO would block
            return Metadata()
        with path.open("rb", buffering=0) as raw:
            file = _File(raw)
            head = file.read(0, 12)
            reader = READERS.get(head[:2])
            if reader is not None and (reader is not _read_webp or head[8:12] == b"WEBP"):
                reader(file, found)
    except OSError as exc:
        log.debug("metadata: %s: not read: %s", path, exc)
        return Metadata()
    except Exception:  # a structure no walk foresaw: metadata must never fail a run, so it is dropped, not raised
        log.debug("metadata: %s: not read", path, exc_info=True)
        return Metadata()
    for reason in found.dropped:
        log.debug("metadata: %s: dropped %s", path, reason)
    return Metadata(found.exif, found.icc, tuple(found.text))


# EXIF orientation -> what turns the stored rows and columns (axes 0 and 1) into the picture as it is meant to be seen
TURNS: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda a: a[:, ::-1],  # stored mirrored left to right
    3: lambda a: a[::-1, ::-1],  # stored upside down
    4: lambda a: a[::-1],  # stored mirrored top to bottom
    5: lambda a: a.swapaxes(0, 1),  # stored transposed
    6: lambda a: a[::-1].swapaxes(0, 1),  # shown turned a quarter clockwise
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),  # stored transversed
    8: lambda a: a[:, ::-1].swapaxes(0, 1),  # shown turned a quarter counter-clockwise
}


def upright(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """An (H, W[, C]) array decoded with cv2.IMREAD_IGNORE_ORIENTATION turned and flipped as its EXIF orientation
    (1..8) says, as image viewers show it; any other value leaves it as it is. Returns a C-contiguous array."""
    turn = TURNS.get(orientation)
    return np.ascontiguousarray(pixels if turn is None else turn(pixels))


# --- embedding ------------------------------------------------------------------------------------------------------

def _icc_problem(icc: bytes, grey: bool) -> str | None:
    """Why a profile cannot describe the result's grey or RGB pixels (a CMYK profile from a CMYK JPEG), or None."""
    if len(icc) < 128 or icc[36:40] != b"acsp":
        return "not an ICC profile: no 'acsp' signature"
    space = icc[16:20]
    if space != (b"GRAY" if grey else b"RGB "):
        return f"a {space.decode('latin-1').strip()!r} profile does not describe {'grey' if grey else 'RGB'} pixels"
    return None


def _count(text: Sequence[object], what: str) -> str:
    """'1 PNG text chunk' or '3 PNG text chunks'."""
    return f"{len(text)} {what}{'' if len(text) == 1 else 's'}"


def _all_dropped(exif: bytes | None, icc: bytes | None, text: Sequence[tuple[str, str]], why: str) -> list[str]:
    """One line per kind of metadata present, each dropped for `why`."""
    return ([f"the EXIF block ({why})"] * (exif is not None) + [f"the ICC profile ({why})"] * (icc is not None)
            + [f"{_count(text, 'PNG text chunk')} ({why})"] * bool(text))


def _cannot_hold(suffix: str, exif: bytes | None, icc: bytes | None, text: Sequence[tuple[str, str]]) -> list[str]:
    """One line per kind of metadata present that a `suffix` file has no place for."""
    return (_all_dropped(exif, icc, (), f"{suffix} cannot hold one")
            + [f"{_count(text, 'PNG text chunk')} ({suffix} cannot hold {'it' if len(text) == 1 else 'them'})"]
            * bool(text))


def _jpeg_segment(marker: int, body: bytes) -> bytes:
    """A JPEG marker segment: FF, marker, 16-bit length (itself included), body."""
    return bytes((0xFF, marker)) + struct.pack(">H", len(body) + 2) + body


def _jpeg_header(data: bytes) -> tuple[list[bytes], int]:
    """The whole segments between a JPEG's SOI and its first scan, and the offset where that scan starts."""
    segments, pos = [], 2
    while True:
        if pos + 4 > len(data) or data[pos] != 0xFF:
            raise _Malformed(f"not a JPEG segment at byte {pos:,}")
        if data[pos + 1] == 0xDA:
            return segments, pos
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if length < 2 or pos + 2 + length > len(data):
            raise _Malformed(f"a segment at byte {pos:,} declares {length:,} bytes")
        segments.append(data[pos : pos + 2 + length])
        pos += 2 + length


def _embed_jpeg(data: bytes, suffix: str, exif: bytes | None, icc: bytes | None,
                text: Sequence[tuple[str, str]]) -> tuple[bytes, list[str]]:
    """APP1 Exif and APP2 ICC_PROFILE segments right after SOI (and a JFIF APP0, which must come first), then COM."""
    if not data.startswith(b"\xff\xd8"):
        raise _Malformed("it is not a JPEG")
    segments, scan = _jpeg_header(data)
    frames = [s for s in segments if s[1] in JPEG_SOF and len(s) > 9]
    grey = bool(frames) and frames[0][9] == 1  # the frame's component count
    dropped, new = [], []
    if exif is not None:
        if len(JPEG_EXIF) + len(exif) > JPEG_SEGMENT:
            dropped.append(f"the EXIF block ({len(exif):,} bytes; a JPEG segment holds {JPEG_SEGMENT - 6:,})")
        else:
            new.append(_jpeg_segment(0xE1, JPEG_EXIF + exif))
    if icc is not None:
        chunks = [icc[i : i + JPEG_ICC_CHUNK] for i in range(0, len(icc), JPEG_ICC_CHUNK)]
        problem = _icc_problem(icc, grey) or (f"{len(icc):,} bytes need {len(chunks)} APP2 segments; the ICC spec"
                                              f" numbers 255" if len(chunks) > 255 else None)
        if problem:
            dropped.append(f"the ICC profile ({problem})")
        else:  # the ICC spec's layout: "ICC_PROFILE\0", sequence number from 1, chunk count, up to 65,519 bytes
            new += [_jpeg_segment(0xE2, JPEG_ICC + bytes((n, len(chunks))) + chunk)
                    for n, chunk in enumerate(chunks, 1)]
    # JPEG has no keyed text; PNG text goes into COM segments as "keyword: text" in UTF-8 rather than being lost:
    # COM is what JPEG tools show as the comment (captions, generator prompts stay with the picture) and decoders
    # skip it. A text too long for one segment is dropped and said.
    for keyword, value in text:
        comment = f"{keyword}: {value}".encode()
        if len(comment) > JPEG_SEGMENT:
            dropped.append(f"the PNG text chunk {keyword!r} ({len(comment):,} bytes; a JPEG comment holds"
                           f" {JPEG_SEGMENT:,})")
        else:
            new.append(_jpeg_segment(0xFE, comment))
    replaced = {b"\xff\xe1": exif is not None, b"\xff\xe2": icc is not None}
    rest = [s for s in segments if not (replaced.get(s[:2]) and s[4:].startswith(JPEG_EXIF if s[1] == 0xE1
                                                                                    else JPEG_ICC))]
    lead = 1 if rest and rest[0][:2] == b"\xff\xe0" and rest[0][4:9] == b"JFIF\0" else 0
    return b"\xff\xd8" + b"".join(rest[:lead] + new + rest[lead:]) + data[scan:], dropped


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    """A PNG chunk: length, type, body, CRC of type and body."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_text_chunk(keyword: str, text: str) -> bytes:
    """tEXt (zTXt when long) for Latin-1 text, iTXt (compressed when long) for any other; _Malformed for what PNG
    cannot hold: a keyword not of 1-79 Latin-1 characters, or a NUL in the text."""
    try:
        key = keyword.encode("latin-1")
    except UnicodeEncodeError:
        raise _Malformed("PNG keywords are Latin-1") from None
    if not 1 <= len(key) <= 79 or b"\0" in key or "\0" in text:
        raise _Malformed("PNG wants a keyword of 1 to 79 characters and no NUL")
    utf8 = text.encode()
    long = len(utf8) > PNG_COMPRESS_TEXT
    try:
        latin = text.encode("latin-1")
    except UnicodeEncodeError:  # iTXt: keyword, compression flag and method, empty language and translated keyword
        return _png_chunk(b"iTXt", key + (b"\0\1\0\0\0" + zlib.compress(utf8) if long else b"\0\0\0\0\0" + utf8))
    if long:
        return _png_chunk(b"zTXt", key + b"\0\0" + zlib.compress(latin))
    return _png_chunk(b"tEXt", key + b"\0" + latin)


def _png_chunks(data: bytes) -> list[tuple[bytes, memoryview]]:
    """(type, whole chunk) for each chunk of a PNG, through IEND; views, not copies, of a result that may be large."""
    chunks, pos, view = [], len(PNG_SIGNATURE), memoryview(data)
    while pos < len(data):
        if pos + 12 > len(data):
            raise _Malformed(f"a chunk at byte {pos:,} is truncated")
        length, kind = struct.unpack_from(">I4s", data, pos)
        if pos + 12 + length > len(data):
            raise _Malformed(f"a {kind!r} chunk at byte {pos:,} declares {length:,} bytes")
        chunks.append((kind, view[pos : pos + 12 + length]))
        pos += 12 + length
    return chunks


def _embed_png(data: bytes, suffix: str, exif: bytes | None, icc: bytes | None,
               text: Sequence[tuple[str, str]]) -> tuple[bytes, list[str]]:
    """iCCP, eXIf and text chunks right after IHDR: before PLTE and IDAT, as the spec orders iCCP and eXIf."""
    if not data.startswith(PNG_SIGNATURE):
        raise _Malformed("it is not a PNG")
    chunks = _png_chunks(data)
    if not chunks or chunks[0][0] != b"IHDR" or len(chunks[0][1]) != 25:
        raise _Malformed("it does not start with IHDR")
    grey = chunks[0][1][17] in (0, 4)  # colour type: grey, grey + alpha
    dropped, new = [], []
    problem = _icc_problem(icc, grey) if icc is not None else None
    if problem:
        dropped.append(f"the ICC profile ({problem})")
        icc = None
    if icc is not None:  # name, NUL, compression method 0, zlib stream
        new.append(_png_chunk(b"iCCP", PNG_ICC_NAME + b"\0\0" + zlib.compress(icc)))
    if exif is not None:
        new.append(_png_chunk(b"eXIf", exif))
    for keyword, value in text:
        try:
            new.append(_png_text_chunk(keyword, value))
        except _Malformed as exc:
            dropped.append(f"the PNG text chunk {keyword!r} ({exc})")
    replaced = ({b"eXIf"} if exif is not None else set()) | ({b"iCCP", b"sRGB"} if icc is not None else set())
    rest = [whole for kind, whole in chunks[1:] if kind not in replaced]
    return b"".join([PNG_SIGNATURE, chunks[0][1], *new, *rest]), dropped


def _riff_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(fourcc, payload) for each chunk of a RIFF WebP file."""
    end = min(8 + int.from_bytes(data[4:8], "little"), len(data))
    chunks, pos = [], 12
    while pos + 8 <= end:
        kind, length = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        if pos + 8 + length > end:
            raise _Malformed(f"a {kind!r} chunk at byte {pos:,} declares {length:,} bytes")
        chunks.append((kind, data[pos + 8 : pos + 8 + length]))
        pos += 8 + length + (length & 1)
    return chunks


def _riff_chunk(kind: bytes, payload: bytes) -> bytes:
    """A RIFF chunk: fourcc, little-endian size, payload padded to an even size."""
    return kind + struct.pack("<I", len(payload)) + payload + b"\0" * (len(payload) & 1)


def _webp_canvas(kind: bytes, payload: bytes) -> tuple[int, int, bool]:
    """(width, height, alpha) of a simple WebP's VP8 (lossy) or VP8L (lossless) bitstream header."""
    if kind == b"VP8L" and len(payload) >= 5 and payload[0] == 0x2F:
        bits = int.from_bytes(payload[1:5], "little")  # 14 bits width - 1, 14 bits height - 1, alpha hint
        return (bits & 0x3FFF) + 1, (bits >> 14 & 0x3FFF) + 1, bool(bits >> 28 & 1)
    if kind == b"VP8 " and len(payload) >= 10 and payload[3:6] == b"\x9d\x01\x2a":
        width, height = struct.unpack_from("<HH", payload, 6)  # 14 bits each, then 2 bits of scaling
        return width & 0x3FFF, height & 0x3FFF, False
    raise _Malformed(f"its first chunk {kind!r} is not a VP8, VP8L or VP8X header")


def _embed_webp(data: bytes, suffix: str, exif: bytes | None, icc: bytes | None,
                text: Sequence[tuple[str, str]]) -> tuple[bytes, list[str]]:
    """The extended layout, in the spec's order: VP8X (canvas size, flags), ICCP, the image chunks, EXIF, any XMP."""
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise _Malformed("it is not a WebP")
    chunks = _riff_chunks(data)
    if not chunks:
        raise _Malformed("it holds no chunk")
    dropped = _cannot_hold(suffix, None, None, text)
    problem = _icc_problem(icc, grey=False) if icc is not None else None  # WebP pixels are always RGB
    if problem:
        dropped.append(f"the ICC profile ({problem})")
        icc = None
    if exif is None and icc is None:
        return data, dropped
    kind, payload = chunks[0]
    if kind == b"VP8X":
        flags, canvas, image = payload[0], payload[4:10], chunks[1:]
    else:
        width, height, alpha = _webp_canvas(kind, payload)
        canvas = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
        flags, image = WEBP_ALPHA * alpha, chunks
    replaced = ({b"EXIF"} if exif is not None else set()) | ({b"ICCP"} if icc is not None else set())
    image = [chunk for chunk in image if chunk[0] not in replaced]
    flags |= WEBP_ICC * (icc is not None) | WEBP_EXIF * (exif is not None)
    ordered = ([(b"VP8X", bytes((flags, 0, 0, 0)) + canvas)] + [(b"ICCP", icc)] * (icc is not None)
               + [c for c in image if c[0] != b"XMP "] + [(b"EXIF", exif)] * (exif is not None)
               + [c for c in image if c[0] == b"XMP "])
    body = b"WEBP" + b"".join(_riff_chunk(k, bytes(v)) for k, v in ordered)
    return b"RIFF" + struct.pack("<I", len(body)) + body, dropped


def _embed_tiff(data: bytes, suffix: str, exif: bytes | None, icc: bytes | None,
                text: Sequence[tuple[str, str]]) -> tuple[bytes, list[str]]:
    """A new first IFD appended to the file: its own entries (strips untouched) plus the ICC tag, the EXIF IFD0 tags
    and its Exif/GPS IFDs moved after it; the header points to it. The EXIF thumbnail (IFD1) is not carried."""
    order = _tiff_order(data)
    if order is None or len(data) < 8:
        raise _Malformed("it is not a classic TIFF")
    (ifd,) = struct.unpack_from(order + "I", data, 4)
    if ifd + 2 > len(data):
        raise _Malformed("its IFD offset points outside")
    (count,) = struct.unpack_from(order + "H", data, ifd)
    if ifd + 6 + 12 * count > len(data):
        raise _Malformed(f"its IFD of {count:,} entries runs past the end")
    rows = {struct.unpack_from(order + "H", data, at)[0]: data[at : at + 12]
            for at in range(ifd + 2, ifd + 2 + 12 * count, 12)}
    (next_ifd,) = struct.unpack_from(order + "I", data, ifd + 2 + 12 * count)
    photometric = struct.unpack_from(order + "H", rows.get(262, b"\0" * 12), 8)[0]
    dropped = _cannot_hold(suffix, None, None, text)
    added: list[_Entry] = []
    problem = _icc_problem(icc, grey=photometric in (0, 1)) if icc is not None else None
    if problem:
        dropped.append(f"the ICC profile ({problem})")
    elif icc is not None:
        added.append(_Entry(ICC_TAG, 7, len(icc), icc))
    if exif is not None:
        added += [entry for entry in _exif_entries(exif) if entry.tag not in NOT_EXIF_TAGS and entry.tag not in rows]
        if _has_ifd1(exif):
            dropped.append("the EXIF thumbnail (a TIFF keeps the EXIF tags, not its IFD1 thumbnail)")
    if not added:
        return data, dropped
    base = len(data) + (len(data) & 1)
    kept = [raw for tag, raw in rows.items() if tag not in {entry.tag for entry in added}]
    directory = _write_ifd(added, order, base, kept, next_ifd)
    if base + len(directory) > 0xFFFFFFFF:
        return data, dropped + _all_dropped(exif, icc, (), "the TIFF would pass 4 GiB")
    out = bytearray(data + b"\0" * (base - len(data)) + directory)
    out[4:8] = struct.pack(order + "I", base)
    return bytes(out), dropped


def _embed_bmp(data: bytes, suffix: str, exif: bytes | None, icc: bytes | None,
               text: Sequence[tuple[str, str]]) -> tuple[bytes, list[str]]:
    """Nothing: the BMP OpenCV writes (BITMAPINFOHEADER) has no place for metadata."""
    return data, _cannot_hold(suffix, exif, icc, text)


Embedder = Callable[[bytes, str, bytes | None, bytes | None, Sequence[tuple[str, str]]], tuple[bytes, list[str]]]
EMBEDDERS: dict[str, Embedder] = {".jpg": _embed_jpeg, ".jpeg": _embed_jpeg, ".png": _embed_png, ".webp": _embed_webp,
                                  ".tif": _embed_tiff, ".tiff": _embed_tiff, ".bmp": _embed_bmp}


def embed(encoded: bytes, suffix: str, metadata: Metadata,
          size: tuple[int, int] | None = None) -> tuple[bytes, list[str]]:
    """`encoded` (what cv2.imencode(suffix, pixels) returned) with `metadata` put in where the format can hold it and
    the EXIF orientation reset to 1, and the list of what could not be kept, each with why (e.g. "the ICC profile
    (.bmp cannot hold one)"), also logged at debug level. The pixel data is not touched: it decodes identically.
    size: the result's (height, width), for the EXIF block's PixelYDimension and PixelXDimension."""
    data, suffix = bytes(encoded), suffix.lower()
    exif, icc, text = metadata.exif, metadata.icc, metadata.text
    dropped = []
    problem = _exif_problem(exif) if exif is not None else None
    if problem:
        dropped.append(f"the EXIF block ({problem})")
        exif = None
    elif exif is not None:
        exif = _reset_orientation(exif)  # the pixels were turned upright on reading
        exif = exif if size is None else _set_pixel_dimensions(exif, *size)  # the photo's size no longer holds
    embedder = EMBEDDERS.get(suffix)
    if embedder is None:
        dropped += _all_dropped(exif, icc, text, f"{suffix or 'no suffix'} is not a format metadata is written to")
    elif exif is not None or icc is not None or text:
        try:
            data, more = embedder(data, suffix, exif, icc, text)
            dropped += more
        except _Malformed as exc:  # not what OpenCV writes: left as it is
            dropped += _all_dropped(exif, icc, text, f"the encoded {suffix} file: {exc}")
        except Exception as exc:  # a structure no embedder foresaw: metadata must never fail a run
            log.debug("metadata: embedding in %s failed", suffix, exc_info=True)
            dropped += _all_dropped(exif, icc, text, f"embedding failed: {type(exc).__name__}: {exc}")
    for reason in dropped:
        log.debug("metadata: not kept: %s", reason)
    return data, dropped
