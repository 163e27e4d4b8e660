"""Plan once, then run: each image and factor's result paths and tile size, decided and checked before any work."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import srcnn_dynamic as sd
from srcnn.images import IMAGE_SUFFIXES
from srcnn.tiling import DEFAULT_TILE, MAX_TILED_OUTPUT_PIXELS, choose_tile

RUNTIMES = ("torch", "ort")  # the two results of each image and factor, in file names


@dataclass(frozen=True)
class Job:
    """One image at one factor: where its results go and, once its size is known, how it is tiled."""

    image: Path
    factor: sd.Factor
    results: dict[str, Path]  # runtime ("torch", "ort") -> result path
    tile: int | None = None  # None: untiled


def plan_jobs(images: Sequence[Path], factors: Sequence[sd.Factor], output_dir: Path) -> dict[Path, list[Job]]:
    """Each image's jobs, one per factor, with their result paths: the input's name and format, in `output_dir`."""
    jobs = {}
    for image in images:
        suffix = image.suffix if image.suffix.lower() in IMAGE_SUFFIXES else ".png"
        jobs[image] = [Job(image, f, {rt: output_dir / f"{image.stem}_{rt}_{f.tag}{suffix}" for rt in RUNTIMES})
                       for f in factors]
    return jobs


def sized(job: Job, height: int, width: int, tile: int | None) -> Job:
    """`job` with its tile size decided for a height x width image; refuse an output over the pixel limits."""
    job_tile = choose_tile(height, width, job.factor, tile)
    limit = sd.MAX_OUTPUT_PIXELS if job_tile is None else MAX_TILED_OUTPUT_PIXELS
    out_h, out_w = job.factor.output_size(height, width)
    untiled_fits_tiled = job_tile is None and out_h * out_w <= MAX_TILED_OUTPUT_PIXELS
    advice = (f" untiled; use --tile {DEFAULT_TILE}, a smaller factor or a smaller image" if untiled_fits_tiled
              else "; use a smaller factor or a smaller image")
    sd.check_output_size((height, width), job.factor, limit, advice)
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
