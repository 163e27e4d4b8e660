"""Evaluate the SRCNN against plain bicubic: Y-PSNR and SSIM at several factors, in PyTorch and in a runtime.

    python evaluate.py                          # every model on the validation photos at x1.5 to x4 (the README's
                                                # table), then the soft case: the photos blurred before degradation
    python evaluate.py --model factor-aware     # one model
    python evaluate.py --images DIR             # any folder of images, e.g. your own test set
    python evaluate.py --figure docs/face_sr.png
    python evaluate.py --runtime openvino --precision bf16   # what bf16 costs (on a CPU with AVX512-BF16 or AMX)

Each high-resolution image is cropped to sides that are multiples of the factor and degraded by antialiased
bicubic downsampling to 8 bits (srcnn.data.make_pair). Bicubic is the models' own first stage (the Resize alone);
each model (srcnn.models, side by side) runs whole in PyTorch (float32) and through its exported ONNX model in a
runtime (--runtime, default ONNX Runtime; srcnn.runtimes), whose PSNR must agree within RUNTIME_PSNR_TOLERANCE of
its precision: in bf16, that is the gain over bicubic that bf16 may lose. PSNR and SSIM are measured on
BT.601 luma with ceil(factor) border pixels cropped, the convention of the super-resolution literature. Each
factor's row names its worst image: a model that wins on average can still lose on one picture. The soft case
blurs the validation photos (data.SOFT_SIGMA) before degrading them, as an old or out-of-focus photo is: there,
sharpening can only lose.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

import srcnn.startup  # noqa: F401, I001 - first: a signal while the libraries load exits quietly
import srcnn_dynamic as sd
from srcnn import data, models
from srcnn.errors import factor_arg, run_guarded
from srcnn.graph import graph_parts
from srcnn.headers import read_header
from srcnn.images import IMAGE_SUFFIXES, image_paths, read_picture, write_image
from srcnn.models import MODELS
from srcnn.plan import check_output_file
from srcnn.pytorch import export, run_torch, tutorial_factor
from srcnn.core import BF16_GAIN_LOSS_DB, PRECISIONS
from srcnn.runtime import Runner
from srcnn.runtimes import DEFAULT_RUNTIME, RUNTIMES, create_runner, runtime_class
from srcnn.tiling import choose_tile
from srcnn.weights import load_model

log = logging.getLogger("evaluate")

# dB: a runtime must reproduce PyTorch's PSNR to this: in fp32 the outputs differ by ~1e-6; bf16 may lose this much
# of the gain over bicubic (srcnn.core: its parity budget is derived from it)
RUNTIME_PSNR_TOLERANCE = {"fp32": 0.01, "bf16": BF16_GAIN_LOSS_DB}
# data.ssim_y's Gaussian window (sigma 1.5, scikit-image's truncate 3.5): 11 pixels a side, the least SSIM measures
SSIM_WINDOW = 2 * int(3.5 * 1.5 + 0.5) + 1
# Per image: the metrics (srcnn.data) hold whole float64 copies of its luma, about 200 bytes a pixel at their peak
# (3.5 GB at this size); larger images are refused by their header, before a pixel is decoded
MAX_IMAGE_PIXELS = 4096 * 4096
MIN_SIDE_SEARCH = 256  # low-resolution sides tried when naming the smallest image a factor can measure

# The README figure: a crop of the face (eyes and mouth), shown at FIGURE_ZOOM with nearest-neighbour pixels
FIGURE_CROP = (slice(56, 184), slice(56, 200))  # rows, columns of face.png
FIGURE_ZOOM = 2
# ... and beneath each, the eyes at FIGURE_DETAIL_ZOOM, where the difference between bicubic and SRCNN shows
FIGURE_DETAIL = (slice(86, 110), slice(92, 164))  # rows, columns of face.png: the eyes, 24 x 72 pixels
FIGURE_DETAIL_ZOOM = 4  # 72 x 4 = 288 = FIGURE_CROP's width x FIGURE_ZOOM: the detail fills its column
FIGURE_FACTORS = ("3", "4")
# the table's factors: x1.5, where a model that cannot see the factor over-sharpens, then the training range
TABLE_FACTORS = ("1.5", *data.EVAL_FACTORS)


@dataclass(frozen=True)
class Row:
    """Bicubic and SRCNN on one image at one factor, and SRCNN's PSNR through the runtime."""

    image: str
    factor: sd.Factor
    bicubic: data.Scores
    srcnn: data.Scores
    runtime_psnr: float

    @property
    def gain(self) -> float:
        """SRCNN's PSNR gain over bicubic, in dB."""
        return self.srcnn.psnr - self.bicubic.psnr


Images = Iterable[tuple[str, torch.Tensor]]  # (name, (1, 3, H, W) RGB in [0, 1])


