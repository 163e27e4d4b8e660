"""`python -m srcnn` (or `srcnn`): the command line. Parsing imports nothing heavy, so --help answers at once."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import srcnn.startup  # noqa: F401 - first: a signal while the libraries load exits quietly (the `srcnn` command)
from srcnn.core import (DEFAULT_FACTORS, DEFAULT_IMAGE, DEVICES, EXIT_CRASH, EXIT_MISMATCH, EXIT_OK, EXIT_SKIPPED,
                        EXIT_USAGE, EXPORTERS, MIN_FACTOR, MIN_OPSET, ORT_RESIZES, PARITY_ATOL, PRECISIONS,
                        TIMING_RUNS, BF16_MIN_PSNR_DB, Factor, OneLineErrorParser)
from srcnn.errors import factor_arg, run_guarded
from srcnn.models import DEFAULT_MODEL, MODELS
from srcnn.runtimes import DEFAULT_RUNTIME, RUNTIMES
from srcnn.tiling import DEFAULT_TILE, TILE_ABOVE_PIXELS

DESCRIPTION = """\
Upscale photos, or every photo in a folder, with SRCNN at any factor (3, 2.5, or
5x6 for height x width). Each photo gives one result per factor, named
photo_x2.jpg, in the photo's format (grey, alpha, 16 bits, EXIF and colour
profile kept), in --output-dir, and nothing else is written there. It runs on
ONNX Runtime or OpenVINO: the first run exports the model once into your cache
folder; later runs start in a fraction of a second. Results that already exist are kept, so a
rerun finishes only what is missing. Results stop at 8192x8192 pixels."""

EXAMPLES = (("-i photo.jpg -s 2", "writes outputs/photo_x2.jpg"),
            ("-i photos/ -r -s 2 -o big", "every photo under photos/, mirrored"),
            ("--save-onnx srcnn.onnx", "the graph, for plain ONNX Runtime"),
            ("--check", "PyTorch beside ONNX Runtime, compared"),
            ("--runtime openvino --check", "the same graph in OpenVINO, compared"))


def epilog(prog: str) -> str:
    """Examples and exit codes, below the options."""
    width = max(len(f"{prog} {args}") for args, _ in EXAMPLES) + 2
    examples = "\n".join(f"  {f'{prog} {args}':<{width}}{what}" for args, what in EXAMPLES)
    return f"""\
examples:
{examples}

