"""One run of `python -m srcnn`: plan every image, load (or build once) the graph, upscale in a runtime, report.

Every check a user can fail comes before any work, so a mistake costs no time and writes nothing. PyTorch is
imported only to build a graph not yet cached, and by --check.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from srcnn import cache
from srcnn.core import (TIMING_RUNS, Device, Factor, OrtResize, Precision, SrcnnError, check_opset,
                        check_output_dir, make_output_dir, real_path)
from srcnn.errors import is_mistake
from srcnn.headers import read_header
from srcnn.images import IMAGE_SUFFIXES, Picture, atomic_path, image_paths, read_picture, write_picture
from srcnn.models import TUTORIAL_MODEL, model_kind
from srcnn.plan import REFERENCE, RESULT, Job, check_output_file, check_outputs, is_complete, plan_image, sized
from srcnn.report import Report
from srcnn.runtime import GraphParts, Runner, resize_keeps_the_size, upscale_alpha
from srcnn.runtimes import DEFAULT_RUNTIME, create_runner, runtime_class
from srcnn.tiling import check_tile

if TYPE_CHECKING:  # srcnn.check loads torch: imported for --check alone
    from srcnn.check import Checker

log = logging.getLogger("srcnn")

RESIZE_WORDS = {
    "auto": "as matrix products, or as gathers for long sides",
    "matmul": "as matrix products",
    "gather": "as four gathers per axis",
    "resize": "as exported (the runtime's cubic Resize)",
}


def run(
    image_path: Path | Sequence[Path] | None,
    factors: Sequence[Factor],
    *,
    output_dir: Path,
    device: Device = "cpu",
    exporter: str = "torchscript",
    opset: int | None = None,
    weights: Path | None = None,
    model: str = TUTORIAL_MODEL,
    runtime: str = DEFAULT_RUNTIME,
    precision: Precision = "fp32",
    tile: int | None = None,
    ort_resize: OrtResize = "auto",
    onnx_model: Path | None = None,
    check: bool = False,
    runs: int | None = None,
    recursive: bool = False,
    overwrite: bool = False,
    save_onnx: Path | None = None,
    progress: bool = True,
) -> Report:
    """Upscale an image, or each image of a folder, at each factor; with `check`, in PyTorch too, compared.

    image_path: a photo or a folder, or several of them (each folder's results mirror it under `output_dir`);
    None: no image (with `save_onnx`, the run only writes the graph). tile: None tiles large outputs only
    (tiling.choose_tile), 0 never tiles, N tiles of N x N output pixels. onnx_model: run this graph instead of the
    `model`'s (a srcnn.models name). runtime: a srcnn.runtimes name; precision: of its convolutions. runs:
    --check's timed runs per result (default: 1 for a batch, TIMING_RUNS for one photo). An existing, complete
    result is kept unless `overwrite` (or `check`, which always computes).
    """
    started = time.perf_counter()
    model_kind(model)  # a name the registry knows, before any work
    runtime_class(runtime).check(device, precision)  # installed, and able to run this device and precision here
    check_opset(exporter, opset)
    check_tile(tile)
    inputs = [p for p in (weights, onnx_model) if p is not None]
    if weights is not None and onnx_model is not None and not check:
        raise SrcnnError(f"--weights {weights} and --onnx {onnx_model}: the ONNX file holds its own weights; give"
                         " one of them (with --check, --weights is PyTorch's side of the comparison)")
    if weights is not None and not weights.exists():
        raise SrcnnError(f"weights file not found: {weights}")
    if onnx_model is not None and not onnx_model.exists():
        raise SrcnnError(f"ONNX model not found: {onnx_model}")
    if save_onnx is not None:
        check_output_file(save_onnx, "--save-onnx", inputs, suffixes=(".onnx",))
    report = Report(output_dir)
    sources = [] if image_path is None else [image_path] if isinstance(image_path, Path) else list(image_path)
    batch = len(sources) > 1 or any(source.is_dir() for source in sources)  # a batch: skip what fails
    jobs: dict[Path, list[Job]] = {}  # image -> its jobs, one per factor, planned from its header
    if sources:
        jobs = plan(sources, factors, output_dir, tile, check, recursive, report, batch, runtime)
        photos = [*jobs, *(path for path, _ in report.skipped)]
        check_outputs(jobs, [save_onnx] if save_onnx else [], [*photos, *inputs])
        if not (overwrite or check):  # --check always computes: it compares
            jobs = {path: todo for path, image_jobs in jobs.items() if (todo := left_to_do(report, path, image_jobs))}
    first: Picture | None = None
    if jobs and not batch:  # one photo: decoded now, so that its problems stop the run before any work
        first = read_picture(*jobs)
        jobs = {path: [sized(job, *first.rgb.shape[2:], tile) for job in todo] for path, todo in jobs.items()}
    if jobs or save_onnx:
        parts = graph_parts(onnx_model, weights, exporter, opset, model)
        runner = create_runner(parts, runtime, device, resize=ort_resize, precision=precision,
                               progress=progress)  # refuses before anything is written
        how = RESIZE_WORDS[ort_resize] if len(parts.upsample) > 1 else "as matrix products (the file's only form)"
        log.info("%s on %s, the Resize %s", runner.label, runner.where, how)
        if first is not None:  # one photo: a Resize form the graph lacks is refused before anything is written
            for job in next(iter(jobs.values())):
                runner.form(*first.rgb.shape[2:], job.factor)
        checker: Checker | None = None
        if check and jobs:
            from srcnn.check import Checker  # torch and the tutorial load here, for --check alone

            checker = Checker(weights, device, runs or (1 if batch else TIMING_RUNS), model)
        if jobs:  # made and proven to take a file now, not found out after the first photo's compute
            make_output_dir(output_dir)
        if save_onnx is not None:
            write_graph(save_onnx, parts)
            report.graph = save_onnx
        if jobs:
            upscale_all(runner, jobs, first, tile, report, checker, progress)
    report.seconds = time.perf_counter() - started
    return report


def plan(sources: Sequence[Path], factors: Sequence[Factor], output_dir: Path, tile: int | None, check: bool,
         recursive: bool, report: Report, batch: bool, runtime: str = DEFAULT_RUNTIME) -> dict[Path, list[Job]]:
    """Each image's jobs, planned from its header. In a batch (a folder, or several photos) a bad file is skipped
    and named; one photo's problems are the run's."""
    if output_dir.suffix.lower() in IMAGE_SUFFIXES and not output_dir.is_dir():
        raise SrcnnError(f"--output-dir {output_dir} names a folder for the results, not a file: a photo's result is"
                         " named after it (photo_x2.jpg); give a folder")
    for source in sources:
        if source.is_dir() and real_path(output_dir) == real_path(source):
            raise SrcnnError(f"--output-dir {output_dir} is the folder of the photos: the results would be read as"
                             " photos by the next run; choose another folder (a sub-folder is fine)")
    jobs: dict[Path, list[Job]] = {}
    for source in sources:
        unreadable: list[tuple[Path, str]] = []
        paths = image_paths(source, recursive=recursive, exclude=output_dir, unreadable=unreadable,
                            left_out=report.left_out)
        for folder, why in unreadable:
            skip(report, folder, SrcnnError(f"cannot list the folder {folder}: {why}"), batch)
        for path in paths:
            folder = output_dir / path.parent.relative_to(source) if source.is_dir() else output_dir  # mirrored
            try:
                jobs[path] = plan_image(path, read_header(path), factors, folder, tile, check, runtime)
            except Exception as exc:
                skip(report, path, exc, batch)
    check_output_dir(output_dir)
    return jobs


def left_to_do(report: Report, image: Path, jobs: list[Job]) -> list[Job]:
    """The jobs whose result is not yet there whole and newer than the photo; the others are noted in the report."""
    todo = []
    for job in jobs:
        result = job.results[RESULT]
        if is_complete(result, job.sizes) and result.stat().st_mtime_ns >= image.stat().st_mtime_ns:
            report.existing.append(result)
            log.debug("kept %s: complete from an earlier run", result)
        else:
            todo.append(job)
    return todo


def upscale_all(runner: Runner, jobs: dict[Path, list[Job]], first: Picture | None, tile: int | None,
                report: Report, checker: Checker | None, progress: bool) -> None:
    """Every image's jobs, a progress bar over the images (on a terminal, for a folder), a skipped image named."""
    report.output_dir.mkdir(parents=True, exist_ok=True)
    bar = tqdm(list(jobs), desc="images", unit="image", file=sys.stderr, dynamic_ncols=True,
               disable=None if progress and first is None else True)  # None: shown on a terminal only
    # The root logger's handler prints every line (ours propagate to it): routed through the bar, a skipped
    # photo's line lands above it, once, instead of through it.
    with logging_redirect_tqdm(loggers=[logging.getLogger()]):
        for path in bar:
            try:
                picture = first if first is not None else read_picture(path)
                upscale(runner, picture, [sized(job, *picture.rgb.shape[2:], tile) for job in jobs[path]], report,
                        checker)
                report.images += 1
            except Exception as exc:
                skip(report, path, exc, first is None)


def graph_parts(onnx_model: Path | None, weights: Path | None, exporter: str, opset: int | None,
                model: str = TUTORIAL_MODEL) -> GraphParts:
    """The graph this run runs: the file given with --onnx as it is, or `model`'s from the cache."""
    if onnx_model is None:
        return cache.graph_parts(weights, exporter, opset, model)
    from srcnn import graph  # onnx loads here, to check a file given by the user

    log.info("running %s as it is (no export)", onnx_model)
    return graph.graph_parts(graph.load_onnx(onnx_model))


def write_graph(path: Path, parts: GraphParts) -> None:
    """Write the graph the product runs (its Resize as matrix products), whole or not at all."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_bytes(parts.fast)
    except OSError as exc:
        raise SrcnnError(f"cannot write {path}: {exc.strerror or exc}; nothing was left half-written") from None
    log.info("wrote %s: the graph as this run runs it (inputs input and factor)", path)


def skip(report: Report, path: Path, exc: Exception, batch: bool) -> None:
    """A batch is a job: whatever one file raised, name it once and go on with the others. One photo: re-raise."""
    if not batch:
        raise exc
    why = str(exc) if is_mistake(exc) else f"{type(exc).__name__}: {exc}".splitlines()[0]
    report.skipped.append((path, why))
    if str(path) in why:  # most messages name the file already: name it once
        log.error("skipped: %s", why)
    else:
        log.error("skipped %s: %s", path, why)
    if not is_mistake(exc):  # a bug's traceback, under -v; a file that is not a photo needs none
        log.debug("the traceback:", exc_info=exc)


def upscale(runner: Runner, picture: Picture, jobs: Sequence[Job], report: Report,
            checker: Checker | None = None) -> None:
    """One image at each job's factor; each result written in the input's format (with --check, PyTorch's too)."""
    height, width = picture.rgb.shape[2:]
    for job in jobs:
        name, tag = job.image.name, job.factor.tag
        if job.tile is not None:
            log.info("%s x%s: tiles of %d px (--tile 0 runs untiled)", name, tag, job.tile)
        if runner.form(height, width, job.factor) == "resize" and resize_keeps_the_size(height, width, job.factor):
            log.warning("%s x%s: the size does not change, and %s's Resize then returns its input as it is; expect"
                        " a mismatch (--ort-resize auto follows the factor)", name, tag, runner.label)
        outputs = {}
        if checker is not None:
            outputs[REFERENCE], outputs[RESULT], comparison = checker(runner, picture, job)
            report.comparisons.append(comparison)
        else:
            outputs[RESULT] = runner(picture.rgb, job.factor, job.tile)
        alpha = None if picture.alpha is None else upscale_alpha(runner, picture.alpha, job.factor)
        for key, out in outputs.items():
            job.results[key].parent.mkdir(parents=True, exist_ok=True)
            write_picture(job.results[key], out, picture, alpha)
            report.written.append(job.results[key])
