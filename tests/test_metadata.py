"""srcnn.metadata: EXIF (orientation reset to 1), ICC profiles and PNG text read from real files made by Pillow and
OpenCV, carried into what cv2.imencode writes with the pixels unchanged, and read back by Pillow; `upright` against
Pillow's exif_transpose; hostile files read quickly, within the file, never raising."""

from __future__ import annotations

import functools
import io
import logging
import struct
import time
import tracemalloc
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps, PngImagePlugin, TiffImagePlugin

from srcnn.metadata import Metadata, embed, read_metadata, upright

MAKE, MODEL, TAKEN = "Canon", "EOS R5", "2024:05:06 07:08:09"
EXPOSURE = (1, 250)  # a RATIONAL: its two LONGs are swapped one by one between byte orders, not as 8 bytes
TEXT = (("Title", "Harbour at dawn"), ("Comment", "夜明けの港、東京湾"), ("Author", "Ada " * 400))  # tEXt, iTXt, zTXt
SIZE = (24, 32)  # (height, width): not square, so a quarter turn shows
SUFFIXES = (".jpg", ".png", ".webp", ".tif", ".bmp")
HOLDS = {".jpg": {"exif", "icc", "text"}, ".png": {"exif", "icc", "text"}, ".webp": {"exif", "icc"},
         ".tif": {"exif", "icc"}, ".bmp": set()}  # what each result format keeps (JPEG: text as COM segments)
EXACT = {".png", ".tif", ".bmp"}  # decode to the very pixels encoded (WebP too, but for colour under alpha 0)