def folder_arg(text: str) -> Path:
    """argparse type for --images: an empty path (an unset shell variable) would mean the current folder."""
    if not text:
        raise argparse.ArgumentTypeError("an empty path (an unset shell variable?) would mean the current folder; give"
                                         " a folder of images")
    return Path(text)


def folder_images(folder: Path) -> list[Path]:
    """The images in `folder`, by suffix; refused by their headers if one is not an image or is too large."""
    try:
        if not folder.is_dir():
            raise sd.SrcnnError(f"--images {folder}: not a folder")
        paths = image_paths(folder, option="--images")
    except OSError as exc:  # no permission, or a name too long even to look up
        raise sd.SrcnnError(f"--images {folder}: {exc.strerror or exc}") from None
    for path in paths:
        header = read_header(path)  # a special file, a stranger or a lie is refused here, unread
        if header.height * header.width > MAX_IMAGE_PIXELS:
            raise sd.SrcnnError(f"{path} declares {header.height}x{header.width} pixels, over evaluate.py's limit of"
                                f" {MAX_IMAGE_PIXELS:,} (4096x4096) per image; crop or shrink it")
    return paths


def read_images(paths: Sequence[Path]) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, image) for each file, decoded as it is reached: one image's pixels in memory at a time."""
    for path in paths:
        yield path.name, torch.from_numpy(read_picture(path).rgb)


def load_images(folder: Path | None) -> list[tuple[str, torch.Tensor]]:
    """(name, (1, 3, H, W) RGB in [0, 1]) for the validation photos, or for every image in `folder`."""
    if folder is None:
        return [(name, data.load_photo_tensor(name)) for name in data.VALIDATION_PHOTOS]
    return list(read_images(folder_images(folder)))


def min_side(factor: float) -> int | None:
    """The smallest image side that leaves SSIM_WINDOW pixels at `factor` once make_pair has cut it to a whole
    multiple and the border is cropped; None when none lies within MIN_SIDE_SEARCH low-resolution sides."""
    border = 2 * math.ceil(factor)
    first = math.ceil((SSIM_WINDOW + border) / factor)
    for lr in range(first, first + MIN_SIDE_SEARCH):
        side = round(lr * factor)
        with contextlib.suppress(sd.SrcnnError):  # no low-resolution side at all fits this one
            if side - border >= SSIM_WINDOW and data.lr_side(side, factor) == lr:  # lr fits side exactly
                return side
    return None


def check_measurable(name: str, height: int, width: int, factor: sd.Factor) -> None:
    """Refuse an image that leaves less than SSIM's window at `factor` once cut and its border cropped, naming the
    smallest image that would do."""
    sides = min_side(factor.height), min_side(factor.width)
    advice = f"; measure images of at least {sides[0]}x{sides[1]} pixels at x{factor.tag}" if None not in sides else ""
    try:
        kh, kw = data.pair_size(height, width, factor)
    except sd.SrcnnError as exc:
        raise sd.SrcnnError(f"{name}: {exc}{advice}") from None
    left = (round(kh * factor.height) - 2 * math.ceil(factor.height),
            round(kw * factor.width) - 2 * math.ceil(factor.width))  # as data.crop_border leaves it
    if min(left) < SSIM_WINDOW:
        raise sd.SrcnnError(f"{name}: a {height}x{width} image is too small to measure at x{factor.tag}: its border"
                            f" cropped, {left[0]}x{left[1]} pixels are left, under SSIM's {SSIM_WINDOW}x{SSIM_WINDOW}"
                            f" window{advice}")


def check_images(images: Images, factors: Sequence[sd.Factor]) -> None:
    """Refuse, before any work, an image too small for one of the factors."""
    for name, image in images:
        for factor in factors:
            check_measurable(name, *image.shape[2:], factor)


def soft_images() -> list[tuple[str, torch.Tensor]]:
    """The soft case: the validation photos blurred by data.SOFT_SIGMA pixels before any degradation."""
    return [(f"{name} (soft)", data.gaussian_blur(image, data.SOFT_SIGMA)) for name, image in load_images(None)]


def bicubic(lr: torch.Tensor, factor: sd.Factor) -> torch.Tensor:
    """The baseline: exactly the model's first stage, the Resize the ONNX graph starts with."""
    return sd.bicubic_resize(lr, factor.tensor())


