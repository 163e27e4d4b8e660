"""SRCNN with a runtime upscale factor: PyTorch -> ONNX -> ONNX Runtime, proven equal at unseen factors.

A modern reproduction of OpenMMLab mmdeploy's tutorial "solving the hard parts of model deployment": the factor is
a tensor input [1, 1, fh, fw] feeding one `Resize`, so the model, exported once at x3, runs at x4, x2.5 or 5x6. Two
exporters write that graph: torchscript (the tutorial's) through NewInterpolate.symbolic, dynamo through a custom op
and an onnxscript translation. Read top to bottom; the `srcnn` package builds the product on it.
"""

from __future__ import annotations

import argparse
import errno
import io
import logging
import math
import os
import signal
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

MAX_INPUT_PIXELS = 8192 * 8192  # no command here reads a larger image (factors >= 1, results stop at 8192^2)...
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_INPUT_PIXELS))  # ...and OpenCV refuses one by its header
import cv2  # noqa: E402 - OpenCV reads that limit when it loads
import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn
from torch.export import Dim

log = logging.getLogger("srcnn_dynamic")

# The Resize attributes that make ONNX Runtime compute exactly F.interpolate(mode="bicubic", align_corners=False):
RESIZE_MODE = "cubic"  # bicubic = cubic convolution along H, then along W
CUBIC_COEFF_A = -0.75  # PyTorch's upsample_bicubic2d uses Keys' kernel with A = -0.75 (OpenCV's value too)
COORDINATE_TRANSFORMATION_MODE = "pytorch_half_pixel"  # src = (dst + 0.5) / scale - 0.5, as align_corners=False
NEAREST_MODE = "floor"  # unused by cubic mode; set as the tutorial does so both exporters emit identical nodes
INPUT_NAMES = ("input", "factor")  # the image (N, 3, H, W) and the factor [1, 1, fh, fw]
OUTPUT_NAME = "output"  # (N, 3, floor(H * fh), floor(W * fw))
Exporter = Literal["torchscript", "dynamo"]
EXPORTERS: tuple[Exporter, ...] = ("torchscript", "dynamo")
MIN_OPSET: dict[Exporter, int] = {"torchscript": 11, "dynamo": 18}  # 11: Resize gets cubic_coeff_a; 18: dynamo's oldest
EXPORT_FACTOR = 3.0  # traced once at x3 (the tutorial's srcnn3.onnx); it must then work at any factor
EXPORT_SAMPLE_SIDE = 64  # the exporters trace on a 64x64 example: height and width are dynamic axes anyway
DEFAULT_IMAGE = Path(__file__).resolve().parent / "face.png"  # 256x256, from scikit-image's astronaut
DEFAULT_WEIGHTS = DEFAULT_IMAGE.parent / "weights" / "srcnn_dynamic.pth"  # made by train.py
DEFAULT_FACTORS = ("3", "4")  # x3 was seen at export, x4 was not: the point of the tutorial
MIN_FACTOR, MAX_FACTOR = 1.0, float(MAX_INPUT_PIXELS)  # upsampling; past MAX no output fits (and H*f stays finite)
MAX_OUTPUT_PIXELS = 4096 * 4096  # untiled, conv1 holds 64 float32 maps at output size: 4 GiB at this limit
MAX_OUTPUT_SIDE = 1_000_000  # libpng writes no longer side (the 4096^2 pixels could make a 1 x 16,777,216 strip)
SEED = 0  # the random initialisation when no weights file exists; training's patches follow it too
TIMING_RUNS = 3  # the table reports the median of this many runs (the first one included)
PARITY_ATOL = 1e-4  # ORT vs PyTorch on [0, 1]: sums in other orders; 40x below one 8-bit level (docs/testing.md)
CUDA_ALLOW_TF32 = False  # TF32 convolutions (10-bit mantissa) put the runtimes ~1e-3 apart: parity is float32
EXIT_OK, EXIT_MISMATCH, EXIT_USAGE, EXIT_CRASH, EXIT_INTERRUPTED = 0, 1, 2, 4, 130  # 130 = 128 + SIGINT

class SrcnnError(Exception):
    """A mistake the user can fix (bad factor, missing file, unavailable device): reported in one line."""