exit codes:
  {EXIT_OK}  done
  {EXIT_MISMATCH}  (--check) the runtime and PyTorch differ by more than {PARITY_ATOL:g}
     (bf16: a PSNR under {BF16_MIN_PSNR_DB:.1f} dB)
  {EXIT_USAGE}  a mistake in the command or its files: one line on stderr, nothing written
  {EXIT_SKIPPED}  some photos of a folder were skipped, each named; the others were written
  {EXIT_CRASH}  an unexpected failure: one line; -v shows the traceback
  130, 143, 129  Ctrl-C, SIGTERM, SIGHUP: no half-written file is left"""


def package_version() -> str:
    """The installed package's version, or where this checkout's code comes from."""
    from importlib import metadata

    try:
        return metadata.version("srcnn-dynamic")
    except metadata.PackageNotFoundError:
        return "(not installed: run from a checkout)"


def path_arg(text: str) -> Path:
    """argparse type for a path: an empty one (`-i ""`, an unset shell variable) would mean the current folder."""
    if not text:
        raise argparse.ArgumentTypeError("an empty path (an unset shell variable?); give a photo or a folder")
    return Path(text)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line: what to upscale and where, the model, speed and memory, checking."""
    prog = "python -m srcnn" if sys.argv[0].endswith("__main__.py") else Path(sys.argv[0]).name  # or `srcnn`
    parser = OneLineErrorParser(prog=prog, description=DESCRIPTION, epilog=epilog(prog),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    what = parser.add_argument_group("what to upscale, and where")
    what.add_argument("-i", "--image", type=path_arg, nargs="+", action="extend", metavar="PATH",
                      help="photos, or folders of photos (PNG, JPEG, TIFF, BMP, WebP); several after one -i, or -i"
                      " again (default: face.png, a demo)")
    what.add_argument("-s", "--factor", type=factor_arg, action="append", metavar="F",
                      help=f"upscale factor, repeatable: 2, 2.5, or HEIGHTxWIDTH such as 5x6; each >= {MIN_FACTOR:g}"
                      f" (default: {' and '.join(DEFAULT_FACTORS)})")
    what.add_argument("-o", "--output-dir", type=Path, default=Path("outputs"), metavar="DIR",
                      help="where the results go; created if missing (default: %(default)s)")
    what.add_argument("-r", "--recursive", action="store_true",
                      help="with a folder: its sub-folders too, mirrored under --output-dir")
    what.add_argument("--overwrite", action="store_true",
                      help="compute results that already exist again (default: keep them, finish the rest)")
    model = parser.add_argument_group("the model")
    model.add_argument("--model", choices=MODELS, default=DEFAULT_MODEL,
                       help="; ".join(f"{kind.name}: {kind.about}" for kind in MODELS.values())
                       + " (default: %(default)s)")
    model.add_argument("--weights", type=Path, metavar="PATH",
                       help="weights to export: a state dict or an mmediting/mmagic SRCNN checkpoint (default: the"
                       " model's shipped weights, " + ", ".join(kind.weights for kind in MODELS.values())
                       + ", trained by train.py)")
    model.add_argument("--onnx", type=Path, metavar="PATH",
                       help="run this ONNX file as it is instead of the exported model: one written by --save-onnx"
                       " or by python srcnn_dynamic.py (inputs `input` and `factor`)")
    model.add_argument("--save-onnx", type=Path, metavar="PATH",
                       help="also write the graph this run runs, ready for plain ONNX Runtime (the fast form: its"
                       " resize as matrix products); alone, without --image, it writes only that")
    model.add_argument("--exporter", choices=EXPORTERS, default="torchscript",
                       help="how PyTorch writes the graph, once: torchscript, the tutorial's; dynamo, torch.export's"
                       " (the same graph) (default: %(default)s)")
    model.add_argument("--opset", type=int, metavar="N",
                       help=f"ONNX opset of the export (default: {MIN_OPSET['torchscript']} with torchscript,"
                       f" {MIN_OPSET['dynamo']} with dynamo, the oldest each can write)")
    speed = parser.add_argument_group("runtime, speed and memory")
    speed.add_argument("--runtime", choices=RUNTIMES, default=DEFAULT_RUNTIME,
                       help="what runs the graph: "
                       + "; ".join(f"{kind.name}, {kind.about}" for kind in RUNTIMES.values())
                       + " (default: %(default)s)")
    speed.add_argument("--device", choices=DEVICES, default="cpu",
                       help="where the runtime runs; cuda (ONNX Runtime) needs requirements-gpu.txt (default:"
                       " %(default)s)")
    speed.add_argument("--precision", choices=PRECISIONS, default="fp32",
                       help="of the convolutions (the upsampling stays float32): bf16 with --runtime openvino on a CPU"
                       " with AVX512-BF16 or AMX, refused elsewhere (default: %(default)s)")
    speed.add_argument("--tile", type=int, metavar="N",
                       help=f"compute in tiles of NxN output pixels, which bounds memory; 0: never (default: tiles of"
                       f" {DEFAULT_TILE} for outputs over {TILE_ABOVE_PIXELS:,} pixels; the same result either way)")
    speed.add_argument("--ort-resize", choices=ORT_RESIZES, default="auto",
                       help="how the runtime computes the bicubic upsampling: matmul, two matrix products (fastest);"
                       " gather, four gathers per axis (memory follows the output: for very long sides); auto, matmul"
                       " unless a side is very long; resize, the runtime's own Resize as exported (slower)"
                       " (default: %(default)s)")
    checking = parser.add_argument_group("checking")
    checking.add_argument("--check", action="store_true",
                          help="compute every result in PyTorch too (loads it: seconds), write both as"
                          " photo_torch_2.jpg and photo_ort_2.jpg (photo_openvino_2.jpg), print the parity table;"
                          f" exit {EXIT_MISMATCH} when they differ by more than {PARITY_ATOL:g} (bf16:"
                          f" a PSNR under {BF16_MIN_PSNR_DB:.1f} dB)")
    checking.add_argument("--runs", type=int, metavar="N",
                          help=f"with --check: timed runs per result, the median reported (default: {TIMING_RUNS}"
                          " for one photo, 1 for a folder); benchmark.py measures speed properly")
    output = parser.add_argument_group("output")
    output.add_argument("-q", "--quiet", action="store_true",
                        help="print errors only: no progress bar, no summary line")
    output.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    output.add_argument("-v", "--verbose", action="store_true",
                        help="say each step (the cache, the sessions, tiles), with tracebacks of failures")
    args = parser.parse_args(argv)
    if args.runs is not None and not args.check:
        parser.error(f"--runs {args.runs}: timed runs belong to --check (python benchmark.py measures speed)")
    if args.runs is not None and args.runs < 1:
        parser.error(f"--runs {args.runs}: must be at least 1")
    if args.quiet and args.verbose:
        parser.error("-q and -v: choose one")
    if args.image is None and args.save_onnx is None:
        args.image = [DEFAULT_IMAGE]
    args.factor = args.factor or [Factor.parse(f) for f in DEFAULT_FACTORS]
    return args


def configure_logging(verbose: bool, quiet: bool) -> None:
    """Warnings and errors by default; -v: every step (ours at DEBUG, other libraries' at WARNING); -q: errors."""
    level = logging.ERROR if quiet else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(message)s")
    for name in ("srcnn", "srcnn_dynamic"):
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else level)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = parse_args(argv)
    configure_logging(args.verbose, args.quiet)

    def work() -> int:
        from srcnn.app import run  # the libraries load here, after the arguments are known to be sound
        from srcnn.report import finish

        report = run(args.image, args.factor, output_dir=args.output_dir, device=args.device,
                     exporter=args.exporter, opset=args.opset, weights=args.weights, model=args.model,
                     runtime=args.runtime, precision=args.precision, tile=args.tile,
                     ort_resize=args.ort_resize, onnx_model=args.onnx, check=args.check, runs=args.runs,
                     recursive=args.recursive, overwrite=args.overwrite, save_onnx=args.save_onnx,
                     progress=not args.quiet)
        return finish(report, quiet=args.quiet)

    return run_guarded(work)
