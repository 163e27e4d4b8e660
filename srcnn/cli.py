"""`python -m srcnn`: upscale an image or a folder in PyTorch and ONNX Runtime, every result checked for parity."""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import onnxruntime as ort
from tqdm import tqdm

import srcnn_dynamic as sd
from srcnn.errors import EXIT_CRASH, EXIT_SKIPPED, factor_arg, run_guarded
from srcnn.headers import read_header
from srcnn.images import Picture, image_paths, read_picture, upscale_alpha, write_picture
from srcnn.plan import Job, check_outputs, plan_image, sized
from srcnn.report import Report, finish
from srcnn.runtime import ORT_RESIZES, OrtResize, OrtRunner, load_onnx, resize_keeps_the_size
from srcnn.tiling import DEFAULT_TILE, TILE_ABOVE_PIXELS, check_tile, model_halo, run_torch
from srcnn.weights import load_model

log = logging.getLogger("srcnn")

RESIZE_WORDS = {
    "auto": "as matrix products, or as gathers for long sides (rewritten in memory)",
    "matmul": "as matrix products (rewritten in memory)",
    "gather": "as four gathers per axis (rewritten in memory)",
    "resize": "as exported (ONNX Runtime's cubic Resize)",
}


def run(
    image_path: Path,
    factors: Sequence[sd.Factor],
    *,
    output_dir: Path,
    device: sd.Device = "cpu",
    exporter: sd.Exporter = "torchscript",
    opset: int | None = None,
    weights: Path | None = None,
    tile: int | None = None,
    ort_resize: OrtResize = "auto",
    onnx_model: Path | None = None,
    runs: int | None = None,
) -> Report:
    """PyTorch and ONNX Runtime at each factor on an image or on each image of a folder; write and compare.

    tile: None tiles large outputs only (tiling.choose_tile), 0 never tiles, N tiles of N x N output pixels.
    onnx_model: run this exported model instead of exporting one. runs: timed runs per result (default: 1 for
    a folder, sd.TIMING_RUNS for one image).
    """
    # Every check a user can fail comes before any work, so a mistake costs no time and writes nothing.
    sd.check_device(device)
    sd.check_opset(exporter, opset)
    check_tile(tile)
    images = image_paths(image_path)
    folder_mode = image_path.is_dir()
    report = Report()
    jobs: dict[Path, list[Job]] = {}  # image -> its jobs, one per factor, planned from its header
    for path in images:
        try:
            jobs[path] = plan_image(path, read_header(path), factors, output_dir, tile)
        except Exception as exc:
            skip(report, path, exc, folder_mode)
    first: Picture | None = None
    if not folder_mode:  # one image: its problems are the run's problems, reported now
        first = read_picture(images[0])
        jobs[images[0]] = [sized(job, *first.rgb.shape[2:], tile) for job in jobs[images[0]]]
    sd.check_output_dir(output_dir)
    onnx_path = output_dir / f"srcnn{sd.EXPORT_FACTOR:g}.onnx"
    check_outputs(jobs, [] if onnx_model else [onnx_path], [*images, *filter(None, [weights, onnx_model])])
    proto = None if onnx_model is None else load_onnx(onnx_model)
    model = load_model(weights)
    if proto is None:
        proto = sd.export_onnx(model, onnx_path, exporter=exporter, opset=opset)  # creates output_dir
        log.info("wrote %s", onnx_path)
    else:
        output_dir.mkdir(parents=True, exist_ok=True)
        log.info("running %s as it is (no export)", onnx_model)
    runner = OrtRunner(proto, model_halo(model), device, resize=ort_resize)
    log.info("ONNX Runtime %s on %s, the Resize %s", ort.__version__, runner.providers[0], RESIZE_WORDS[ort_resize])
    model.to(device)

    runs = runs or (1 if folder_mode else sd.TIMING_RUNS)  # a folder is a job, not a demo: each image once
    bar = tqdm(list(jobs), desc="images", unit="image", disable=None if folder_mode else True, file=sys.stderr)
    for path in bar:
        image_jobs = jobs[path]
        try:
            picture = first or read_picture(path)
            if folder_mode:
                image_jobs = [sized(job, *picture.rgb.shape[2:], tile) for job in image_jobs]
            report.rows += upscale(model, runner, picture, image_jobs, runs)
        except Exception as exc:
            skip(report, path, exc, folder_mode)
    log.info("results in %s", output_dir)
    return report


def skip(report: Report, path: Path, exc: Exception, folder_mode: bool) -> None:
    """A folder is a job: whatever one file raised, name it and go on with the others. One image: re-raise."""
    if not folder_mode:
        raise exc
    why = str(exc) if isinstance(exc, sd.SrcnnError) else f"{type(exc).__name__}: {exc}".splitlines()[0]
    report.skipped.append((path, why))
    log.error("skipped %s: %s", path.name, why)
    log.debug("the traceback:", exc_info=exc)