@dataclass(frozen=True)
class Factor:
    """An upscale factor for height and width; the model receives it as the tensor [1, 1, height, width]."""
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
    def tensor(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """The model's `factor` input: [1, 1, fh, fw] float32, shape (4,)."""
        return torch.tensor([1.0, 1.0, self.height, self.width], dtype=torch.float32, device=device)
    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """(floor(H * fh), floor(W * fw)), computed as the model computes it (resized_length)."""
        return resized_length(height, self.height), resized_length(width, self.width)

def resized_length(length: int, scale: float) -> int:
    """floor(length * scale) in float32 as ONNX Runtime rounds (float64: 10 x 1.3 = 12.9999995, not 13)."""
    return int(np.floor(np.float32(length) * np.float32(scale)))

# The resize: a custom op for torch.export, wrapped in NewInterpolate for the TorchScript exporter
@torch.library.custom_op("srcnn_dynamic::bicubic_resize", mutates_args=())
def bicubic_resize(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """F.interpolate(x, scale_factor=(fh, fw), mode="bicubic"), the size rounded as by ONNX Runtime."""
    # A custom op: torch.export keeps it as one opaque node (its output size depends on the factor's *values*).
    fh, fw = factor.tolist()[2:]
    size = [resized_length(x.shape[2], fh), resized_length(x.shape[3], fw)]
    return torch.ops.aten.upsample_bicubic2d.default(x, size, False, fh, fw)  # align_corners=False

@bicubic_resize.register_fake
def _bicubic_resize_fake(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    # The output height and width depend on the values in `factor`: new symbolic sizes, not functions of H, W.
    ctx = torch.library.get_ctx()
    return x.new_empty((x.shape[0], x.shape[1], ctx.new_dynamic_size(), ctx.new_dynamic_size()))

class NewInterpolate(torch.autograd.Function):
    """The tutorial's operator: bicubic upsampling whose scales are a graph input, not a constant."""

    @staticmethod
    def symbolic(g: torch.Graph, x: torch.Value, factor: torch.Value) -> torch.Value:
        # TorchScript exporter only. Resize-11 takes (X, roi, scales): roi, unused here, must be present (empty).
        empty_roi = g.op("Constant", value_t=torch.tensor([], dtype=torch.float32))
        return g.op("Resize", x, empty_roi, factor, coordinate_transformation_mode_s=COORDINATE_TRANSFORMATION_MODE,
                    cubic_coeff_a_f=CUBIC_COEFF_A, mode_s=RESIZE_MODE, nearest_mode_s=NEAREST_MODE)
    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
        return bicubic_resize(x, factor)

def _resize_onnxscript(x, factor):  # noqa: ANN001, ANN202 - onnxscript tensors, typed by the exporter
    """The dynamo exporter's translation of srcnn_dynamic::bicubic_resize: the same Resize node."""
    from onnxscript import opset18 as op
    return op.Resize(x, None, factor,  # roi: optional since opset 13
                     coordinate_transformation_mode=COORDINATE_TRANSFORMATION_MODE, cubic_coeff_a=CUBIC_COEFF_A,
                     mode=RESIZE_MODE, nearest_mode=NEAREST_MODE)

# The model
class SuperResolutionNet(nn.Module):
    """SRCNN 9-1-5 after bicubic upsampling, with the tutorial's layer names; RGB in [0, 1], output unclamped."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=9, padding=4)  # patch extraction; padding keeps the size
        self.conv2 = nn.Conv2d(64, 32, kernel_size=1, padding=0)  # non-linear mapping
        self.conv3 = nn.Conv2d(32, 3, kernel_size=5, padding=2)  # reconstruction
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
        return self.refine(self.upsample(x, factor))
    def upsample(self, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
        """Bicubic, with the factor a tensor: (N, 3, H, W) -> (N, 3, H', W')."""
        return NewInterpolate.apply(x, factor)
    def refine(self, x: torch.Tensor) -> torch.Tensor:
        """The three convolutions at the upsampled size: (N, 3, H', W') -> (N, 3, H', W')."""
        x = self.relu(self.conv1(x))  # (N, 64, H', W')
        x = self.relu(self.conv2(x))  # (N, 32, H', W')
        return self.conv3(x)

def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict, or an mmediting/mmagic checkpoint's, read with weights_only=True: no pickled code runs."""
    if not path.is_file():  # a FIFO or a device would block torch.load
        raise SrcnnError(f"weights file {path} is not a file" if path.exists() else f"weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, KeyError, EOFError, RuntimeError...: one line, naming the cause
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
        code = next((line.rstrip(".") for line in lines if "GLOBAL" in line), None)  # a class or a function: code
        detail = next((line for line in lines if line.startswith("Unsupported")), f"{type(exc).__name__}: {lines[0]}")
        raise SrcnnError(f"weights file {path} was refused: torch.load(weights_only=True) loads tensors only and never"
                         f" runs code from a file ({code}); save weights with torch.save(model.state_dict(), PATH)"
                         if code else f"weights file {path} is corrupt or not a PyTorch file ({detail})") from None
    obj = obj.get("state_dict", obj) if isinstance(obj, dict) else obj  # mmediting/mmagic checkpoints nest it
    if not isinstance(obj, dict) or not all(  # names -> dense float tensors, not sparse, meta, quantized, NaN or inf
            isinstance(k, str) and isinstance(v, torch.Tensor) and v.layout == torch.strided and not v.is_meta
            and v.is_floating_point() and bool(torch.isfinite(v.float()).all()) for k, v in obj.items()):  # as float32
        raise SrcnnError(f"weights file {path} does not hold a state dict (names -> float tensors finite in float32)")
    if len(state_dict := {k.removeprefix("generator."): v for k, v in obj.items()}) < len(obj):  # and prefix it
        raise SrcnnError(f"weights file {path} holds some tensors twice, with and without the prefix 'generator.'")
    return state_dict

def build_model(state_dict: dict[str, torch.Tensor] | None = None) -> SuperResolutionNet:
    """The model in eval mode on the CPU, with `state_dict` or, if None, a seeded random initialisation."""
    torch.manual_seed(SEED)
    model = SuperResolutionNet()
    if state_dict is None:
        log.warning("no weights (%s is missing, and no --weights given): using a random initialisation (seed %d);"
                    " the output is not super-resolved", DEFAULT_WEIGHTS.relative_to(DEFAULT_IMAGE.parent), SEED)
        return model.eval()
    try:
        model.load_state_dict(state_dict)  # strict: every name and shape must match
    except RuntimeError as exc:
        raise SrcnnError(f"the weights do not fit SuperResolutionNet: {' '.join(str(exc).split())}") from None
    return model.eval()

# Images and files: OpenCV holds BGR pixels (H, W, C); the model takes RGB float32 (1, 3, H, W) in [0, 1]
def decode_image(path: Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """A file's pixels as OpenCV decodes them with `flags` (by default 8-bit BGR, upright by EXIF)."""
    if not path.is_file():  # a FIFO or a device would block the read
        raise SrcnnError(f"{path} is not an image file" if path.exists() else f"image not found: {path}")
    try:  # mapped, not read: the decoder touches the picture's bytes alone (any file name), not what follows them
        pixels = cv2.imdecode(np.memmap(path, dtype=np.uint8, mode="r")[: 2**31 - 1], flags)  # OpenCV counts in int
    except OSError as exc:
        raise SrcnnError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (cv2.error, ValueError):  # ValueError: an empty file; cv2.error: a header over MAX_INPUT_PIXELS
        raise SrcnnError(f"cannot read {path} as an image: empty, or over {MAX_INPUT_PIXELS:,} pixels") from None
    if pixels is None:
        raise SrcnnError(f"cannot read {path} as an image (OpenCV could not decode it)")
    return pixels

def pixels_to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """(H, W, C) integers (8 or 16 bits), e.g. RGB -> (1, C, H, W) float32 in [0, 1]."""
    values = pixels.astype(np.float32) / np.iinfo(pixels.dtype).max
    return torch.from_numpy(np.ascontiguousarray(values.transpose(2, 0, 1)))[None]

def tensor_to_pixels(image: np.ndarray, dtype: type = np.uint8) -> np.ndarray:
    """(1, C, H, W) float, e.g. RGB -> (H, W, C) integers of `dtype`, clamped to [0, 1] and rounded."""
    return np.rint(np.clip(image[0].transpose(1, 2, 0), 0.0, 1.0) * np.iinfo(dtype).max).astype(dtype)

def write_file(path: Path, data: bytes) -> None:
    """Write `data` whole or not at all (no half file on a full disk; a link at `path` is replaced, never followed)."""
    tmp = path.with_name(f".srcnn_dynamic.{os.getpid()}.tmp")  # short: a result's name may be as long as allowed
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        raise SrcnnError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)

# Export
def check_opset(exporter: Exporter, opset: int | None) -> int:
    """`opset`, or the exporter's default when None; refused if the exporter cannot write it."""
    if opset is not None and opset < MIN_OPSET[exporter]:
        raise SrcnnError(f"--opset {opset}: the {exporter} exporter needs opset {MIN_OPSET[exporter]} or newer")
    return opset or MIN_OPSET[exporter]

def export_onnx(model: SuperResolutionNet, path: Path | None, *, exporter: Exporter = "torchscript",
                opset: int | None = None) -> onnx.ModelProto:
    """Export with dynamic N, H, W and a `factor` input; return the checked model, written whole to `path` if given."""
    opset, factor = check_opset(exporter, opset), Factor(EXPORT_FACTOR, EXPORT_FACTOR)  # before anything is written
    example = (torch.rand(1, 3, EXPORT_SAMPLE_SIDE, EXPORT_SAMPLE_SIDE), factor.tensor())  # traced with these
    log.info("exporting the model with the %s exporter (opset %d, traced at x%s)", exporter, opset, factor.tag)
    exported = io.BytesIO()  # the graph is checked in memory: no file is written until it passes
    try:
        with warnings.catch_warnings():
            # Expected chatter: TorchScript's deprecation, tracer notes (the factor stays an input), "no torchvision"
            logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
            warnings.simplefilter("ignore")  # the exporters' warnings only; their errors still raise
            if exporter == "torchscript":
                torch.onnx.export(
                    model, example, exported,
                    dynamo=False,  # the TorchScript exporter: honours NewInterpolate.symbolic
                    opset_version=opset,
                    input_names=list(INPUT_NAMES),  # name the graph inputs as the tutorial does
                    output_names=[OUTPUT_NAME],
                    dynamic_axes={INPUT_NAMES[0]: {0: "batch", 2: "height", 3: "width"},  # else fixed at the example's
                                  OUTPUT_NAME: {0: "batch", 2: "out_height", 3: "out_width"}},
                    do_constant_folding=True,  # fold the constant roi; the weights stay initializers
                )
                proto = onnx.load_from_string(exported.getvalue())
            else:
                proto = torch.onnx.export(
                    model, example,
                    dynamo=True,  # the torch.export-based exporter, PyTorch's default
                    opset_version=opset,
                    input_names=list(INPUT_NAMES), output_names=[OUTPUT_NAME],  # as the TorchScript export
                    dynamic_shapes={"x": {0: Dim("batch"), 2: Dim("height"), 3: Dim("width")}, "factor": None},
                    custom_translation_table={torch.ops.srcnn_dynamic.bicubic_resize.default: _resize_onnxscript},
                ).model_proto
                for dim, name in zip(proto.graph.output[0].type.tensor_type.shape.dim[2:], ("out_height", "out_width")):
                    dim.dim_param = name  # the new symbols "u0", "u1", named as the TorchScript export names them
    except Exception as exc:  # an exporter failure in one line; --verbose logs the traceback
        log.debug("export failed", exc_info=True)
        reason = (str(exc).strip() or repr(exc)).splitlines()[0]
        raise SrcnnError(f"{exporter} export at opset {opset} failed: {reason}") from None
    onnx.checker.check_model(proto, full_check=True)  # structure, types and shape inference
    if problems := graph_problems(proto):
        raise SrcnnError(f"the exported graph is not dynamic in the factor: {'; '.join(problems)}")
    if path is not None:
        write_file(path, proto.SerializeToString())  # a small model: the weights stay inside the one file
    return proto

def graph_problems(proto: onnx.ModelProto) -> list[str]:
    """How the graph differs from the tutorial's: inputs `input` and `factor`, one Resize scaled by `factor`."""
    inputs, outputs = [i.name for i in proto.graph.input], [o.name for o in proto.graph.output]
    resizes = [n for n in proto.graph.node if n.op_type == "Resize"]
    problems = [f"inputs are {inputs}, expected {list(INPUT_NAMES)}"] if inputs != list(INPUT_NAMES) else []
    problems += [f"outputs are {outputs}, expected {[OUTPUT_NAME]}"] if outputs != [OUTPUT_NAME] else []
    if len(resizes) != 1 or resizes[0].input[2:3] != [INPUT_NAMES[1]]:
        problems.append(f"expected one Resize whose scales input is {INPUT_NAMES[1]!r}")
    return problems

# ONNX Runtime, and the PyTorch reference
Device = Literal["cpu", "cuda"]
CUDA_PROVIDER, CPU_PROVIDER = "CUDAExecutionProvider", "CPUExecutionProvider"
GPU_INSTALL_HINT = "in a separate virtual environment: pip install -r requirements-gpu.txt"

def check_device(device: Device) -> None:
    """Fail early, in one line, when CUDA is asked for but PyTorch or ONNX Runtime cannot use it."""
    if device == "cuda" and CUDA_PROVIDER not in (have := ort.get_available_providers()):
        raise SrcnnError(f"--device cuda: this onnxruntime has no {CUDA_PROVIDER} (it has {', '.join(have)});"
                         f" install onnxruntime-gpu {GPU_INSTALL_HINT}")
    if device == "cuda" and not torch.cuda.is_available():
        raise SrcnnError(f"--device cuda: PyTorch {torch.__version__} sees no CUDA GPU; {GPU_INSTALL_HINT}")

def create_session(model: Path | onnx.ModelProto, device: Device = "cpu", threads: int = 0) -> ort.InferenceSession:
    """An ONNX Runtime session on exactly `device` (never a silent fallback) with `threads` intra-op threads."""
    check_device(device)
    options = ort.SessionOptions()
    # The default, stated because it matters: ENABLE_ALL's NCHWc layout makes the convolutions fast (docs/speed.md).
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads  # 0: ONNX Runtime's choice, one per physical core
    wanted = CUDA_PROVIDER if device == "cuda" else CPU_PROVIDER
    providers = [(CUDA_PROVIDER, {"use_tf32": int(CUDA_ALLOW_TF32)})] if device == "cuda" else [CPU_PROVIDER]
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    session = ort.InferenceSession(source, options, providers=providers)  # may quietly fall back to the CPU...
    if session.get_providers()[0] != wanted:  # ...e.g. when the CUDA libraries fail to load: refuse
        raise SrcnnError(f"--device {device}: ONNX Runtime created the session with {session.get_providers()}, not"
                         f" {wanted} (are the CUDA and cuDNN libraries installed? {GPU_INSTALL_HINT})")
    return session

def run_session(session: ort.InferenceSession, image: np.ndarray, factor: Factor) -> np.ndarray:
    """(N, 3, H, W) float32 -> the first output: (N, 3, floor(H*fh), floor(W*fw)) for the whole model."""
    feeds = {INPUT_NAMES[0]: np.ascontiguousarray(image, dtype=np.float32), INPUT_NAMES[1]: factor.tensor().numpy()}
    return session.run(None, feeds)[0]

def run_torch(model: SuperResolutionNet, image: torch.Tensor, factor: Factor) -> np.ndarray:
    """The PyTorch reference on the model's device, in float32 (TF32 off on CUDA: CUDA_ALLOW_TF32)."""
    with torch.inference_mode(), torch.backends.cudnn.flags(enabled=True, allow_tf32=CUDA_ALLOW_TF32):
        device = model.conv1.weight.device
        return model(image.to(device), factor.tensor(device)).cpu().numpy()

def timed(fn: Callable[[], Any], runs: int = TIMING_RUNS) -> tuple[Any, float]:
    """`fn`'s last result and the median wall time (ms) of `runs` runs, the first one included."""
    times, result = [], None
    for _ in range(runs):
        result, start = None, time.perf_counter()  # the previous result goes first: memory stays one result's
        result = fn()
        times.append((time.perf_counter() - start) * 1e3)
    return result, float(np.median(times))

def psnr(reference: np.ndarray, test: np.ndarray, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB on the [0, peak] scale; inf for identical arrays."""
    difference = np.subtract(reference, test, dtype=np.float64)  # one float64 array: memory stays one image's
    mse = float(np.vdot(difference, difference)) / difference.size
    return math.inf if mse == 0.0 else 10.0 * math.log10(peak**2 / mse)

TABLE_HEADER = ("factor", "output (HxW)", "max |ORT-PyTorch|", "PSNR ORT vs PyTorch", "PyTorch ms", "ORT ms", "")

def compare(factor: Factor, torch_out: np.ndarray, ort_out: np.ndarray, torch_ms: float, ort_ms: float
            ) -> tuple[bool, list[str]]:
    """Whether ONNX Runtime's result is PyTorch's within PARITY_ATOL, and the table's row of their figures."""
    assert torch_out.shape == ort_out.shape, f"x{factor.tag}: {torch_out.shape} vs {ort_out.shape}"
    diff = float(np.max(np.abs(torch_out - ort_out)))
    return diff <= PARITY_ATOL, [f"x{factor.tag}", "{}x{}".format(*ort_out.shape[2:]), f"{diff:.2e}",
                                 f"{psnr(torch_out, ort_out):.1f} dB", f"{torch_ms:.1f}", f"{ort_ms:.1f}",
                                 "ok" if diff <= PARITY_ATOL else f"FAIL (> {PARITY_ATOL:g})"]

def render_table(header: Sequence[str], rows: Iterable[Sequence[str]], left: int = 1) -> str:
    """A plain-text table: the first `left` columns left-aligned, the rest right-aligned, a rule under the header."""
    lines = [list(header), *map(list, rows)]
    widths = [max(map(len, column)) for column in zip(*lines, strict=True)]
    lines.insert(1, ["-" * w for w in widths])
    return "\n".join("  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in
                               enumerate(zip(line, widths, strict=True))).rstrip() for line in lines)

# main(): the tutorial's demo
def check_output_size(size: tuple[int, int], factor: Factor) -> None:
    """Refuse a factor whose output would not fit in memory (MAX_OUTPUT_PIXELS) or in a PNG file (MAX_OUTPUT_SIDE)."""
    (height, width), (out_h, out_w) = size, factor.output_size(*size)
    if over := (f"{MAX_OUTPUT_PIXELS:,} output pixels" if out_h * out_w > MAX_OUTPUT_PIXELS else
                f"{MAX_OUTPUT_SIDE:,} pixels a side" if max(out_h, out_w) > MAX_OUTPUT_SIDE else ""):
        raise SrcnnError(f"factor {factor.tag} turns {height}x{width} into {out_h}x{out_w}, over the limit of {over};"
                         " use a smaller factor or image, or python -m srcnn")

def check_outputs(outputs: Sequence[Path], inputs: Sequence[Path]) -> None:
    """Before any work: each result's name new, fitting the file system; their folder made and proven to take a file."""
    folder, inputs = outputs[0].parent, {os.path.realpath(p) for p in inputs}  # a link to an input is the input
    if not (existing := next(p for p in (folder, *folder.parents) if p.exists() or p == p.parent)).is_dir():
        raise SrcnnError(f"output folder {folder}: {existing} is not a folder")
    for path in outputs:  # factors 1 and 1.0000001 would both write face_ort_1.png
        if outputs.count(path) > 1 or os.path.realpath(path) in inputs or path.is_dir():
            raise SrcnnError(f"{path} would be written twice, or is an input or a folder: change --factor or"
                             " --output-dir")
        if len(os.fsencode(path.name)) > os.pathconf(existing, "PC_NAME_MAX"):
            raise SrcnnError(f"the result name {path.name} is longer than the file system allows: rename the image")
    try:  # os.access cannot tell: it says yes to root
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()  # made and gone: a read-only disk, a quota, no permission
    except OSError as exc:
        raise SrcnnError(f"output folder {folder} is not writable ({exc.strerror or exc})") from None

class OneLineErrorParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line and exit with EXIT_USAGE, like every other error here."""
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"error: {message} (see --help)\n")

def main(argv: Sequence[str] | None = None) -> int:
    """The demo: PyTorch at each factor, one export at x3, ONNX Runtime at each factor, compared and written."""
    parser = OneLineErrorParser(description=f"{__doc__.splitlines()[0]} Folders, formats, tiles: python -m srcnn.")
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE, metavar="FILE", help="(default: face.png)")
    parser.add_argument("--factor", action="append", metavar="F", help="repeatable: 3, 2.5 or 5x6 (default: 3 and 4)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="cuda needs requirements-gpu.txt")
    parser.add_argument("--exporter", choices=EXPORTERS, default="torchscript", help="the tutorial's or torch.export's")
    parser.add_argument("--opset", type=int, metavar="N", help="(default: the oldest the exporter writes, MIN_OPSET)")
    parser.add_argument("--weights", type=Path, metavar="PATH", help="(default: weights/srcnn_dynamic.pth, if present)")
    parser.add_argument("--output-dir", type=Path, default=Path("outputs"), metavar="DIR", help="(default: outputs)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging, with exporter tracebacks")
    args = parser.parse_args(argv)
    weights = args.weights or (DEFAULT_WEIGHTS if DEFAULT_WEIGHTS.is_file() else None)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    log.setLevel(logging.DEBUG if args.verbose else logging.INFO)  # ours at INFO, other libraries' at WARNING
    onnx_path = args.output_dir / f"srcnn{EXPORT_FACTOR:g}.onnx"
    try:
        factors = [Factor.parse(text) for text in args.factor or DEFAULT_FACTORS]
        check_device(args.device)  # every check a user can fail comes first: a mistake costs no time, writes nothing
        check_opset(args.exporter, args.opset)
        image = pixels_to_tensor(decode_image(args.image)[:, :, ::-1])  # (1, 3, H, W) RGB; grey as 3 channels
        for factor in factors:
            check_output_size(image.shape[2:], factor)
        results = {(f, runtime): args.output_dir / f"{args.image.stem}_{runtime}_{f.tag}.png"  # face_ort_3.png
                   for f in factors for runtime in ("torch", "ort")}
        model = build_model(load_state_dict(weights) if weights else None)
        check_outputs([onnx_path, *results.values()], [p for p in (args.image, weights) if p])  # the folder last
        export_onnx(model, onnx_path, exporter=args.exporter, opset=args.opset)  # checks the opset before writing
        session = create_session(onnx_path, args.device)  # the graph exactly as exported
        log.info("wrote %s; ONNX Runtime %s on %s", onnx_path, ort.__version__, session.get_providers()[0])
        rows = []
        for factor in factors:
            torch_out, torch_ms = timed(partial(run_torch, model.to(args.device), image, factor))
            ort_out, ort_ms = timed(partial(run_session, session, image.numpy(), factor))
            for runtime, out in (("torch", torch_out), ("ort", ort_out)):
                png = cv2.imencode(".png", tensor_to_pixels(out)[:, :, ::-1])[1]  # RGB -> OpenCV's BGR, encoded
                write_file(results[factor, runtime], png.tobytes())  # by OpenCV, written by Python: any name
            rows.append(compare(factor, torch_out, ort_out, torch_ms, ort_ms))
        print(render_table(TABLE_HEADER, [row for _, row in rows]), flush=True)  # stdout may fail (a full disk) too
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # one line, never a traceback: a mistake (exit 2) or a crash (exit 4; -v logs it)
        log.debug("the traceback:", exc_info=exc)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # what stdout still buffers goes nowhere at exit
        mistake = isinstance(exc, SrcnnError) or getattr(exc, "errno", None) in (errno.ENAMETOOLONG, errno.ENOSPC)
        print(f"error: {exc}" if mistake else f"error: {exc!r} (-v: traceback)", file=sys.stderr)
        return EXIT_USAGE if mistake else EXIT_CRASH
    if bad := [row for ok, row in rows if not ok]:
        log.error("ONNX Runtime differs from PyTorch by %s at %s", bad[0][2], bad[0][0])
    return EXIT_MISMATCH if bad else EXIT_OK

if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `python srcnn_dynamic.py | head -1` ends quietly
    sys.exit(main())