@functools.cache
def srgb() -> bytes:
    """A real ICC profile: Pillow's (LittleCMS's) sRGB."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@functools.cache
def big_icc() -> bytes:
    """A 200,000-byte profile (a real one padded, its header's size field updated): four JPEG APP2 segments."""
    data = bytearray(srgb() + bytes(range(256)) * ((200_000 - len(srgb())) // 256 + 1))[:200_000]
    data[:4] = struct.pack(">I", len(data))
    return bytes(data)


def recoloured(icc: bytes, space: bytes) -> bytes:
    """The profile with another data colour space in its header (b"GRAY", b"CMYK"): only its bytes are carried."""
    return icc[:16] + space + icc[20:]


def exif_bytes(orientation: int = 6, endian: str = ">") -> bytes:
    """An EXIF block as a camera writes it: Make, Model and Orientation in IFD0, the date and exposure in the Exif
    IFD; without the b"Exif\\0\\0" prefix."""
    exif = Image.Exif()
    exif.endian = endian
    exif[0x010F], exif[0x0110], exif[0x0112] = MAKE, MODEL, orientation
    sub = exif.get_ifd(0x8769)
    sub[0x9003], sub[0x829A] = TAKEN, TiffImagePlugin.IFDRational(*EXPOSURE)
    data = exif.tobytes()
    return data[6:] if data.startswith(b"Exif\0\0") else data


def tags(exif: Image.Exif | bytes | None) -> dict[str, object]:
    """The tags these tests write, as Pillow reads them."""
    if not isinstance(exif, Image.Exif):
        loaded = Image.Exif()
        loaded.load(exif or b"")
        exif = loaded
    sub = exif.get_ifd(0x8769)
    exposure = sub.get(0x829A)
    return {"Make": exif.get(0x010F), "Model": exif.get(0x0110), "Orientation": exif.get(0x0112),
            "DateTimeOriginal": sub.get(0x9003),
            "ExposureTime": None if exposure is None else (exposure.numerator, exposure.denominator)}


def written_tags(orientation: int) -> dict[str, object]:
    """tags() of exif_bytes() with `orientation`."""
    return {"Make": MAKE, "Model": MODEL, "Orientation": orientation, "DateTimeOriginal": TAKEN,
            "ExposureTime": EXPOSURE}


def pixels(dtype: type = np.uint8, channels: int = 3, size: tuple[int, int] = SIZE) -> np.ndarray:
    """Seeded noise as OpenCV holds it: (H, W) grey or (H, W, C) BGR(A)."""
    top = np.iinfo(dtype).max
    shape = size if channels == 1 else (*size, channels)
    return np.random.default_rng(channels * 7 + top).integers(0, top, shape, dtype=dtype, endpoint=True)


def pil_rgb(bgr: np.ndarray) -> Image.Image:
    """A BGR(A) uint8 array as a Pillow RGB(A) image."""
    return Image.fromarray(np.ascontiguousarray(bgr[:, :, [2, 1, 0, 3][: bgr.shape[2]]]))


def png_info(text: tuple[tuple[str, str], ...]) -> PngImagePlugin.PngInfo:
    """Pillow's PNG text: Latin-1 as tEXt (zTXt when long), the rest as iTXt."""
    info = PngImagePlugin.PngInfo()
    for keyword, value in text:
        if value.isascii():
            info.add_text(keyword, value, zip=len(value) > 1000)
        else:
            info.add_itxt(keyword, value)
    return info


def make_source(kind: str, folder: Path) -> tuple[Path, np.ndarray, Metadata]:
    """A real file of `kind` with metadata; its pixels (BGR(A), as OpenCV decodes them before any orientation) and
    what was written into it."""
    exif, icc, text = exif_bytes(), srgb(), ()
    bgr = pixels()
    # Pillow wants the block as Exif.tobytes() gives it, with JPEG's b"Exif\0\0" (it writes a JPEG's APP1 verbatim)
    if kind == "jpeg":
        path = folder / "photo.jpg"
        pil_rgb(bgr).save(path, quality=95, exif=b"Exif\0\0" + exif, icc_profile=icc)
    elif kind == "jpeg-big-icc":  # and a little-endian EXIF
        path, exif, icc = folder / "wide.jpg", exif_bytes(endian="<"), big_icc()
        pil_rgb(bgr).save(path, quality=95, exif=b"Exif\0\0" + exif, icc_profile=icc)
    elif kind == "png":
        path, text = folder / "art.png", TEXT
        pil_rgb(bgr).save(path, exif=b"Exif\0\0" + exif, icc_profile=icc, pnginfo=png_info(text))
    elif kind == "png16":  # Pillow writes no 16-bit colour PNG; OpenCV's metadata call writes iCCP and eXIf
        path, bgr = folder / "deep.png", pixels(np.uint16)
        ok, data = cv2.imencodeWithMetadata(".png", bgr, [cv2.IMAGE_METADATA_EXIF, cv2.IMAGE_METADATA_ICCP],
                                            [np.frombuffer(exif, np.uint8), np.frombuffer(icc, np.uint8)])
        assert ok, "OpenCV could not write the 16-bit PNG"
        path.write_bytes(data.tobytes())
    elif kind == "rgba-png":
        path, bgr, text = folder / "cutout.png", pixels(channels=4), TEXT[:2]
        pil_rgb(bgr).save(path, exif=b"Exif\0\0" + exif, icc_profile=icc, pnginfo=png_info(text))
    elif kind == "webp":
        path = folder / "photo.webp"
        pil_rgb(bgr).save(path, lossless=True, exif=b"Exif\0\0" + exif, icc_profile=icc)
    elif kind == "tiff":
        path = folder / "scan.tif"
        pil_rgb(bgr).save(path, exif=b"Exif\0\0" + exif, icc_profile=icc)
    else:
        raise ValueError(kind)
    return path, bgr, Metadata(exif, icc, text)


SOURCES = ("jpeg", "jpeg-big-icc", "png", "png16", "rgba-png", "webp", "tiff")


@pytest.mark.parametrize("kind", SOURCES)
def test_read_metadata_gives_what_was_written(kind, tmp_path) -> None:
    path, _, written = make_source(kind, tmp_path)
    read = read_metadata(path)
    assert read.icc == written.icc, f"{kind}: {len(read.icc or b'')} profile bytes read, {len(written.icc)} written"
    assert tags(read.exif) == written_tags(6), f"{kind}: read {tags(read.exif)}"
    assert read.orientation == 6, f"{kind}: orientation {read.orientation}"
    assert read.text == written.text, f"{kind}: text read {read.text!r}"
    if kind != "tiff":  # a TIFF's tags are rebuilt into an EXIF block; the others hold the block verbatim
        assert read.exif == written.exif, f"{kind}: {len(read.exif or b'')} EXIF bytes read of {len(written.exif)}"


def encodable(bgr: np.ndarray, suffix: str) -> np.ndarray:
    """The pixels in what OpenCV encodes in `suffix`: 8 bits but for PNG and TIFF, no alpha in JPEG."""
    if suffix not in (".png", ".tif") and bgr.dtype == np.uint16:
        bgr = (bgr >> 8).astype(np.uint8)
    return np.ascontiguousarray(bgr[:, :, :3]) if suffix == ".jpg" else bgr


def com_segments(data: bytes) -> list[bytes]:
    """The bodies of a JPEG's COM segments, in order, as Pillow lists them."""
    with Image.open(io.BytesIO(data)) as image:
        return [body for marker, body in image.applist if marker == "COM"]


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("kind", SOURCES)
def test_embed_carries_metadata_and_keeps_pixels(kind, suffix, tmp_path) -> None:
    path, bgr, _ = make_source(kind, tmp_path)
    metadata = read_metadata(path)
    bgr = encodable(bgr, suffix)
    ok, encoded = cv2.imencode(suffix, bgr)
    assert ok
    result, dropped = embed(encoded.tobytes(), suffix, metadata)

    before = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
    after = cv2.imdecode(np.frombuffer(result, np.uint8), cv2.IMREAD_UNCHANGED)
    assert after is not None and after.dtype == before.dtype and after.shape == before.shape, (
        f"{kind} -> {suffix}: decoded {None if after is None else (after.dtype, after.shape)},"
        f" before {before.dtype, before.shape}")
    differ = int(np.count_nonzero(after != before))
    assert differ == 0, f"{kind} -> {suffix}: {differ} of {before.size} samples changed by embedding"
    if suffix in EXACT:
        differ = int(np.count_nonzero(after != bgr))
        assert differ == 0, f"{kind} -> {suffix}: {differ} of {bgr.size} samples differ from those encoded"

    with Image.open(io.BytesIO(result)) as image:
        image.load()  # the result opens and decodes in Pillow too
        icc, exif = image.info.get("icc_profile"), image.getexif()
        text = image.text if suffix == ".png" else {}
    holds = HOLDS[suffix]
    if "icc" in holds:
        assert icc == metadata.icc, f"{kind} -> {suffix}: {len(icc or b'')} profile bytes back of {len(metadata.icc)}"
    else:
        assert icc is None, f"{kind} -> {suffix}: a {len(icc)}-byte profile in a format said not to hold one"
    expected = written_tags(1) if "exif" in holds else dict.fromkeys(written_tags(1))
    assert tags(exif) == expected, f"{kind} -> {suffix}: EXIF read back {tags(exif)}"
    if metadata.text and suffix == ".png":
        assert text == dict(metadata.text), f"{kind} -> .png: text read back {text!r}"
    if metadata.text and suffix == ".jpg":
        comments = com_segments(result)
        assert comments == [f"{k}: {v}".encode() for k, v in metadata.text], f"{kind} -> .jpg: COM {comments!r}"

    lost = {"exif", "icc"} - holds | ({"text"} - holds if metadata.text else set())
    said = {what for what, words in (("exif", "EXIF"), ("icc", "ICC profile"), ("text", "PNG text")) for line in dropped
            if words in line}
    assert said == lost and len(dropped) == len(lost), f"{kind} -> {suffix}: dropped {dropped}"


def jpeg_segments(data: bytes) -> list[tuple[int, bytes]]:
    """(marker, body) of each JPEG segment before the first scan."""
    segments, pos = [], 2
    while data[pos + 1] != 0xDA:
        (length,) = struct.unpack_from(">H", data, pos + 2)
        segments.append((data[pos + 1], data[pos + 4 : pos + 2 + length]))
        pos += 2 + length
    return segments


def test_jpeg_layout_follows_the_specs() -> None:
    """APP0 JFIF first, then APP1 Exif, then a profile over 65,519 bytes in numbered APP2 chunks, then COM."""
    encoded = cv2.imencode(".jpg", pixels())[1].tobytes()
    result, dropped = embed(encoded, ".jpg", Metadata(exif_bytes(), big_icc(), TEXT[:1]))
    segments = jpeg_segments(result)
    markers = [marker for marker, _ in segments]
    assert markers[:7] == [0xE0, 0xE1, 0xE2, 0xE2, 0xE2, 0xE2, 0xFE], f"segment markers {[hex(m) for m in markers]}"
    chunks = [body for marker, body in segments if marker == 0xE2]
    assert [(c[:12], c[12], c[13]) for c in chunks] == [(b"ICC_PROFILE\0", n, 4) for n in (1, 2, 3, 4)], (
        f"APP2 headers {[(c[:12], c[12], c[13]) for c in chunks]}")
    assert max(len(c) - 14 for c in chunks) == 65_519 and b"".join(c[14:] for c in chunks) == big_icc()
    assert dropped == []


def test_exif_too_big_for_a_jpeg_segment_is_dropped_there_kept_in_png() -> None:
    exif = Image.Exif()
    exif[0x010F] = MAKE
    exif.get_ifd(0x8769)[0x9286] = b"ASCII\0\0\0" + b"n" * 65_462  # a 65,470-byte UserComment
    block = exif.tobytes()[6:]
    assert 65_527 < len(block) <= 65_536, f"{len(block):,}-byte block: between JPEG's limit and the cap"
    jpeg, dropped = embed(cv2.imencode(".jpg", pixels())[1].tobytes(), ".jpg", Metadata(exif=block))
    assert len(dropped) == 1 and "EXIF" in dropped[0] and "65,527" in dropped[0], dropped
    assert not any(marker == 0xE1 for marker, _ in jpeg_segments(jpeg))
    png, dropped = embed(cv2.imencode(".png", pixels())[1].tobytes(), ".png", Metadata(exif=block))
    with Image.open(io.BytesIO(png)) as image:
        assert dropped == [] and image.getexif().get(0x010F) == MAKE, dropped


@pytest.mark.parametrize("channels", [3, 4])
@pytest.mark.parametrize("quality", [80, 101])  # lossy VP8 (VP8X + ALPH with alpha), lossless VP8L
def test_webp_gets_the_extended_layout(channels, quality) -> None:
    bgr = pixels(channels=channels)
    ok, encoded = cv2.imencode(".webp", bgr, [cv2.IMWRITE_WEBP_QUALITY, quality])
    assert ok
    result, dropped = embed(encoded.tobytes(), ".webp", Metadata(exif_bytes(), srgb(), TEXT[:1]))
    assert dropped == ["1 PNG text chunk (.webp cannot hold it)"], dropped
    assert result[12:16] == b"VP8X" and len(result) == 8 + struct.unpack_from("<I", result, 4)[0]
    flags, width, height = result[20], *(int.from_bytes(result[i : i + 3], "little") + 1 for i in (24, 27))
    assert flags == 0x20 | 0x08 | (0x10 if channels == 4 else 0), f"VP8X flags {flags:#04x}"
    assert (height, width) == SIZE, f"canvas {width}x{height}"
    with Image.open(io.BytesIO(result)) as image:
        image.load()
        assert image.mode == ("RGBA" if channels == 4 else "RGB"), image.mode
        assert image.info.get("icc_profile") == srgb() and tags(image.getexif()) == written_tags(1)
    before = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
    after = cv2.imdecode(np.frombuffer(result, np.uint8), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(after, before), f"{np.count_nonzero(after != before)} samples changed"


def test_webp_odd_sized_chunks_are_padded_and_read_back(tmp_path) -> None:
    """RIFF pads a chunk of odd size with one byte: what follows an odd profile is found on both sides."""
    icc = bytearray(srgb() + b"\0" * (1 - len(srgb()) % 2))
    icc[:4] = struct.pack(">I", len(icc))
    exif = exif_bytes() + b"\0" * (1 - len(exif_bytes()) % 2)  # a trailing byte past the IFDs is allowed
    assert len(icc) % 2 == len(exif) % 2 == 1, f"{len(icc)}, {len(exif)}: both odd"
    path = tmp_path / "odd.webp"
    path.write_bytes(embed(cv2.imencode(".webp", pixels())[1].tobytes(), ".webp", Metadata(exif, bytes(icc)))[0])
    with Image.open(path) as image:
        assert image.info.get("icc_profile") == icc and tags(image.getexif()) == written_tags(1)
    read = read_metadata(path)
    assert read.icc == icc and tags(read.exif) == written_tags(1) and len(read.exif) == len(exif), (
        f"read a {len(read.icc or b'')}-byte profile and {len(read.exif or b'')} EXIF bytes")


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_tiff_keeps_every_depth_and_alpha(dtype, channels) -> None:
    bgr = pixels(dtype, channels)
    icc = recoloured(srgb(), b"GRAY") if channels == 1 else srgb()
    encoded = cv2.imencode(".tif", bgr)[1].tobytes()
    result, dropped = embed(encoded, ".tif", Metadata(exif_bytes(endian="<"), icc))
    assert dropped == [], dropped
    after = cv2.imdecode(np.frombuffer(result, np.uint8), cv2.IMREAD_UNCHANGED)
    assert after.dtype == bgr.dtype and after.shape == bgr.shape and np.array_equal(after, bgr), (
        f"decoded {after.dtype} {after.shape}, {np.count_nonzero(after != bgr)} samples changed")
    with Image.open(io.BytesIO(result)) as image:
        assert image.info.get("icc_profile") == icc and tags(image.getexif()) == written_tags(1)


def test_a_profile_for_other_colours_is_dropped() -> None:
    """A CMYK JPEG's profile does not describe the RGB result; a grey PNG takes a GRAY profile only."""
    rgb_jpeg = cv2.imencode(".jpg", pixels())[1].tobytes()
    result, dropped = embed(rgb_jpeg, ".jpg", Metadata(icc=recoloured(srgb(), b"CMYK")))
    assert result == rgb_jpeg and len(dropped) == 1 and "'CMYK' profile" in dropped[0], dropped
    grey_png = cv2.imencode(".png", pixels(channels=1))[1].tobytes()
    result, dropped = embed(grey_png, ".png", Metadata(icc=srgb()))
    assert result == grey_png and len(dropped) == 1 and "'RGB' profile" in dropped[0], dropped
    gray = recoloured(srgb(), b"GRAY")
    result, dropped = embed(grey_png, ".png", Metadata(icc=gray))
    with Image.open(io.BytesIO(result)) as image:
        assert dropped == [] and image.info.get("icc_profile") == gray, dropped


def test_embed_drops_and_says_what_it_cannot_write() -> None:
    png = cv2.imencode(".png", pixels())[1].tobytes()
    result, dropped = embed(png, ".png", Metadata())
    assert (result, dropped) == (png, []), "nothing to carry must leave the file as it is"
    result, dropped = embed(png, ".png", Metadata(exif=b"MM\0*" + struct.pack(">I", 1 << 30)))  # IFD0 far outside
    assert result == png and len(dropped) == 1 and dropped[0].startswith("the EXIF block (an IFD offset"), dropped
    result, dropped = embed(png, ".png", Metadata(exif=b"MM\0*\0\0"))
    assert result == png and len(dropped) == 1 and "TIFF header" in dropped[0], dropped
    result, dropped = embed(png, ".png", Metadata(text=(("Überschrift", "ok"), ("タイトル", "x"), ("k", "a\0b"))))
    with Image.open(io.BytesIO(result)) as image:
        assert image.text == {"Überschrift": "ok"}, image.text
    assert len(dropped) == 2 and "'タイトル'" in dropped[0] and "'k'" in dropped[1], dropped
    result, dropped = embed(png, ".gif", Metadata(exif_bytes(), srgb()))
    assert result == png and len(dropped) == 2 and ".gif is not a format" in dropped[0], dropped
    result, dropped = embed(png, ".jpg", Metadata(icc=srgb()))  # not what its suffix says: left alone
    assert result == png and len(dropped) == 1 and "not a JPEG" in dropped[0], dropped
    bmp = cv2.imencode(".bmp", pixels())[1].tobytes()
    assert embed(bmp, ".BMP", Metadata(exif_bytes(), srgb(), TEXT)) == (bmp, [
        "the EXIF block (.bmp cannot hold one)", "the ICC profile (.bmp cannot hold one)",
        "3 PNG text chunks (.bmp cannot hold them)"])


@pytest.mark.parametrize("orientation", range(1, 9))
def test_upright_turns_as_pillow_does(orientation) -> None:
    rgb = pixels(size=(3, 5))[:, :, ::-1]
    image = Image.fromarray(np.ascontiguousarray(rgb))
    image.getexif()[0x0112] = orientation
    expected = np.asarray(ImageOps.exif_transpose(image))
    turned = upright(rgb, orientation)
    assert turned.shape == expected.shape and np.array_equal(turned, expected), (
        f"orientation {orientation}: {turned.shape} against Pillow's {expected.shape}")
    assert turned.flags.c_contiguous and np.array_equal(upright(rgb[:, :, 0], orientation), expected[:, :, 0])
    assert Metadata(exif_bytes(orientation)).orientation == orientation
    assert Metadata(exif_bytes(orientation, endian="<")).orientation == orientation


def test_orientation_out_of_range_is_upright() -> None:
    rgb = pixels(size=(3, 5))
    for value in (0, 9, 0xFFFF):
        assert Metadata(exif_bytes(value)).orientation == 1, f"orientation tag {value}"
        assert np.array_equal(upright(rgb, value), rgb), f"orientation {value} moved pixels"
    assert Metadata().orientation == 1 and Metadata(exif=b"MM\0*\xff\xff\xff\xff").orientation == 1


def bytes_read() -> int:
    """Bytes this process has read through system calls so far (Linux's rchar)."""
    return int(Path("/proc/self/io").read_text().split("rchar:")[1].split()[0])


def read_measured(path: Path) -> tuple[Metadata, float, int, int]:
    """read_metadata(path), its seconds and the bytes it read; then, in a second call, its peak Python allocation
    (tracemalloc slows the call several times, so it is not timed)."""
    first = bytes_read()
    overhead = bytes_read() - first  # what reading /proc/self/io adds itself
    start_bytes, start = bytes_read(), time.perf_counter()
    metadata = read_metadata(path)
    seconds, read = time.perf_counter() - start, bytes_read() - start_bytes - overhead
    tracemalloc.start()
    read_metadata(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return metadata, seconds, read, peak


def png_chunk(kind: bytes, body: bytes, crc: int | None = None) -> bytes:
    """A PNG chunk; its CRC computed unless given."""
    crc = zlib.crc32(kind + body) if crc is None else crc
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def png_with(*chunks: bytes) -> bytes:
    """A real 1x1 PNG with `chunks` put after its IHDR."""
    data = cv2.imencode(".png", np.zeros((1, 1), np.uint8))[1].tobytes()
    return data[:33] + b"".join(chunks) + data[33:]


def jpeg_with(*segments: bytes) -> bytes:
    """SOI, `segments` (whole), then a real JPEG's own segments and scan."""
    data = cv2.imencode(".jpg", np.zeros((8, 8), np.uint8))[1].tobytes()
    return data[:2] + b"".join(segments) + data[2:]


def app1(exif: bytes, length: int | None = None) -> bytes:
    """An APP1 Exif segment, its length field as given or true."""
    body = b"Exif\0\0" + exif
    return b"\xff\xe1" + struct.pack(">H", len(body) + 2 if length is None else length) + body


def ifd(entries: list[tuple[int, int, int, int]], next_ifd: int = 0) -> bytes:
    """A big-endian IFD of (tag, type, count, value or offset) entries."""
    return (struct.pack(">H", len(entries)) + b"".join(struct.pack(">HHII", *e) for e in entries)
            + struct.pack(">I", next_ifd))


@functools.cache
def bomb() -> bytes:
    """~64 KB of zlib data inflating to 64 MiB."""
    return zlib.compress(bytes(64 << 20), 9)


def hostile(case: str) -> bytes:
    """A file built to be hostile in one way."""
    if case == "jpeg segment runs past the end":
        return b"\xff\xd8" + app1(exif_bytes(), length=0xFFFF)
    if case == "jpeg segment length 0":
        return b"\xff\xd8\xff\xe1\x00\x00" + app1(exif_bytes()) + b"\xff\xd9"
    if case == "jpeg segment length 1":
        return b"\xff\xd8\xff\xe2\x00\x01" + app1(exif_bytes()) + b"\xff\xd9"
    if case == "exif ifd0 offset outside":
        return jpeg_with(app1(b"MM\0*" + struct.pack(">I", 0x7FFFFFF0)))
    if case == "exif sub-ifd offset outside":
        return jpeg_with(app1(b"MM\0*\0\0\0\x08" + ifd([(0x8769, 4, 1, 0x7FFFFFF0)])))
    if case == "exif ifds in a loop":
        return jpeg_with(app1(b"MM\0*\0\0\0\x08" + ifd([(0x8769, 4, 1, 8)])))
    if case == "exif value count of 4 GiB":
        return jpeg_with(app1(b"MM\0*\0\0\0\x08" + ifd([(0x010F, 2, 0xFFFFFFFF, 8)])))
    if case == "exif 65,535-entry count, no entries":  # 100,000 cannot be said: TIFF counts entries in 16 bits
        return jpeg_with(app1(b"MM\0*\0\0\0\x08\xff\xff"))
    if case == "tiff 65,535 real entries":
        table = b"".join(struct.pack("<HHI4s", 0x010F, 2, 4, b"abc\0") for _ in range(65_535))
        return b"II*\0" + struct.pack("<I", 8) + struct.pack("<H", 65_535) + table + bytes(4)
    if case == "tiff icc past the end":  # 4,000,000 bytes (under the cap) at byte 8 of a 26-byte file
        return b"II*\0" + struct.pack("<I", 8) + struct.pack("<HHHII", 1, 34675, 7, 4_000_000, 8) + bytes(4)
    if case == "png chunk runs past the end":
        return png_with(struct.pack(">I", 0x7FFFFFFF) + b"iCCP" + b"x" * 100)
    if case == "png iCCP bomb":
        return png_with(png_chunk(b"iCCP", b"bomb\0\0" + bomb()))
    if case == "png zTXt bomb":
        return png_with(png_chunk(b"zTXt", b"bomb\0\0" + bomb()))
    if case == "png bad CRC":
        return png_with(png_chunk(b"iCCP", b"icc\0\0" + zlib.compress(srgb()), crc=0))
    if case == "png 100,000 text chunks":
        return png_with(png_chunk(b"tEXt", b"k\0v") * 100_000)
    if case == "png 2 MiB of text":
        return png_with(*(png_chunk(b"tEXt", b"k%d\0" % i + b"t" * 20_000) for i in range(100)))
    if case == "jpeg icc chunk missing":  # APP2 chunks 1, 2 and 4 of 4
        chunks = [big_icc()[i : i + 65_519] for i in range(0, 200_000, 65_519)]
        return jpeg_with(*(b"\xff\xe2" + struct.pack(">H", 16 + len(c)) + b"ICC_PROFILE\0" + bytes((n, 4)) + c
                           for n, c in enumerate(chunks, 1) if n != 3))
    if case == "tiff values overlapping":  # 1,000 tags all pointing at one 60,000-byte value
        table = b"".join(struct.pack("<HHII", 0x9C9B + i, 1, 60_000, 12_014) for i in range(1000))
        return b"II*\0" + struct.pack("<I", 8) + struct.pack("<H", 1000) + table + bytes(4) + bytes(60_000)
    if case == "webp chunk runs past the end":
        body = b"WEBP" + b"ICCP" + struct.pack("<I", 0xFFFFFFF0) + srgb()
        return b"RIFF" + struct.pack("<I", len(body)) + body
    if case == "empty":
        return b""
    if case == "soi alone":
        return b"\xff\xd8"
    raise ValueError(case)


# case -> what the debug log says was dropped (None: nothing to say), the most Python may allocate reading it
HOSTILE = {
    "jpeg segment runs past the end": ("length field says 65,535", 1 << 20),
    "jpeg segment length 0": ("length field says 0", 1 << 20),
    "jpeg segment length 1": ("length field says 1", 1 << 20),
    "exif ifd0 offset outside": ("IFD offset (2,147,483,632) points outside", 1 << 20),
    "exif sub-ifd offset outside": ("IFD offset (2,147,483,632) points outside", 1 << 20),
    "exif ifds in a loop": ("loop", 1 << 20),
    "exif value count of 4 GiB": ("declares 4,294,967,295 bytes", 1 << 20),
    "exif 65,535-entry count, no entries": ("declares 65,535 entries", 1 << 20),
    "tiff 65,535 real entries": ("declares 65,535 entries", 1 << 20),
    "tiff icc past the end": ("past the end of the file", 1 << 20),
    "png chunk runs past the end": ("declares 2,147,483,647 bytes", 1 << 20),
    "png iCCP bomb": ("inflates past 4,194,304 bytes", 12 << 20),  # the inflated profile up to its cap
    "png zTXt bomb": ("inflates past 1,048,576 bytes", 4 << 20),
    "png bad CRC": ("CRC does not match", 1 << 20),
    "png 100,000 text chunks": ("over 65,536 chunks", 8 << 20),  # the text kept: 1 MiB of it at most
    "png 2 MiB of text": ("over the 1,048,576-byte cap", 4 << 20),
    "jpeg icc chunk missing": ("3 APP2 chunks, where they declare 4", 1 << 20),
    "tiff values overlapping": ("point at over 72,", 1 << 20),  # 72,014 bytes: the file's size
    "webp chunk runs past the end": ("declares 4,294,967,280 bytes", 1 << 20),
    "empty": (None, 1 << 20),
    "soi alone": ("not a JPEG marker", 1 << 20),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_files_are_read_quickly_within_the_file(case, tmp_path, caplog) -> None:
    path = tmp_path / "hostile.bin"
    path.write_bytes(hostile(case))
    size = path.stat().st_size
    caplog.set_level(logging.DEBUG, logger="srcnn")
    metadata, seconds, read, peak = read_measured(path)
    measured = f"{case}: {seconds:.3f} s, read {read:,} of {size:,} bytes, peak {peak:,} bytes allocated"
    said, ceiling = HOSTILE[case]
    # Bounded by the file, never by a declared length (2 GB here, 4 GB there); re-reading a TIFF's first directory
    # (12 bytes an entry, 1,024 entries at most) may add up to 12 KiB
    assert seconds < 2.0 and read <= size + (16 << 10) and peak < ceiling, f"{measured}; ceiling {ceiling:,}"
    logged = [r.getMessage() for r in caplog.records if r.name == "srcnn" and r.levelno == logging.DEBUG]
    assert (any(said in line for line in logged) if said else logged == []), f"{case}: logged {logged}"
    assert metadata.exif is None and metadata.icc is None, f"{measured}: kept {metadata}"
    if case in ("png 100,000 text chunks", "png 2 MiB of text"):  # what came before the limit is kept
        kept = sum(len(k) + len(t) for k, t in metadata.text)
        assert 0 < len(metadata.text) < 100_000 and kept <= 1 << 20, f"{measured}: {len(metadata.text):,} kept"
    else:
        assert metadata.text == (), f"{measured}: kept text {metadata.text[:3]}"


@pytest.mark.parametrize("kind", ["jpeg", "png", "webp", "tiff"])
def test_truncated_files_give_whole_blocks_or_none(kind, tmp_path) -> None:
    source, _, written = make_source(kind, tmp_path)
    data = source.read_bytes()
    path, seen = tmp_path / "cut", set()
    start = time.perf_counter()
    for end in range(0, len(data), 7):
        path.write_bytes(data[:end])
        metadata = read_metadata(path)
        assert metadata.icc in (None, written.icc), f"{kind} cut at {end:,}: a {len(metadata.icc):,}-byte profile"
        if kind != "tiff":  # an EXIF block is held whole
            assert metadata.exif in (None, written.exif), f"{kind} cut at {end:,}: {len(metadata.exif):,} EXIF bytes"
        else:  # a TIFF's tags are rebuilt into a block: those whose values are cut off are left out, none is wrong
            read = tags(metadata.exif)
            assert all(read[tag] in (None, value) for tag, value in written_tags(6).items()), f"cut at {end:,}: {read}"
        seen.add((metadata.exif is not None, metadata.icc is not None))
    seconds = time.perf_counter() - start
    assert seconds < 3.0, f"{kind}: {len(data) // 7:,} cuts read in {seconds:.2f} s"
    assert (False, False) in seen, f"{kind}: every cut kept something: {seen}"  # the cuts do reach into metadata


@pytest.mark.parametrize("container", ["png", "webp"])
def test_exif_behind_jpegs_prefix_is_read(container, tmp_path) -> None:
    """Some writers keep JPEG's b"Exif\\0\\0" before the block in PNG's eXIf or WebP's EXIF chunk."""
    prefixed = b"Exif\0\0" + exif_bytes()
    if container == "png":
        data = png_with(png_chunk(b"eXIf", prefixed))
    else:
        body = cv2.imencode(".webp", pixels())[1].tobytes()[8:] + b"EXIF" + struct.pack("<I", len(prefixed)) + prefixed
        data = b"RIFF" + struct.pack("<I", len(body) + len(body) % 2) + body + bytes(len(body) % 2)
    path = tmp_path / f"prefixed.{container}"
    path.write_bytes(data)
    exif = read_metadata(path).exif
    assert exif == exif_bytes(), f"{container}: read {exif[:8] if exif else None!r}"


def big_file(suffix: str) -> tuple[bytes, Metadata]:
    """A megabyte-sized result with metadata (and, for PNG, a text chunk after the pixel data, as ImageMagick puts
    its dates)."""
    bgr = pixels(size=(700, 900))
    params = {".png": [cv2.IMWRITE_PNG_COMPRESSION, 1], ".webp": [cv2.IMWRITE_WEBP_QUALITY, 90]}.get(suffix, [])
    encoded = cv2.imencode(suffix, bgr, params)[1].tobytes()
    metadata = Metadata(exif_bytes(), srgb(), TEXT[:2] if suffix == ".png" else ())
    data, dropped = embed(encoded, suffix, metadata)
    assert dropped == [], dropped
    if suffix == ".png":
        late = png_chunk(b"tEXt", b"date:modify\x002026-01-02")
        data = data[:-12] + late + data[-12:]
        metadata = Metadata(metadata.exif, metadata.icc, (*metadata.text, ("date:modify", "2026-01-02")))
    return data, metadata


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp", ".tif"])
def test_read_metadata_reads_the_metadata_not_the_pixels(suffix, tmp_path) -> None:
    data, written = big_file(suffix)
    path = tmp_path / f"big{suffix}"
    path.write_bytes(data)
    metadata, seconds, read, _ = read_measured(path)
    assert (metadata.icc, metadata.text) == (written.icc, written.text) and tags(metadata.exif) == written_tags(1)
    assert read < 32 << 10 and seconds < 1.0, f"{suffix}: read {read:,} of {len(data):,} bytes in {seconds:.3f} s"


def test_unreadable_paths_give_empty_metadata(tmp_path) -> None:
    (tmp_path / "text.txt").write_text("not an image")
    for path in (tmp_path, tmp_path / "missing.png", tmp_path / "text.txt"):
        assert read_metadata(path) == Metadata(), path
