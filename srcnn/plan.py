"""Plan once, then run: each image and factor's result paths and tile size, decided and checked before any work."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from srcnn.core import MAX_OUTPUT_PIXELS, Factor, SrcnnError, check_output_dir, check_output_size, real_path
from srcnn.headers import ImageHeader, read_header
from srcnn.images import IMAGE_SUFFIXES, atomic_path
from srcnn.tiling import DEFAULT_TILE, MAX_TILED_OUTPUT_PIXELS, choose_tile

log = logging.getLogger("srcnn")

RESULT, REFERENCE = "result", "torch"  # a job's result, its runtime's; with --check PyTorch's too, beside it
COMPLETE_ENDINGS = {"PNG": b"IEND\xaeB`\x82", "JPEG": b"\xff\xd9"}  # the last bytes of a whole file
HOLDS_16_BITS = (".png", ".tif", ".tiff")  # OpenCV writes 16-bit samples in these; JPEG, WebP and BMP keep 8
HOLDS_ALPHA = (".png", ".tif", ".tiff", ".webp", ".bmp")  # JPEG has no alpha channel
NAME_MAX = 255  # bytes in a file name on common file systems, where os.pathconf cannot say
MAX_SIDE = {".webp": 16383, ".jpg": 65500, ".jpeg": 65500}  # the encoders' limits on a side (PNG's: MAX_OUTPUT_SIDE)


@dataclass(frozen=True)
class Job:
    """One image at one factor: where its results go and, once its size is known, how it is tiled."""

    image: Path
    factor: Factor
    results: dict[str, Path]  # RESULT (with --check REFERENCE too) -> result path
    sizes: frozenset[tuple[int, int]] = frozenset()  # the result's (height, width), by the header: either way round
    tile: int | None = None  # None: untiled


def result_suffix(image: Path, header: ImageHeader) -> str:
    """The input's suffix when its format can hold the image's depth and alpha; else .png, said in the log."""
    suffix = image.suffix if image.suffix.lower() in IMAGE_SUFFIXES else ".png"
    lost = [what for what, kept, holds in (("16-bit samples", header.depth > 8, HOLDS_16_BITS),
                                           ("an alpha channel", header.alpha, HOLDS_ALPHA))
            if kept and suffix.lower() not in holds]
    if lost:
        log.warning("%s has %s, which %s cannot hold: its results are written as .png", image.name,
                    " and ".join(lost), suffix)
        return ".png"
    return suffix


def result_names(stem: str, factor: Factor, suffix: str, check: bool, runtime: str = "ort") -> dict[str, str]:
    """The file names of an image's results at `factor`: photo_x2.jpg; with --check, photo_torch_2.jpg and
    photo_ort_2.jpg (PyTorch's and the runtime's, as the tutorial names them; photo_openvino_2.jpg in OpenVINO)."""
    if check:
        return {REFERENCE: f"{stem}_{REFERENCE}_{factor.tag}{suffix}", RESULT: f"{stem}_{runtime}_{factor.tag}{suffix}"}
    return {RESULT: f"{stem}_x{factor.tag}{suffix}"}


def plan_image(image: Path, header: ImageHeader, factors: Sequence[Factor], output_dir: Path,
               tile: int | None, check: bool = False, runtime: str = "ort") -> list[Job]:
    """The image's jobs, one per factor, with their result paths; refuse what its header declares, before decoding.

    The header's size is checked both ways round: a camera's orientation tag may turn the decoded picture.
    """
    suffix = result_suffix(image, header)
    names = {f: result_names(image.stem, f, suffix, check, runtime) for f in factors}
    jobs = [Job(image, f, {key: output_dir / name for key, name in names[f].items()},
                frozenset({f.output_size(header.height, header.width), f.output_size(header.width, header.height)}))
            for f in factors]
    for job in jobs:
        for height, width in {(header.height, header.width), (header.width, header.height)}:
            sized(job, height, width, tile)
        for path in job.results.values():
            check_name_fits(path, image)
    return jobs


def name_max(folder: Path) -> int:
    """The longest file name, in bytes, that the file system of `folder` (or of its nearest existing parent) takes."""
    try:
        existing = next(p for p in (folder, *folder.parents) if p.is_dir() or p == p.parent)
        return os.pathconf(existing, "PC_NAME_MAX")
    except (OSError, ValueError):  # a name too long to look up, or a system that cannot say
        return NAME_MAX


def check_name_fits(path: Path, image: Path) -> None:
    """Refuse a result name longer than its file system takes (255 bytes on most), found before the work."""
    if len(os.fsencode(path.name)) > name_max(path.parent):
        raise SrcnnError(f"the result name {path.name} is longer than the file system allows; rename {image}")


def sized(job: Job, height: int, width: int, tile: int | None) -> Job:
    """`job` with its tile size decided for a height x width image; refuse an output over the limits."""
    job_tile = choose_tile(height, width, job.factor, tile)
    limit = MAX_OUTPUT_PIXELS if job_tile is None else MAX_TILED_OUTPUT_PIXELS
    out_h, out_w = job.factor.output_size(height, width)
    untiled_fits_tiled = job_tile is None and out_h * out_w <= MAX_TILED_OUTPUT_PIXELS
    advice = (f" untiled; use --tile {DEFAULT_TILE}, a smaller factor or a smaller image" if untiled_fits_tiled
              else "; use a smaller factor or a smaller image")
    check_output_size((height, width), job.factor, limit, advice)
    suffix = job.results[RESULT].suffix.lower()
    if max(out_h, out_w) > MAX_SIDE.get(suffix, max(out_h, out_w)):
        raise SrcnnError(f"factor {job.factor.tag} turns {height}x{width} into {out_h}x{out_w}, over {suffix}'s"
                            f" limit of {MAX_SIDE[suffix]:,} pixels a side; convert {job.image.name} to .png first")
    return dataclasses.replace(job, tile=job_tile)


def is_complete(result: Path, sizes: Iterable[tuple[int, int]]) -> bool:
    """Whether `result` is a whole image of one of `sizes` (height, width), e.g. from an earlier run: its header
    declares that size, and it is as long as its format says (PNG and JPEG by their last bytes, WebP by its RIFF
    size, BMP by its file size field; a TIFF by its header alone)."""
    try:
        header = read_header(result)
        if (header.height, header.width) not in set(sizes):  # results are written upright
            return False
        with result.open("rb") as file:
            head = file.read(8)
            length = file.seek(0, 2)
            file.seek(max(length - len(COMPLETE_ENDINGS.get(header.format, b"")), 0))
            tail = file.read()
    except (SrcnnError, OSError):
        return False
    if header.format in COMPLETE_ENDINGS:
        return tail == COMPLETE_ENDINGS[header.format]
    if header.format == "WebP":
        return int.from_bytes(head[4:8], "little") + 8 == length
    if header.format == "BMP":
        return int.from_bytes(head[2:6], "little") == length
    return True


def check_outputs(jobs: dict[Path, list[Job]], extra_outputs: Iterable[Path], inputs: Iterable[Path]) -> None:
    """Refuse a run that would write over one of its inputs, or write two of its results to one path."""
    read = {real_path(p): p for p in inputs}
    written: dict[Path, Path] = {}  # result -> the image it comes from
    results = [(path, job.image) for image_jobs in jobs.values() for job in image_jobs for path in job.results.values()]
    for out, source in [*results, *((path, path) for path in extra_outputs)]:
        target = real_path(out)
        if target in read:
            kind = "image" if read[target].suffix.lower() in IMAGE_SUFFIXES else "file"
            raise SrcnnError(f"the result {out} would overwrite an input {kind}; choose another --output-dir")
        if target in written:
            why = ("give distinct factors" if written[target] == source else
                   f"{written[target]} and {source} give results of one name; rename one of them")
            raise SrcnnError(f"two results of this run would be written to {out}; {why}")
        written[target] = source


def check_output_file(path: Path, option: str, inputs: Iterable[Path] = (), suffixes: tuple[str, ...] = ()) -> None:
    """Refuse, before any work, an output file (`option` names it) that cannot be written or would replace an input:
    a folder, a special file, an input, a folder that cannot be made or takes no files, a name too long.

    With `suffixes`, its name must also end in one of them: a typo such as `--out train.py` must not replace a
    source file.
    """
    try:
        if path.is_dir():
            raise SrcnnError(f"{option} {path} is a folder; give a file name")
        if path.exists() and not path.is_file():
            raise SrcnnError(f"{option} {path} is not a regular file")
        if real_path(path) in {real_path(p) for p in inputs}:
            raise SrcnnError(f"{option} {path} would overwrite an input file; choose another path")
        check_output_dir(path.parent)
    except SrcnnError as exc:
        raise SrcnnError(str(exc) if str(exc).startswith(option) else f"{option} {path}: {exc}") from None
    except OSError as exc:  # a name too long even to look up: the trial names the limit, else this line says why
        try_output_file(path, option)
        raise SrcnnError(f"{option} {path} cannot be written: {exc.strerror or exc}") from None
    if suffixes and path.suffix.lower() not in suffixes:
        raise SrcnnError(f"{option} {path}: the file name must end in {' or '.join(suffixes)}")
    try_output_file(path, option)


class _Tried(Exception):
    """Ends an atomic_path block on purpose: its temporary file is removed, never moved into place."""


def try_output_file(path: Path, option: str) -> None:
    """Create and remove the temporary file that writing `path` starts with (atomic_path's), and the folders it
    needs, so that a folder that takes no files, a read-only file system or a name too long is refused now, not after
    the work. Only trying tells: os.access says yes to root whatever a folder allows. Nothing is left behind."""
    missing: list[Path] = []  # folders the trial creates, deepest first; the real write creates them again
    try:
        missing = list(itertools.takewhile(lambda folder: not folder.exists(), (path.parent, *path.parent.parents)))
        path.parent.mkdir(parents=True, exist_ok=True)
        if (length := len(os.fsencode(path.name))) > (limit := name_max(path.parent)):
            raise SrcnnError(f"{option} {path}: the file name is {length} bytes, over the {limit} that its file"
                             " system takes")
        with atomic_path(path) as tmp:
            tmp.touch(exist_ok=False)
            raise _Tried
    except _Tried:
        pass
    except FileExistsError as exc:  # a link to nowhere, or a loop of links, where a folder should be
        raise SrcnnError(f"{option} {path}: {exc.filename} is not a folder") from None
    except OSError as exc:
        raise SrcnnError(f"{option} {path} cannot be written: {exc.strerror or exc}") from None
    finally:
        for folder in missing:
            with contextlib.suppress(OSError):
                folder.rmdir()
