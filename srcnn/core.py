"""The product's torch-free facts: the factor, the graph's names and Resize attributes, limits, exit codes, errors.

The tutorial (srcnn_dynamic.py) states these facts for itself: it is one file a learner reads, and it imports
torch. The product runs without PyTorch (deploying means a runtime on a saved graph), so it cannot import the
tutorial on its inference path; it states them here, and tests/test_core.py proves each one equal to the
tutorial's, so that neither can drift.
"""

from __future__ import annotations

import argparse
import math
import os
import struct
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

# The Resize attributes that make ONNX Runtime compute PyTorch's bicubic (srcnn_dynamic.py explains each).
RESIZE_MODE = "cubic"
CUBIC_COEFF_A = -0.75
COORDINATE_TRANSFORMATION_MODE = "pytorch_half_pixel"
INPUT_NAMES = ("input", "factor")  # the image (N, 3, H, W) and the factor [1, 1, fh, fw]
OUTPUT_NAME = "output"  # (N, 3, floor(H * fh), floor(W * fw))
EXPORTERS = ("torchscript", "dynamo")
MIN_OPSET = {"torchscript": 11, "dynamo": 18}  # 11: Resize gets cubic_coeff_a; 18: dynamo's oldest
Device = Literal["cpu", "cuda"]  # where ONNX Runtime (and, under --check, PyTorch) runs
DEVICES: tuple[Device, ...] = ("cpu", "cuda")
# How ONNX Runtime computes the bicubic Resize (srcnn.runtime): rewritten as matrix products or gathers, or as is.
OrtResize = Literal["auto", "matmul", "gather", "resize"]
ORT_RESIZES: tuple[OrtResize, ...] = ("auto", "matmul", "gather", "resize")
EXPORT_FACTOR = 3.0  # the tutorial's srcnn3.onnx is traced at x3
PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_IMAGE = PROJECT_ROOT / "face.png"  # 256x256, from scikit-image's astronaut
DEFAULT_WEIGHTS = PROJECT_ROOT / "weights" / "srcnn_dynamic.pth"  # made by train.py
DEFAULT_FACTORS = ("3", "4")
MAX_INPUT_PIXELS = 8192 * 8192  # no command here reads a larger image (OpenCV refuses one by its header)
MIN_FACTOR, MAX_FACTOR = 1.0, float(MAX_INPUT_PIXELS)  # upsampling; past MAX no output fits (and H*f stays finite)
MAX_OUTPUT_PIXELS = 4096 * 4096  # untiled, conv1 holds 64 float32 maps at output size: 4 GiB at this limit
MAX_OUTPUT_SIDE = 1_000_000  # libpng writes no longer side (the 4096^2 pixels could make a 1 x 16,777,216 strip)
TIMING_RUNS = 3  # --check reports the median of this many runs for one image (the first one included)
PARITY_ATOL = 1e-4  # ORT vs PyTorch on [0, 1]: sums in other orders; 40x below one 8-bit level (docs/testing.md)
Precision = Literal["fp32", "bf16"]  # of the convolutions: the upsampling's weights and indices stay float32 always
PRECISIONS: tuple[Precision, ...] = ("fp32", "bf16")
# bf16's parity budget is a PSNR against float32's result, not PARITY_ATOL (its 8-bit significand rounds each weight
# and activation by up to 0.4 %): the noise that costs at most BF16_GAIN_LOSS_DB of the gain over bicubic for
# results BF16_RESULT_PSNR_DB from the truth (the held-out photos at x2, the sharpest case) is 53.4 dB below them
BF16_GAIN_LOSS_DB, BF16_RESULT_PSNR_DB = 0.05, 34.0
BF16_MIN_PSNR_DB = -10 * math.log10(10 ** (-BF16_RESULT_PSNR_DB / 10) * (10 ** (BF16_GAIN_LOSS_DB / 10) - 1))
EXIT_OK, EXIT_MISMATCH, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130  # 130 = 128 + SIGINT
EXIT_SKIPPED = 3  # --image DIR: some images could not be processed (each named); the others were
EXIT_CRASH = 4  # neither a mistake in the command nor a parity failure: a bug, out of memory, a failing disk
MAX_WEIGHTS_BYTES = 16 * 2**20  # the model's tensors take 80 KB; a checkpoint with training state, a few MB

os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_INPUT_PIXELS))  # read by OpenCV when it loads
os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")  # its [ WARN ] lines on a broken file would break the one line


class SrcnnError(Exception):
    """A mistake the user can fix (bad factor, missing file, unavailable device): reported in one line."""


def float32(value: float) -> float:
    """`value` rounded to the nearest float32, as a Python float (inf beyond float32's range)."""
    try:
        return struct.unpack("f", struct.pack("f", value))[0]
    except OverflowError:  # struct refuses to round past float32's largest value; float32 arithmetic gives inf
        return math.copysign(math.inf, value)


def resized_length(length: int, scale: float) -> int:
    """floor(length * scale) in float32 as ONNX Runtime rounds (float64: 10 x 1.3 = 12.9999995, not 13).

    Both operands are float32 values (24-bit significands), so their product is exact in float64 and rounding it
    once to float32 gives what float32 multiplication gives.
    """
    return int(math.floor(float32(float32(length) * float32(scale))))