def upscale(model: sd.SuperResolutionNet, runner: OrtRunner, picture: Picture, jobs: Sequence[Job],
            runs: int) -> list[sd.Comparison]:
    """One image at each job's factor in PyTorch and ONNX Runtime; both results written in the input's format."""
    height, width = picture.rgb.shape[2:]
    rows = []
    for job in jobs:
        name, tag = job.image.name, job.factor.tag
        if job.tile is not None:
            log.info("%s x%s: tiles of %d px (--tile 0 runs untiled)", name, tag, job.tile)
        if runner.resize == "resize" and resize_keeps_the_size(height, width, job.factor):
            log.warning("%s x%s: the size does not change, and ONNX Runtime's Resize then returns its input as it"
                        " is; expect a mismatch (--ort-resize auto follows the factor)", name, tag)
        torch_out, torch_ms = sd.timed(functools.partial(run_torch, model, picture.rgb, job.factor, job.tile), runs)
        ort_out, ort_ms = sd.timed(functools.partial(runner, picture.rgb.numpy(), job.factor, job.tile), runs)
        alpha = None if picture.alpha is None else upscale_alpha(picture.alpha, job.factor)
        for runtime, out in (("torch", torch_out), ("ort", ort_out)):
            write_picture(job.results[runtime], out, picture, alpha)
        rows.append(sd.compare(name, job.factor, torch_out, ort_out, torch_ms, ort_ms))
    return rows


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line: the tutorial's options and the product's (folders, tiles, --onnx, --ort-resize)."""
    parser = sd.OneLineErrorParser(
        prog="python -m srcnn",
        description="Super-resolve an image, or every image in a folder, with SRCNN at runtime upscale factors:"
        " PyTorch, one ONNX export (traced at x3), then ONNX Runtime at every factor, compared with PyTorch.",
        epilog=f"exit codes: {sd.EXIT_OK} all factors match within {sd.PARITY_ATOL:g}; {sd.EXIT_MISMATCH} ONNX Runtime"
        f" and PyTorch differ by more; {sd.EXIT_USAGE} bad input or unavailable device (one-line message on stderr);"
        f" {EXIT_SKIPPED} some images of a folder were skipped; {EXIT_CRASH} an unexpected failure (one line; -v"
        f" shows the traceback); {sd.EXIT_INTERRUPTED} Ctrl-C, 143 SIGTERM, 129 SIGHUP (no partial file is left)",
    )
    parser.add_argument("--image", type=Path, default=sd.DEFAULT_IMAGE, metavar="PATH",
                        help="image to upscale, or a folder: every image in it (grey, colour or with alpha; 8 or 16"
                        " bits; results keep the format) (default: face.png)")
    parser.add_argument("--factor", type=factor_arg, action="append", metavar="F",
                        help=f"upscale factor, repeatable: a number (3, 2.5) or HEIGHTxWIDTH (5x6), each >="
                        f" {sd.MIN_FACTOR:g} (default: {' and '.join(sd.DEFAULT_FACTORS)})")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="where PyTorch and ONNX Runtime run; cuda needs requirements-gpu.txt"
                        " (default: %(default)s)")
    parser.add_argument("--exporter", choices=sd.EXPORTERS, default="torchscript",
                        help="torchscript: the tutorial's dynamo=False exporter; dynamo: the torch.export-based one"
                        " (default: %(default)s)")
    parser.add_argument("--opset", type=int, metavar="N", help=f"ONNX opset (default: {sd.MIN_OPSET['torchscript']}"
                        f" for torchscript, {sd.MIN_OPSET['dynamo']} for dynamo)")
    parser.add_argument("--weights", type=Path, metavar="PATH",
                        help="state dict or mmediting/mmagic SRCNN checkpoint (default: weights/srcnn_dynamic.pth,"
                        " made by train.py; a seeded random initialisation if that file is missing)")
    parser.add_argument("--onnx", type=Path, metavar="PATH",
                        help="run this exported model (inputs `input` and `factor`) instead of exporting one")
    parser.add_argument("--output-dir", type=Path, default=Path("outputs"), metavar="DIR",
                        help="where the ONNX model and images go (default: %(default)s)")
    parser.add_argument("--tile", type=int, metavar="N",
                        help=f"run the convolutions in tiles of NxN output pixels to bound memory; 0: never (default:"
                        f" tiles of {DEFAULT_TILE} for outputs over {TILE_ABOVE_PIXELS:,} pixels; the result is the"
                        " same either way)")
    parser.add_argument("--ort-resize", choices=ORT_RESIZES, default="auto",
                        help="how ONNX Runtime computes the bicubic resize, the file keeping its Resize: matmul, two"
                        " matrix products (fastest); gather, four gathers per axis (memory follows the output);"
                        " auto, matmul unless the image has a long side; resize, the graph as exported (default:"
                        " %(default)s)")
    parser.add_argument("--runs", type=int, metavar="N", help=f"timed runs per result, the median reported (default:"
                        f" {sd.TIMING_RUNS} for one image, 1 for a folder)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging, with exporter tracebacks")
    args = parser.parse_args(argv)
    if args.runs is not None and args.runs < 1:
        parser.error(f"--runs {args.runs}: must be at least 1")
    args.factor = args.factor or [sd.Factor.parse(f) for f in sd.DEFAULT_FACTORS]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = parse_args(argv)
    # Our status lines at INFO; other libraries' (onnxscript's graph passes) only at WARNING unless --verbose.
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    for name in ("srcnn", sd.log.name):
        logging.getLogger(name).setLevel(logging.DEBUG if args.verbose else logging.INFO)
    return run_guarded(lambda: finish(run(
        args.image, args.factor, output_dir=args.output_dir, device=args.device, exporter=args.exporter,
        opset=args.opset, weights=args.weights, tile=args.tile, ort_resize=args.ort_resize, onnx_model=args.onnx,
        runs=args.runs)))