def evaluate(
    model: torch.nn.Module,
    runner: Runner,
    images: Images,
    factors: Sequence[sd.Factor],
) -> list[Row]:
    """Bicubic, SRCNN in PyTorch and SRCNN in the runtime on every image at every factor; rows by factor.

    Each image is read once (`images` may decode as it goes); large outputs run tile by tile (the untiled pixels),
    so that conv1's 64 maps never take more than a tile's memory."""
    rows = []
    for name, image in images:
        for factor in factors:
            lr, hr = data.make_pair(image, factor)
            tile = choose_tile(*lr.shape[2:], factor, None)  # None (untiled) up to a megapixel out
            # one result at a time: each is scored and let go before the next is computed
            baseline = data.score(hr, bicubic(lr, factor), factor)
            srcnn = data.score(hr, torch.from_numpy(run_torch(model, lr, factor, tile)), factor)
            runtime_psnr = data.psnr_y(hr, torch.from_numpy(runner(lr.numpy(), factor, tile)), factor)
            rows.append(Row(name, factor, baseline, srcnn, runtime_psnr))
    return sorted(rows, key=lambda row: factors.index(row.factor))  # stable: images in order within a factor


def format_table(rows_by_model: dict[str, Sequence[Row]], per_image: bool, runtime: str = "ORT") -> str:
    """Mean scores per factor, bicubic then each model side by side (its PSNR, SSIM, gain over bicubic and worst
    image's gain), and the largest `runtime` - PyTorch PSNR difference of the row; with per_image, a row per image
    before each mean."""
    header = ["factor", "images", "bicubic PSNR", "SSIM"]
    for name in rows_by_model:
        header += [f"{name} PSNR", "SSIM", "gain", "worst gain"]
    header.append(f"max |{runtime} - PyTorch|")
    first = next(iter(rows_by_model.values()))
    table = []
    for factor in dict.fromkeys(r.factor for r in first):
        group = {name: [r for r in rows if r.factor == factor] for name, rows in rows_by_model.items()}
        images = [r.image for r in group[next(iter(group))]]
        labelled = [([image], image) for image in images] if per_image else []
        labelled.append((images, f"mean of {len(images)}" if per_image else str(len(images))))
        for chosen, label in labelled:
            members = {name: [r for r in rows if r.image in chosen] for name, rows in group.items()}
            some = next(iter(members.values()))
            line = [f"x{factor.tag}", label, f"{np.mean([r.bicubic.psnr for r in some]):.2f} dB",
                    f"{np.mean([r.bicubic.ssim for r in some]):.4f}"]
            for rows in members.values():
                worst = min(rows, key=lambda r: r.gain)
                line += [f"{np.mean([r.srcnn.psnr for r in rows]):.2f} dB",
                         f"{np.mean([r.srcnn.ssim for r in rows]):.4f}", f"{np.mean([r.gain for r in rows]):+.2f} dB",
                         f"{worst.gain:+.2f} dB" + (f" {worst.image}" if len(rows) > 1 else "")]
            line.append(f"{max(abs(r.runtime_psnr - r.srcnn.psnr) for rows in members.values() for r in rows):.3f} dB")
            table.append(line)
    return sd.render_table(header, table, left=2)


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    """Write `text` on a black band across the top of `tile`."""
    cv2.rectangle(tile, (0, 0), (tile.shape[1], 20), (0, 0, 0), thickness=-1)
    cv2.putText(tile, text, (5, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def _zoom(pixels: np.ndarray, box: tuple[slice, slice], zoom: int) -> np.ndarray:
    """The box of an (H, W, 3) image, enlarged `zoom` times with nearest-neighbour pixels (nothing smoothed)."""
    return cv2.resize(np.ascontiguousarray(pixels[box]), None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)


def face_figure(networks: dict[str, torch.nn.Module], path: Path) -> None:
    """Per factor of FIGURE_FACTORS: the face crop as input, bicubic, each model and the original with their Y-PSNR,
    and beneath them the eyes enlarged; the detail's box is outlined on the original."""
    face = torch.from_numpy(read_picture(sd.DEFAULT_IMAGE).rgb)
    rows = []
    for text in FIGURE_FACTORS:
        factor = sd.Factor.parse(text)
        lr, hr = data.make_pair(face, factor)
        with torch.inference_mode():
            results = {name: network(lr, factor.tensor()) for name, network in networks.items()}
        up = bicubic(lr, factor)
        nearest = torch.nn.functional.interpolate(lr, size=hr.shape[2:], mode="nearest")
        panels = [(nearest, f"input {lr.shape[3]}x{lr.shape[2]} (x{text})"),
                  (up, f"bicubic {data.psnr_y(hr, up, factor):.2f} dB"),
                  *((sr, f"{name} {data.psnr_y(hr, sr, factor):.2f} dB") for name, sr in results.items()),
                  (hr, "original")]
        crops, details = [], []
        for image, label in panels:
            pixels = sd.tensor_to_pixels(image.numpy())[:, :, ::-1]  # BGR, as OpenCV writes
            crops.append(_label(_zoom(pixels, FIGURE_CROP, FIGURE_ZOOM), label))
            details.append(_zoom(pixels, FIGURE_DETAIL, FIGURE_DETAIL_ZOOM))
        (top, bottom), (left, right) = ((FIGURE_ZOOM * (d.start - c.start), FIGURE_ZOOM * (d.stop - c.start))
                                        for d, c in zip(FIGURE_DETAIL, FIGURE_CROP, strict=True))
        cv2.rectangle(crops[-1], (left, top), (right - 1, bottom - 1), (255, 255, 255), 1)
        rows += [np.concatenate(crops, axis=1), np.concatenate(details, axis=1)]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, np.concatenate(rows, axis=0))
    log.info("wrote %s", path)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = sd.OneLineErrorParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=folder_arg, metavar="DIR",
                        help="folder of high-resolution images (default: the validation photos)")
    parser.add_argument("--factor", type=factor_arg, action="append", metavar="F",
                        help=f"repeatable (default: {', '.join(TABLE_FACTORS)})")
    parser.add_argument("--model", choices=MODELS, action="append",
                        help="repeatable; side by side in one table (default: every model: "
                        + ", ".join(MODELS) + ")")
    parser.add_argument("--weights", type=Path, metavar="PATH",
                        help="with one --model: these weights instead of its shipped ones")
    parser.add_argument("--runtime", choices=RUNTIMES, default=DEFAULT_RUNTIME,
                        help="what runs the exported graph beside PyTorch (default: %(default)s)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="of the runtime's convolutions; bf16 needs --runtime openvino and a CPU with AVX512-BF16"
                        " or AMX (default: %(default)s)")
    parser.add_argument("--per-image", action="store_true", help="a row per image as well as the means")
    parser.add_argument("--figure", type=Path, metavar="PATH", help="also draw the face figure (x3, x4) to PATH")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging, with tracebacks")
    args = parser.parse_args(argv)
    args.model = list(dict.fromkeys(args.model or MODELS))
    if args.weights is not None and len(args.model) != 1:
        parser.error(f"--weights {args.weights}: name the one --model they are for")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    log.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    return run_guarded(lambda: run(args))


