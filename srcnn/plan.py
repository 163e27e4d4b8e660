"""Plan once, then run: each image and factor's result paths and tile size, decided and checked before any work."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import srcnn_dynamic as sd
from srcnn.headers import ImageHeader
from srcnn.images import IMAGE_SUFFIXES
from srcnn.tiling import DEFAULT_TILE, MAX_TILED_OUTPUT_PIXELS, choose_tile

log = logging.getLogger("srcnn")

RUNTIMES = ("torch", "ort")  # the two results of each image and factor, in file names
HOLDS_16_BITS = (".png", ".tif", ".tiff")  # OpenCV writes 16-bit samples in these; JPEG, WebP and BMP keep 8
HOLDS_ALPHA = (".png", ".tif", ".tiff", ".webp", ".bmp")  # JPEG has no alpha channel
MAX_SIDE = {".webp": 16383, ".jpg": 65535, ".jpeg": 65535}  # the formats' own limits on a side, in pixels


@dataclass(frozen=True)
class Job:
    """One image at one factor: where its results go and, once its size is known, how it is tiled."""

    image: Path
    factor: sd.Factor
    results: dict[str, Path]  # runtime ("torch", "ort") -> result path
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


def plan_image(image: Path, header: ImageHeader, factors: Sequence[sd.Factor], output_dir: Path,
               tile: int | None) -> list[Job]:
    """The image's jobs, one per factor, with their result paths; refuse what its header declares, before decoding.

    The header's size is checked both ways round: a camera's orientation tag may turn the decoded picture.
    """
    suffix = result_suffix(image, header)
    jobs = [Job(image, f, {rt: output_dir / f"{image.stem}_{rt}_{f.tag}{suffix}" for rt in RUNTIMES})
            for f in factors]
    for job in jobs:
        for height, width in {(header.height, header.width), (header.width, header.height)}:
            sized(job, height, width, tile)
    return jobs


def sized(job: Job, height: int, width: int, tile: int | None) -> Job:
    """`job` with its tile size decided for a height x width image; refuse an output over the limits."""
    job_tile = choose_tile(height, width, job.factor, tile)
    limit = sd.MAX_OUTPUT_PIXELS if job_tile is None else MAX_TILED_OUTPUT_PIXELS
    out_h, out_w = job.factor.output_size(height, width)
    untiled_fits_tiled = job_tile is None and out_h * out_w <= MAX_TILED_OUTPUT_PIXELS
    advice = (f" untiled; use --tile {DEFAULT_TILE}, a smaller factor or a smaller image" if untiled_fits_tiled
              else "; use a smaller factor or a smaller image")
    sd.check_output_size((height, width), job.factor, limit, advice)
    suffix = job.results["ort"].suffix.lower()
    if max(out_h, out_w) > MAX_SIDE.get(suffix, max(out_h, out_w)):
        raise sd.SrcnnError(f"factor {job.factor.tag} turns {height}x{width} into {out_h}x{out_w}, over {suffix}'s"
                            f" limit of {MAX_SIDE[suffix]:,} pixels a side; convert {job.image.name} to .png first")
    return dataclasses.replace(job, tile=job_tile)


def check_outputs(jobs: dict[Path, list[Job]], extra_outputs: Iterable[Path], inputs: Iterable[Path]) -> None:
    """Refuse a run that would write over one of its inputs, or write two of its results to one path."""
    read = {p.resolve(): p for p in inputs}
    written: set[Path] = set()
    results = (path for image_jobs in jobs.values() for job in image_jobs for path in job.results.values())
    for out in [*results, *extra_outputs]:
        target = out.resolve()
        if target in read:
            kind = "image" if read[target].suffix.lower() in IMAGE_SUFFIXES else "file"
            raise sd.SrcnnError(f"the result {out} would overwrite an input {kind}; choose another --output-dir")
        if target in written:
            raise sd.SrcnnError(f"two results of this run would be written to {out}; give distinct factors")
        written.add(target)


def check_output_file(path: Path, option: str, inputs: Iterable[Path] = (), suffixes: tuple[str, ...] = ()) -> None:
    """Refuse, before any work, an output file (`option` names it) that cannot be written or would replace an input.

    With `suffixes`, its name must also end in one of them: a typo such as `--out train.py` must not replace a
    source file.
    """
    if path.is_dir():
        raise sd.SrcnnError(f"{option} {path} is a folder; give a file name")
    if path.exists() and not path.is_file():
        raise sd.SrcnnError(f"{option} {path} is not a regular file")
    if path.resolve() in {p.resolve() for p in inputs}:
        raise sd.SrcnnError(f"{option} {path} would overwrite an input file; choose another path")
    try:
        sd.check_output_dir(path.parent)
    except sd.SrcnnError as exc:
        raise sd.SrcnnError(f"{option} {path}: {exc}") from None
    if suffixes and path.suffix.lower() not in suffixes:
        raise sd.SrcnnError(f"{option} {path}: the file name must end in {' or '.join(suffixes)}")
