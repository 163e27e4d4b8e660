"""srcnn.headers against OpenCV's own decoding: what a header declares (size, channels, alpha) is what OpenCV 5.0
decodes from the same bytes, for real files of every format and for the same files cut short, overwritten, padded
with 0xFF fill bytes or followed by gigabytes; read_picture keeps the alpha that OpenCV drops; decoding reads no more
of a file than its picture needs."""

from __future__ import annotations

import io
import signal
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from srcnn import cli, headers, images, metadata, plan
from srcnn.core import SrcnnError

RNG = np.random.default_rng(7)
PAD = 4 * 2**30  # a sparse file's length: 4 GiB that take no disk


def pixels(height: int, width: int, channels: int, dtype: type = np.uint8, seed: int = 0) -> np.ndarray:
    """Random (H, W) or (H, W, C) pixels."""
    shape = (height, width) if channels == 1 else (height, width, channels)
    return np.random.default_rng(seed).integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)


def encoded(suffix: str, image: np.ndarray, params: tuple[int, ...] = ()) -> bytes:
    ok, data = cv2.imencode(suffix, image, list(params))
    assert ok, f"OpenCV cannot encode {image.shape} {image.dtype} as {suffix}"
    return data.tobytes()


def pil_encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def decoded(data: bytes) -> np.ndarray | None:
    """OpenCV's IMREAD_UNCHANGED decoding of `data`, or None."""
    try:
        return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:  # no bytes at all
        return None


def channels_of(array: np.ndarray) -> int:
    return 1 if array.ndim == 2 else array.shape[2]