@dataclass(frozen=True)
class Factor:
    """An upscale factor for height and width; the graph receives it as [1, 1, height, width] float32."""

    height: float
    width: float

    @classmethod
    def parse(cls, text: str) -> Factor:
        """'3' -> 3x3, '2.5' -> 2.5x2.5, '5x6' -> height 5, width 6; each from MIN_FACTOR to MAX_FACTOR."""
        try:
            values = [float(p) for p in text.strip().lower().split("x")]
        except ValueError:
            values = []
        if not 1 <= len(values) <= 2:
            raise SrcnnError(f"factor {text!r}: expected a number such as 3 or 2.5, or HEIGHTxWIDTH such as 5x6")
        if not all(MIN_FACTOR <= v <= MAX_FACTOR for v in values):  # NaN fails both comparisons
            raise SrcnnError(f"factor {text!r}: must be a finite number >= {MIN_FACTOR:g} and <= {MAX_FACTOR:.0f}")
        return cls(values[0], values[-1])

    @property
    def tag(self) -> str:
        """Short name used in file names: '3', '2.5' or '5x6'."""
        return f"{self.height:g}" if self.height == self.width else f"{self.height:g}x{self.width:g}"

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """(floor(H * fh), floor(W * fw)), computed as the model computes it (resized_length)."""
        return resized_length(height, self.height), resized_length(width, self.width)


def within_budget(precision: Precision, max_abs_diff: float, psnr_db: float) -> bool:
    """Whether a result is close enough to PyTorch's float32 one: PARITY_ATOL in fp32, BF16_MIN_PSNR_DB in bf16."""
    return max_abs_diff <= PARITY_ATOL if precision == "fp32" else psnr_db >= BF16_MIN_PSNR_DB


def budget_text(precision: Precision) -> str:
    """The budget in words, for tables and errors."""
    return f"max |diff| <= {PARITY_ATOL:g}" if precision == "fp32" else f"PSNR >= {BF16_MIN_PSNR_DB:.1f} dB"


def real_path(path: Path) -> Path:
    """The file `path` names, links followed: os.path.realpath, which a link loop does not stop (Path.resolve
    raises RuntimeError on one); comparing real paths is how a run knows it would write over an input."""
    return Path(os.path.realpath(path))


def check_opset(exporter: str, opset: int | None) -> int:
    """`opset`, or the exporter's default when None; refused if the exporter cannot write it."""
    if opset is not None and opset < MIN_OPSET[exporter]:
        raise SrcnnError(f"--opset {opset}: the {exporter} exporter needs opset {MIN_OPSET[exporter]} or newer")
    return opset or MIN_OPSET[exporter]


def check_weights_size(path: Path) -> None:
    """Refuse, before loading, a weights file that holds or declares (in its zip directory) far more than the model."""
    if not path.is_file():
        return  # the loader names a missing or special file
    declared = path.stat().st_size
    try:
        if zipfile.is_zipfile(path):  # torch.save's format: the directory declares each record's unpacked size
            with zipfile.ZipFile(path) as archive:
                declared = max(declared, sum(info.file_size for info in archive.infolist()))
    except (zipfile.BadZipFile, OSError):
        pass  # torch.load reports a damaged file in its own words
    if declared > MAX_WEIGHTS_BYTES:
        raise SrcnnError(f"weights file {path} holds {declared:,} bytes, over the limit of {MAX_WEIGHTS_BYTES:,}"
                         " (SuperResolutionNet's weights take about 80 KB)")


def check_output_size(size: tuple[int, int], factor: Factor, limit: int = MAX_OUTPUT_PIXELS, advice: str = "") -> None:
    """Refuse a factor whose output would not fit in memory (over `limit` pixels) or in a PNG file."""
    (height, width), (out_h, out_w) = size, factor.output_size(*size)
    if out_h * out_w > limit or max(out_h, out_w) > MAX_OUTPUT_SIDE:
        over = f"{limit:,} output pixels" if out_h * out_w > limit else f"{MAX_OUTPUT_SIDE:,} pixels a side"
        raise SrcnnError(f"factor {factor.tag} turns {height}x{width} into {out_h}x{out_w}, over the limit of"
                         f" {over}{advice}")


def check_output_dir(output_dir: Path) -> None:
    """Refuse, without creating anything, an `output_dir` under a file or a folder that does not allow writing.

    A quick first check while planning; make_output_dir, the last check before any work, proves it."""
    existing = next(p for p in (output_dir, *output_dir.parents) if p.exists() or p == p.parent)
    if not existing.is_dir():
        raise SrcnnError(f"output folder {output_dir}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise SrcnnError(f"output folder {output_dir} is not writable ({existing} does not allow writing)")


def make_output_dir(output_dir: Path) -> None:
    """Create `output_dir` and prove it takes a file, before any work (os.access cannot: it says yes to root)."""
    existing = next(p for p in (output_dir, *output_dir.parents) if p.exists() or p == p.parent)
    if not existing.is_dir():
        raise SrcnnError(f"output folder {output_dir}: {existing} is not a folder")
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=output_dir).close()  # made and gone: a read-only disk, a quota, no permission
    except OSError as exc:
        raise SrcnnError(f"output folder {output_dir} is not writable ({exc.strerror or exc})") from None


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line and exit with EXIT_USAGE, like every other error here."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"error: {message} (see --help)\n")