def run(args: argparse.Namespace) -> int:
    """Check every path and number, evaluate, print the table; return the exit code."""
    factors = [tutorial_factor(f) for f in args.factor or map(sd.Factor.parse, TABLE_FACTORS)]
    runtime_class(args.runtime).check("cpu", args.precision)  # installed, and this CPU computes the precision
    paths = folder_images(args.images) if args.images else []
    if args.figure:
        inputs = [args.weights] if args.weights else [models.model_kind(name).weights_path for name in args.model]
        check_output_file(args.figure, "--figure", [*inputs, sd.DEFAULT_IMAGE, *paths])
        if args.figure.suffix.lower() not in IMAGE_SUFFIXES:
            raise sd.SrcnnError(f"--figure {args.figure}: give an image suffix ({', '.join(IMAGE_SUFFIXES)})")
    # wrong weights are named before any image is decoded
    networks = {name: load_model(args.weights, name) for name in args.model}
    validation = [] if args.images else load_images(None)

    def images() -> Images:  # a folder's are decoded as reached, once to check, once to measure: one in memory
        return read_images(paths) if args.images else validation

    check_images(images(), factors)  # every image large enough for every factor, before any work
    rows, soft_rows = {}, {}
    for name, network in networks.items():
        parts = graph_parts(export(args.weights, model_name=name))  # as python -m srcnn runs it
        runner = create_runner(parts, args.runtime, precision=args.precision)
        rows[name] = evaluate(network, runner, images(), factors)
        if not args.images:
            soft_rows[name] = evaluate(network, runner, soft_images(), factors)
    if args.figure:
        face_figure(networks, args.figure)
    label = runtime_class(args.runtime).tag + f" {args.precision}" * (args.precision != "fp32")
    print(format_table(rows, args.per_image, label))
    if soft_rows:
        print(f"\nsoft case: the same photos blurred by a {data.SOFT_SIGMA:g}-pixel Gaussian before degradation")
        print(format_table(soft_rows, args.per_image, label))
    every = [r for table in (rows, soft_rows) for model_rows in table.values() for r in model_rows]
    worst = max(every, key=lambda r: abs(r.runtime_psnr - r.srcnn.psnr))
    if abs(worst.runtime_psnr - worst.srcnn.psnr) > (tolerance := RUNTIME_PSNR_TOLERANCE[args.precision]):
        log.error("%s PSNR %.3f dB differs from PyTorch %.3f dB (by more than %g dB) on %s at x%s", label,
                  worst.runtime_psnr, worst.srcnn.psnr, tolerance, worst.image, worst.factor.tag)
        return sd.EXIT_MISMATCH
    return sd.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