def written(tmp_path: Path, data: bytes, name: str = "image.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def chunk(kind: bytes, data: bytes, crc: int | None = None) -> bytes:
    """A PNG chunk, with its CRC (or a given, wrong one)."""
    crc = zlib.crc32(kind + data) if crc is None else crc
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png(colour: int, depth: int, rows: np.ndarray, before: bytes = b"", after: bytes = b"") -> bytes:
    """A PNG of colour type `colour` at `depth` bits whose raw rows (filter byte 0 added) are `rows` (H, row bytes);
    `before` and `after` are chunks placed before and after IDAT."""
    height, row_bytes = rows.shape
    samples = {0: 1, 2: 3, 3: 1}[colour]
    width = row_bytes * 8 // (depth * samples)
    raw = b"".join(b"\0" + row.tobytes() for row in rows)
    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + ihdr + before + chunk(b"IDAT", zlib.compress(raw)) + after + chunk(b"IEND", b"")


@contextmanager
def at_most(seconds: float) -> Iterator[None]:
    """Fail the block if it runs longer than `seconds`: a loop that never ends would hang the suite."""
    def hung(signum: int, frame: object) -> None:
        raise AssertionError(f"still running after {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def assert_agrees(header: headers.ImageHeader, array: np.ndarray) -> None:
    """The header's size and channels are those of OpenCV's decoded array; grey+alpha (2), which OpenCV decodes as
    BGRA or, for a TIFF or a grey PNG's tRNS, as grey, is read as colour+alpha by read_picture."""
    got = channels_of(array)
    assert (header.height, header.width) == array.shape[:2], f"{header} vs OpenCV's {array.shape}"
    assert header.channels == got or (header.channels == 2 and got in (1, 4)), f"{header} vs OpenCV's {array.shape}"


# ---------------------------------------------------------------------------------------------------------------
# Each format's channels, as OpenCV decodes them


def pil(mode: str, size: tuple[int, int] = (12, 10)) -> Image.Image:
    """A Pillow image of `mode` from random RGB pixels."""
    return Image.fromarray(pixels(size[1], size[0], 3, seed=1)).convert(mode)


REAL_FILES = {  # Pillow's files of each mode in each format, and OpenCV's own of 1, 3 and 4 channels
    **{f"png {mode}": lambda mode=mode: pil_encoded(pil(mode), "PNG") for mode in ("1", "L", "LA", "P", "RGB", "RGBA")},
    "png I;16": lambda: pil_encoded(Image.fromarray(pixels(10, 12, 1, np.uint16)), "PNG"),
    "png P+tRNS": lambda: pil_encoded(pil("P"), "PNG", transparency=3),
    "png L+tRNS": lambda: pil_encoded(pil("L"), "PNG", transparency=40),
    "png RGB+tRNS": lambda: pil_encoded(pil("RGB"), "PNG", transparency=(1, 2, 3)),
    **{f"bmp {mode}": lambda mode=mode: pil_encoded(pil(mode), "BMP") for mode in ("1", "L", "P", "RGB", "RGBA")},
    **{f"tiff {mode}": lambda mode=mode: pil_encoded(pil(mode), "TIFF")
       for mode in ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr")},
    "tiff I;16": lambda: pil_encoded(Image.fromarray(pixels(10, 12, 1, np.uint16)), "TIFF"),
    **{f"jpeg {mode}": lambda mode=mode: pil_encoded(pil(mode), "JPEG") for mode in ("L", "RGB", "CMYK")},
    "jpeg progressive": lambda: pil_encoded(pil("RGB"), "JPEG", progressive=True),
    **{f"webp {mode}": lambda mode=mode: pil_encoded(pil(mode), "WEBP") for mode in ("RGB", "RGBA")},
    "webp lossless RGBA": lambda: pil_encoded(pil("RGBA"), "WEBP", lossless=True),
    **{f"opencv {suffix} {c}": lambda suffix=suffix, c=c: encoded(suffix, pixels(10, 12, c))
       for suffix in (".png", ".bmp", ".tiff", ".jpg", ".webp") for c in (1, 3, 4)},
}


@pytest.mark.parametrize("kind", REAL_FILES)
def test_each_format_declares_what_opencv_and_read_picture_decode(tmp_path, kind) -> None:
    data = REAL_FILES[kind]()
    path = written(tmp_path, data)
    header = headers.read_header(path)
    assert_agrees(header, decoded(data))
    picture = images.read_picture(path)
    assert (picture.alpha is not None) == header.alpha, f"{kind}: {header} but read_picture's alpha is {picture.alpha}"
    assert picture.grey == (header.channels == 1), f"{kind}: {header} but read_picture's grey is {picture.grey}"


# ---------------------------------------------------------------------------------------------------------------
# The attacker's findings, each as a family


@pytest.mark.parametrize("transform", [0, 2])  # Adobe APP14: 0 CMYK, 2 YCCK
def test_a_four_component_jpeg_is_colour_without_alpha(tmp_path, transform) -> None:
    data = pil_encoded(pil("CMYK"), "JPEG")
    adobe = data.index(b"Adobe")
    data = data[: adobe + 11] + bytes([transform]) + data[adobe + 12 :]  # the APP14 transform flag
    path = written(tmp_path, data, "cmyk.jpg")
    header = headers.read_header(path)
    assert (header.channels, header.alpha) == (3, False), header
    assert images.read_picture(path).alpha is None
    assert plan.result_suffix(path, header) == ".jpg", "a CMYK photo's results stay JPEG: it has no alpha to keep"


PALETTE = bytes(range(48))  # 16 colours
INDICES = np.arange(48, dtype=np.uint8).reshape(4, 12) % 16  # 4 rows of 12 palette indices, or grey levels


def trns_rows(colour: int, depth: int) -> np.ndarray:
    """PNG rows (H, row bytes) of INDICES as palette indices, grey levels or grey RGB colours, at `depth` bits."""
    if depth == 4:  # two pixels a byte
        return (INDICES[:, ::2] << 4) | INDICES[:, 1::2]
    samples = np.repeat(INDICES, 3, axis=1) if colour == 2 else INDICES
    return samples.astype(">u2").view(np.uint8) if depth == 16 else samples


@pytest.mark.parametrize(("colour", "depth", "trns"), [
    (3, 8, b"\x00\x80"),  # palette: the first colour see-through, the second half
    (2, 8, struct.pack(">HHH", 5, 5, 5)),  # RGB: one colour
    (2, 16, struct.pack(">HHH", 5, 5, 5)),
    (0, 8, struct.pack(">H", 5)),  # grey: one level, which OpenCV drops and read_picture keeps
    (0, 16, struct.pack(">H", 5)),
    (0, 4, struct.pack(">H", 5)),  # 4 bits, decoded scaled to 8 bits (5 -> 85)
])
def test_a_png_with_trns_has_alpha(tmp_path, colour, depth, trns) -> None:
    plte = chunk(b"PLTE", PALETTE) if colour == 3 else b""
    data = png(colour, depth, trns_rows(colour, depth), plte + chunk(b"tRNS", trns))
    path = written(tmp_path, data, "clear.png")
    header = headers.read_header(path)
    assert header.alpha, f"{header}: the tRNS chunk was missed"
    assert_agrees(header, decoded(data))
    picture = images.read_picture(path)
    assert picture.alpha is not None, "read_picture lost the alpha"
    clear = picture.alpha[0, 0] == 0
    if colour == 0:  # exactly the pixels of the transparent level
        grey = np.rint(picture.rgb[0, 0] * (2**16 - 1 if depth == 16 else 255))
        level = int.from_bytes(trns, "big") * (17 if depth == 4 else 1)
        assert np.array_equal(clear, grey == level) and clear.any(), "the wrong pixels are transparent"
    else:  # as OpenCV decodes it
        assert np.array_equal(clear, decoded(data)[:, :, 3] == 0) and clear.any(), "the wrong pixels are transparent"


@pytest.mark.parametrize("where", ["after IDAT", "before PLTE", "bad CRC", "too long", "empty"])
def test_a_trns_chunk_libpng_ignores_gives_no_alpha(tmp_path, where) -> None:
    plte, trns = chunk(b"PLTE", PALETTE), chunk(b"tRNS", b"\x00\x80")
    parts = {"after IDAT": (plte, trns), "before PLTE": (trns + plte, b""),
             "bad CRC": (plte + chunk(b"tRNS", b"\x00\x80", crc=1), b""),
             "too long": (plte + chunk(b"tRNS", b"\0" * 17), b""), "empty": (plte + chunk(b"tRNS", b""), b"")}[where]
    data = png(3, 8, INDICES, *parts)
    header = headers.read_header(written(tmp_path, data))
    assert (header.channels, channels_of(decoded(data))) == (3, 3), f"{where}: {header}"


def tiff(samples: np.ndarray, *, order: str = "<", photometric: int = 1, compression: int = 1, predictor: int = 1,
         orientation: int | None = None, tile: int | None = None) -> bytes:
    """A grey+alpha TIFF of `samples` (H, W, 2), in strips of all rows or in square tiles, as libtiff writes them."""
    height, width, _ = samples.shape
    dtype = np.dtype(f"{order}u{samples.dtype.itemsize}")
    padded = samples if tile is None else np.pad(samples, ((0, -height % tile), (0, -width % tile), (0, 0)))
    blocks = [samples] if tile is None else [padded[y : y + tile, x : x + tile]
                                             for y in range(0, height, tile) for x in range(0, width, tile)]
    pieces = []
    for block in blocks:
        block = block.copy()
        if predictor == 2 and compression != 1:  # horizontal differencing per sample; libtiff ignores it uncompressed
            block[:, 1:] = block[:, 1:] - block[:, :-1]
        raw = block.astype(dtype).tobytes()
        pieces.append(zlib.compress(raw) if compression == 8 else raw)
    offsets, at = [], 8
    for piece in pieces:
        offsets.append(at)
        at += len(piece)
    arrays = struct.pack(f"{order}{len(pieces)}I", *offsets) + struct.pack(f"{order}{len(pieces)}I", *map(len, pieces))
    places = (at, at + 4 * len(pieces)) if len(pieces) > 1 else None
    at += len(arrays)
    bits = samples.dtype.itemsize * 8
    short = lambda tag, *values: (tag, 3, len(values), struct.pack(f"{order}{len(values)}H", *values).ljust(4, b"\0"))
    long = lambda tag, value, count=1: (tag, 4, count, struct.pack(f"{order}I", value))
    entries = [long(256, width), long(257, height), short(258, bits, bits), short(259, compression),
               short(262, photometric), short(277, 2), short(284, 1), short(338, 2)]
    entries += [short(274, orientation)] if orientation else []
    entries += [short(317, predictor)] if predictor != 1 else []
    if tile is None:
        entries += [long(273, offsets[0]), long(278, height), long(279, len(pieces[0]))]
    else:
        entries += [long(322, tile), long(323, tile), long(324, places[0] if places else offsets[0], len(pieces)),
                    long(325, places[1] if places else len(pieces[0]), len(pieces))]
    entries.sort()
    head = (b"II*\0" if order == "<" else b"MM\0*") + struct.pack(f"{order}I", at)
    ifd = struct.pack(f"{order}H", len(entries)) + b"".join(struct.pack(f"{order}HHI", t, k, n) + v
                                                            for t, k, n, v in entries) + b"\0\0\0\0"
    return head + b"".join(pieces) + arrays + ifd


GREY_ALPHA_TIFFS = {
    "8-bit": {},
    "16-bit": {"dtype": np.uint16},
    "16-bit big-endian, Deflate, differencing": {"dtype": np.uint16, "order": ">", "compression": 8, "predictor": 2},
    "8-bit Deflate, differencing, tiles": {"compression": 8, "predictor": 2, "tile": 16},
    "differencing without compression (ignored)": {"predictor": 2},
    "white is zero": {"photometric": 0},
    "orientation 6": {"orientation": 6},
}


@pytest.mark.parametrize("kind", GREY_ALPHA_TIFFS)
def test_a_grey_alpha_tiff_keeps_its_alpha(tmp_path, kind) -> None:
    options = dict(GREY_ALPHA_TIFFS[kind])
    dtype = options.pop("dtype", np.uint8)
    samples = pixels(20, 35, 2, dtype, seed=3)
    path = written(tmp_path, tiff(samples, **options), "grey-alpha.tif")
    header = headers.read_header(path)
    assert (header.channels, header.depth) == (2, 8 * np.dtype(dtype).itemsize), header
    picture = images.read_picture(path)
    top = np.iinfo(dtype).max
    grey, alpha = samples[:, :, 0], samples[:, :, 1]
    if options.get("photometric") == 0:
        grey = top - grey
    if options.get("orientation") == 6:  # shown turned a quarter clockwise
        grey, alpha = np.rot90(grey, -1), np.rot90(alpha, -1)
    assert picture.alpha is not None and picture.dtype == dtype, f"{kind}: the alpha was dropped"
    assert np.array_equal(np.rint(picture.alpha[0, 0] * top), alpha), f"{kind}: the alpha differs"
    assert all(np.array_equal(np.rint(picture.rgb[0, c] * top), grey) for c in range(3)), f"{kind}: the grey differs"


def test_pillows_grey_alpha_tiffs_keep_their_alpha(tmp_path) -> None:
    la = pil("LA")
    for compression in (None, "tiff_lzw", "tiff_adobe_deflate", "packbits"):
        path = written(tmp_path, pil_encoded(la, "TIFF", compression=compression), "la.tif")
        picture = images.read_picture(path)
        assert picture.alpha is not None, compression
        assert np.array_equal(np.rint(picture.alpha[0, 0] * 255), np.asarray(la)[:, :, 1]), compression


def test_a_grey_alpha_tiff_in_separate_planes_is_refused_in_one_line(tmp_path) -> None:
    data = bytearray(tiff(pixels(4, 5, 2)))
    order, entries = headers._tiff_directory(lambda offset, size: bytes(data[offset : offset + size]))
    at = next(at for at, tag, *_ in entries if tag == 284)
    struct.pack_into(order + "H", data, at + 8, 2)  # PlanarConfiguration 2
    with pytest.raises(SrcnnError, match="separate planes") as info:
        images.read_picture(written(tmp_path, bytes(data)))
    assert "\n" not in str(info.value)


def test_a_tiff_with_a_repeated_tag_is_read_as_libtiff_reads_it(tmp_path) -> None:
    """Found by the fuzz: a second ImageWidth entry (tags out of order); libtiff keeps the first, and so must we."""
    data = bytearray(encoded(".tiff", pixels(3, 4, 3)))
    order, entries = headers._tiff_directory(lambda offset, size: bytes(data[offset : offset + size]))
    last = entries[-1][0]
    struct.pack_into(order + "HHII", data, last, 256, 4, 1, 9)  # the last entry becomes a second width of 9
    header = headers.read_header(written(tmp_path, bytes(data)))
    assert header.width == 4 == decoded(bytes(data)).shape[1], header


def one_photo(path: Path, out: Path, capfd: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    """`python -m srcnn -i PATH -s 2 -o OUT`, in this process: its exit code and its lines on stderr (OpenCV's too)."""
    capfd.readouterr()  # what came before
    code = cli.main(["-i", str(path), "-s", "2", "-o", str(out), "-q"])
    return code, capfd.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("kind", ["webp", "webp lossless", "webp alpha", "png"])
def test_a_file_cut_short_is_one_line_refusal(tmp_path, capfd, kind) -> None:
    image = pixels(30, 40, 4 if kind == "webp alpha" else 3)
    quality = 101 if kind == "webp lossless" else 80  # 101: lossless
    data = encoded(".png", image) if kind == "png" else encoded(".webp", image, (cv2.IMWRITE_WEBP_QUALITY, quality))
    for cut in (30, 40, len(data) // 2, len(data) - 1):
        path = written(tmp_path, data[:cut], f"cut.{kind[:4]}")
        code, lines = one_photo(path, tmp_path / "out", capfd)
        assert code == 2 and len(lines) == 1 and "cut short" in lines[0], f"{kind} cut at {cut}: exit {code} {lines}"


@pytest.mark.parametrize("where", [b"\xff\xdb", b"\xff\xc0", b"\xff\xc4", b"\xff\xda"])
@pytest.mark.parametrize("length", [0, 1, 2])
def test_a_jpeg_with_an_empty_segment_is_read_or_refused_in_one_line(tmp_path, capfd, where, length) -> None:
    data = encoded(".jpg", pixels(30, 40, 3))
    at = data.index(where)
    path = written(tmp_path, data[:at] + b"\xff\xe3" + length.to_bytes(2, "big") + data[at:], "empty.jpg")
    code, lines = one_photo(path, tmp_path / "out", capfd)
    assert code == 0 or (code == 2 and len(lines) == 1), f"segment of length {length}: exit {code} {lines}"


# ---------------------------------------------------------------------------------------------------------------
# Memory follows the picture, not the file


PADDED = {".png": 3, ".jpg": 3, ".bmp": 3, ".tiff": 4, ".webp": 4}  # suffix -> channels of the 8x8 picture


@pytest.mark.parametrize("suffix", PADDED)
def test_an_image_followed_by_gigabytes_is_read_in_kilobytes(tmp_path, monkeypatch, suffix) -> None:
    image = pixels(8, 8, PADDED[suffix])
    data = encoded(suffix, image)
    path = written(tmp_path, data, f"padded{suffix}")
    with path.open("r+b") as file:
        file.truncate(PAD)  # sparse: gigabytes of zeros after a whole picture
    header = headers.read_header(path)
    assert header.read_limit < 100 * 2**20, header.read_limit
    read, cut = images.image_bytes(path, header)
    assert len(read) == (len(data) if header.end else header.read_limit), f"{len(read):,} bytes read"
    assert cut == (header.end is None), "only a format without a declared end is cut at the limit"
    taken: list[int] = []
    monkeypatch.setattr(metadata._File, "read", counted(metadata._File.read, taken))
    picture = images.read_picture(path)
    assert np.array_equal(picture.rgb, images.read_picture(written(tmp_path, data, f"whole{suffix}")).rgb)
    assert sum(taken) < 2**20, f"read_metadata read {sum(taken):,} bytes of an 8x8 picture's file"


def counted(read: object, taken: list[int]) -> object:
    """_File.read that adds the length of what it returns to `taken`."""
    def wrapper(self: object, offset: int, size: int) -> bytes:
        data = read(self, offset, size)  # type: ignore[operator]
        taken.append(len(data))
        return data
    return wrapper


def test_a_png_whose_chunks_outweigh_its_picture_is_refused(tmp_path) -> None:
    """An 8x8 PNG with a 100 MB text chunk before its IEND: its declared end is over what an 8x8 picture may take."""
    data = encoded(".png", pixels(8, 8, 3))
    body = 100 * 2**20
    path = tmp_path / "heavy.png"
    with path.open("wb") as file:
        file.write(data[:-12] + struct.pack(">I", body) + b"tEXt")
        file.seek(len(data) - 12 + 8 + body + 4)  # sparse: the text's bytes and CRC
        file.write(data[-12:])  # IEND
    with pytest.raises(SrcnnError, match="for a 8x8 picture, over the limit") as info:
        images.read_picture(path)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------------------------------
# Fuzz: real small images from OpenCV's encoders, whole and mutated, against OpenCV's decoding of the same bytes


SOURCES = [(".png", (1, 3, 4), (np.uint8, np.uint16)), (".jpg", (1, 3), (np.uint8,)),
           (".bmp", (1, 3, 4), (np.uint8,)), (".tiff", (1, 3, 4), (np.uint8, np.uint16)),
           (".webp", (1, 3, 4), (np.uint8,))]
PARAMS = {".jpg": [(), (cv2.IMWRITE_JPEG_PROGRESSIVE, 1), (cv2.IMWRITE_JPEG_QUALITY, 100)],
          ".webp": [(), (cv2.IMWRITE_WEBP_QUALITY, 101)], ".png": [(), (cv2.IMWRITE_PNG_COMPRESSION, 0)],
          ".bmp": [()], ".tiff": [()]}


@st.composite
def real_images(draw: st.DrawFn) -> bytes:
    """A small image (1 to 40 pixels a side, 1, 3 or 4 channels, 8 or 16 bits) encoded by OpenCV."""
    suffix, channel_counts, dtypes = draw(st.sampled_from(SOURCES))
    image = pixels(draw(st.integers(1, 40)), draw(st.integers(1, 40)), draw(st.sampled_from(channel_counts)),
                   draw(st.sampled_from(dtypes)), seed=draw(st.integers(0, 2**16)))
    return encoded(suffix, image, draw(st.sampled_from(PARAMS[suffix])))


def mutate(data: bytes, draw: st.DrawFn) -> bytes:
    """`data` cut short, overwritten in a few places, with 0xFF fill bytes inserted, or padded at the end."""
    how = draw(st.sampled_from(["cut", "overwrite", "fill", "pad"]))
    if how == "cut":
        return data[: draw(st.integers(0, len(data) - 1))]
    if how == "overwrite":
        changed = bytearray(data)
        for _ in range(draw(st.integers(1, 6))):
            changed[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(changed)
    if how == "fill":
        at = draw(st.integers(2, len(data)))
        return data[:at] + b"\xff" * draw(st.integers(1, 64)) + data[at:]
    return data + draw(st.binary(min_size=1, max_size=512))


FUZZ = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])


def read_or_refuse(path: Path) -> headers.ImageHeader | None:
    """read_header's header, or None for its one-line SrcnnError; any other exception, or a hang, fails."""
    try:
        with at_most(5):
            return headers.read_header(path)
    except SrcnnError as exc:
        assert "\n" not in str(exc), repr(exc)
        return None


@FUZZ
@given(data=real_images())
def test_fuzz_whole_images_declare_what_opencv_decodes(tmp_path, data) -> None:
    array = decoded(data)
    assert array is not None, "OpenCV cannot decode its own encoding"
    header = read_or_refuse(written(tmp_path, data))
    assert header is not None, "a whole image from OpenCV's encoder was refused"
    assert_agrees(header, array)
    assert header.alpha == (channels_of(array) == 4), f"{header} vs OpenCV's {array.shape}"


@FUZZ
@given(data=real_images(), choice=st.data())
def test_fuzz_mutated_images_are_refused_or_declare_what_opencv_decodes(tmp_path, data, choice) -> None:
    changed = mutate(data, choice.draw)
    header = read_or_refuse(written(tmp_path, changed))
    array = decoded(changed)
    if header is None or array is None:
        return
    sizes = {(header.height, header.width), (header.width, header.height)}  # a mutation may write an orientation
    assert array.shape[:2] in sizes, f"{header} vs OpenCV's {array.shape}"
    assert header.alpha == (channels_of(array) == 4), f"{header} vs OpenCV's {array.shape}"
