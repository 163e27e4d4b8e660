"""SRCNN with a runtime upscale factor: PyTorch -> ONNX -> ONNX Runtime, proven equal at unseen factors.

A modern, working reproduction of OpenMMLab mmdeploy's tutorial "solving the hard parts of model deployment"
(chapter 2, https://github.com/open-mmlab/mmdeploy/blob/main/docs/en/tutorial/02_challenges.md).

The super-resolution network upsamples with bicubic interpolation and then refines with three convolutions.
The upscale factor is a *tensor input* `factor` = [1, 1, fh, fw], so the exported ONNX graph has two inputs,
`input` and `factor`, and one `Resize` whose scales come straight from `factor`: the model is exported once
(traced at x3) and runs at x4, x2.5 or 5x6 without re-exporting.

Two exporters are supported:
  * torchscript  torch.onnx.export(..., dynamo=False): the tutorial's method. `NewInterpolate.symbolic` tells
                 it to emit `Resize(input, roi, scales=factor)`.
  * dynamo       the torch.export-based exporter, the default since PyTorch 2.9, which ignores `symbolic`.
                 `NewInterpolate.forward` calls the custom op `srcnn_dynamic::bicubic_resize`, whose fake
                 implementation returns fresh dynamic sizes, and a `custom_translation_table` entry turns it
                 into the same `Resize` written in onnxscript.

For speed, ONNX Runtime sessions run the graph with its cubic Resize rewritten in memory as two matrix
products built from `factor` (resize_as_matmul; the .onnx file keeps the tutorial's Resize), and outputs over
1024x1024 pixels are refined in tiles that give the untiled result (tile_boxes), in both runtimes.

Pipeline, top to bottom: constants, factor parsing, the resize op and NewInterpolate, the model, weights,
image I/O, export, the Resize-as-matmul rewrite, ONNX Runtime sessions, tiled inference, comparison, main().
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import math
import os
import pickle
import statistics
import secrets
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn
from tqdm import tqdm

log = logging.getLogger("srcnn_dynamic")

# ----------------------------------------------------------------------------------------------------------------
# Constants

# ONNX Resize attributes that make ONNX Runtime compute exactly PyTorch's F.interpolate(mode="bicubic",
# align_corners=False) with scale_factor given:
RESIZE_MODE = "cubic"  # bicubic = cubic convolution along H, then along W
CUBIC_COEFF_A = -0.75  # PyTorch's upsample_bicubic2d uses Keys' kernel with A = -0.75 (OpenCV's value too)
COORDINATE_TRANSFORMATION_MODE = "pytorch_half_pixel"  # src = (dst + 0.5) / scale - 0.5, as align_corners=False
#                                                        does, and 0 for a length-1 output as PyTorch does
NEAREST_MODE = "floor"  # unused by cubic mode; set as in the tutorial so both exporters emit identical nodes

INPUT_NAMES = ("input", "factor")  # graph inputs: the image (N, 3, H, W) and the factor [1, 1, fh, fw]
OUTPUT_NAME = "output"  # graph output: (N, 3, floor(H * fh), floor(W * fw))

Exporter = Literal["torchscript", "dynamo"]
EXPORTERS: tuple[Exporter, ...] = ("torchscript", "dynamo")
MIN_OPSET: dict[Exporter, int] = {
    "torchscript": 11,  # the tutorial's opset: the first whose Resize has cubic_coeff_a and pytorch_half_pixel
    "dynamo": 18,  # the torch.export-based exporter translates to opset 18 and newer only
}
EXPORT_FACTOR = 3.0  # the model is traced once at x3 (the tutorial's srcnn3.onnx) and must work at any factor
EXPORT_SAMPLE_SIDE = 64  # the export traces on at most this corner of the image: any size gives the same graph

DEFAULT_IMAGE = Path(__file__).resolve().parent / "face.png"  # 256x256, cut from scikit-image's astronaut
DEFAULT_FACTORS = ("3", "4")  # x3 was seen at export, x4 was not: the point of the tutorial
MIN_FACTOR = 1.0  # a super-resolution model upsamples; factors below 1 would shrink the image
MAX_OUTPUT_PIXELS = 4096 * 4096  # untiled (--tile 0), conv1 holds 64 float32 channels at output size: 4 GiB here
MAX_TILED_OUTPUT_PIXELS = 8192 * 8192  # tiled, memory goes to 3-channel float images: 805 MB each at this limit

# ONNX Runtime vs PyTorch, float32 on the [0, 1] scale. Both compute the same bicubic weights and convolutions
# but sum in different orders (different kernels, blocking and threads); measured on CPU: <= 2e-6 with random
# weights, <= 2e-5 with the shipped ones (the pass-through channels carry values near 1, so rounding errors are
# larger). 1e-4 leaves room for other CPUs while staying 40x below one 8-bit grey level (1/255 = 3.9e-3).
PARITY_ATOL = 1e-4
# On CUDA, TF32 convolutions (10-bit mantissa) would put PyTorch and ONNX Runtime ~1e-3 apart; parity is
# checked in full float32, so TF32 is switched off in both runtimes.
CUDA_ALLOW_TF32 = False

DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "srcnn_dynamic.pth"  # made by train.py
SEED = 0  # the random initialisation used when no weights file exists
TIMING_RUNS = 3  # the table reports the median of this many runs (the first one included)

EXIT_OK = 0  # every result written, ONNX Runtime equal to PyTorch
EXIT_MISMATCH = 1  # ONNX Runtime and PyTorch differ by more than PARITY_ATOL
EXIT_USAGE = 2  # a mistake in the command or its files (one line on stderr), or an unavailable device
EXIT_SKIPPED = 3  # --image DIR: some images could not be processed (each named); the others were
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT (128 + 2); no partial file is left


class SrcnnError(Exception):
    """A mistake the user can fix (bad factor, missing file, unavailable device): reported in one line."""


# ----------------------------------------------------------------------------------------------------------------
# The upscale factor


@dataclass(frozen=True)
class Factor:
    """An upscale factor for height and width; the model receives it as the tensor [1, 1, height, width]."""

    height: float
    width: float

    @classmethod
    def parse(cls, text: str) -> Factor:
        """'3' -> 3x3, '2.5' -> 2.5x2.5, '5x6' -> height 5, width 6. Every factor must be finite and >= 1."""
        parts = text.strip().lower().split("x")
        if len(parts) not in (1, 2):
            raise SrcnnError(f"factor {text!r}: expected a number such as 3 or 2.5, or HEIGHTxWIDTH such as 5x6")
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise SrcnnError(
                f"factor {text!r}: expected a number such as 3 or 2.5, or HEIGHTxWIDTH such as 5x6"
            ) from None
        for value in values:
            if not math.isfinite(value) or value < MIN_FACTOR:
                raise SrcnnError(f"factor {text!r}: each factor must be a finite number >= {MIN_FACTOR:g}")
        height, width = values if len(values) == 2 else values * 2
        return cls(height, width)

    @property
    def tag(self) -> str:
        """Short name used in file names: '3', '2.5' or '5x6'."""
        if self.height == self.width:
            return f"{self.height:g}"
        return f"{self.height:g}x{self.width:g}"

    def tensor(self, device: torch.device | str = "cpu") -> torch.Tensor:
        return torch.tensor([1.0, 1.0, self.height, self.width], dtype=torch.float32, device=device)  # (4,)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """(floor(H * fh), floor(W * fw)), computed as the model computes it: see resized_length()."""
        return resized_length(height, self.height), resized_length(width, self.width)


def resized_length(length: int, scale: float) -> int:
    """floor(length * scale) in float32 arithmetic, exactly as ONNX Runtime's Resize computes output sizes.

    F.interpolate computes the product in float64 instead, and the two disagree by one pixel for some
    non-integer factors: 10 px x 1.3 is 12.9999995 in float64 (12 px) but rounds to 13.0 in float32 (13 px).
    The model follows ONNX Runtime, so PyTorch and the exported graph always agree on the output size.
    """
    return int(np.floor(np.float32(length) * np.float32(scale)))


def resize_keeps_the_size(height: int, width: int, factor: Factor) -> bool:
    """True when a factor other than 1x1 leaves the image's size unchanged (floor(L * f) == L on both axes).

    ONNX Runtime's Resize (1.32) then returns its input unchanged instead of sampling at (x + 0.5) / f - 0.5 as
    the ONNX spec and PyTorch do, so the graph *as exported* differs from PyTorch; the default matmul rewrite
    (resize_as_matmul) follows the spec. It needs f < 1 + 1/L on both axes: tiny images or factors very near 1.
    """
    return factor.output_size(height, width) == (height, width) and (factor.height, factor.width) != (1.0, 1.0)


# ----------------------------------------------------------------------------------------------------------------
# The resize: a custom op for torch.export, wrapped in NewInterpolate for the TorchScript exporter


@torch.library.custom_op("srcnn_dynamic::bicubic_resize", mutates_args=())
def bicubic_resize(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Bicubic upsampling of x (N, C, H, W) by factor [1, 1, fh, fw]: (N, C, floor(H*fh), floor(W*fw)).

    A custom op, so that torch.export keeps it as one opaque node (the factor's values decide the output size,
    which torch.export cannot trace through) and the ONNX exporter can translate it to Resize.

    This is F.interpolate(x, scale_factor=(fh, fw), mode="bicubic", align_corners=False), except that the output
    size is rounded as ONNX Runtime rounds it (resized_length); the sampling positions still come from the
    scales, (dst + 0.5) / scale - 0.5, as in both F.interpolate and ONNX Resize with the factor as scales.
    """
    fh, fw = factor.tolist()[2:]
    size = [resized_length(x.shape[2], fh), resized_length(x.shape[3], fw)]
    return torch.ops.aten.upsample_bicubic2d.default(x, size, False, fh, fw)  # align_corners=False


@bicubic_resize.register_fake
def _bicubic_resize_fake(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    # The output height and width depend on the *values* in `factor`: new symbolic sizes, not functions of H, W.
    ctx = torch.library.get_ctx()
    out_height, out_width = ctx.new_dynamic_size(), ctx.new_dynamic_size()
    return x.new_empty((x.shape[0], x.shape[1], out_height, out_width))


class NewInterpolate(torch.autograd.Function):
    """The tutorial's operator: bicubic upsampling whose scales are a graph input, not a constant."""

    @staticmethod
    def symbolic(g: torch.Graph, x: torch.Value, factor: torch.Value) -> torch.Value:
        # Used by the TorchScript exporter only. Resize-11 takes (X, roi, scales): roi is unused by this
        # coordinate mode but must be present, so it is an empty tensor; scales is the graph input `factor`.
        empty_roi = g.op("Constant", value_t=torch.tensor([], dtype=torch.float32))
        return g.op(
            "Resize",
            x,
            empty_roi,
            factor,
            coordinate_transformation_mode_s=COORDINATE_TRANSFORMATION_MODE,
            cubic_coeff_a_f=CUBIC_COEFF_A,
            mode_s=RESIZE_MODE,
            nearest_mode_s=NEAREST_MODE,
        )

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
        return bicubic_resize(x, factor)


def _resize_onnxscript(x, factor):  # noqa: ANN001, ANN202 - onnxscript tensors, typed by the exporter
    """The translation of srcnn_dynamic::bicubic_resize for the dynamo exporter: the same Resize node."""
    from onnxscript import opset18 as op

    return op.Resize(
        x,
        None,  # roi: optional since opset 13, unused by this coordinate mode
        factor,
        coordinate_transformation_mode=COORDINATE_TRANSFORMATION_MODE,
        cubic_coeff_a=CUBIC_COEFF_A,
        mode=RESIZE_MODE,
        nearest_mode=NEAREST_MODE,
    )


# ----------------------------------------------------------------------------------------------------------------
# The model


class SuperResolutionNet(nn.Module):
    """SRCNN 9-1-5 after bicubic upsampling, with the tutorial's layers and state-dict names.

    Input: RGB float32 in [0, 1], (N, 3, H, W), and factor [1, 1, fh, fw]. Output: (N, 3, floor(H*fh), floor(W*fw)),
    not clamped (callers clamp to [0, 1] when writing an image).
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=9, padding=4)  # patch extraction, 9x9 keeps the size
        self.conv2 = nn.Conv2d(64, 32, kernel_size=1, padding=0)  # non-linear mapping
        self.conv3 = nn.Conv2d(32, 3, kernel_size=5, padding=2)  # reconstruction, 5x5 keeps the size
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
        return self.refine(self.upsample(x, factor))

    def upsample(self, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
        return NewInterpolate.apply(x, factor)  # (N, 3, H', W') with H' = floor(H * fh), W' = floor(W * fw)

    def refine(self, x: torch.Tensor) -> torch.Tensor:
        """The three convolutions, at the upsampled size; tiles of it give the same pixels (see tile_boxes)."""
        x = self.relu(self.conv1(x))  # (N, 64, H', W')
        x = self.relu(self.conv2(x))  # (N, 32, H', W')
        return self.conv3(x)  # (N, 3, H', W')

    @property
    def halo(self) -> int:
        """How far an output pixel of refine() sees: the sum of the kernel radii (4 + 0 + 2 = 6 pixels)."""
        return sum(conv.kernel_size[0] // 2 for conv in (self.conv1, self.conv2, self.conv3))


# ----------------------------------------------------------------------------------------------------------------
# Weights

@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it into place only if the block succeeds.

    The block creates the file itself (so it gets the usual permissions); a failure or Ctrl-C removes it.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


CHECKPOINT_PREFIX = "generator."  # mmediting/mmagic SRCNN checkpoints keep the network under `generator`


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a state dict, or an mmediting/mmagic SRCNN checkpoint, without running any pickled code."""
    if not path.is_file():
        raise SrcnnError(f"weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        # weights_only refuses to import any global (a class, a function): that is a file that wants to run code.
        if refused := next((line for line in lines if "GLOBAL" in line), None):
            raise SrcnnError(
                f"weights file {path} was refused: torch.load(weights_only=True) loads tensors only and never runs"
                f" code from a file ({refused.rstrip('.')}); save weights with torch.save(model.state_dict(), PATH)"
            ) from None
        detail = next((line for line in lines if line.startswith("Unsupported")), lines[0] if lines else "")
        raise SrcnnError(f"weights file {path} is corrupt or not a PyTorch file ({detail})") from None
    except Exception as exc:  # torch.load raises KeyError, EOFError, RuntimeError... on files it cannot parse
        raise SrcnnError(
            f"weights file {path} is corrupt or not a PyTorch file ({type(exc).__name__}: {exc})".splitlines()[0]
        ) from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):  # an mmediting/mmagic checkpoint
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise SrcnnError(f"weights file {path} does not hold a state dict (a mapping of names to tensors)")
    return {k.removeprefix(CHECKPOINT_PREFIX): v for k, v in obj.items()}


def check_state_dict(state_dict: dict[str, torch.Tensor], model: nn.Module, source: Path) -> None:
    """Raise an error naming every missing, unexpected or wrongly shaped tensor."""
    expected = model.state_dict()
    problems = []
    if missing := sorted(set(expected) - set(state_dict)):
        problems.append(f"missing {', '.join(missing)}")
    if unexpected := sorted(set(state_dict) - set(expected)):
        problems.append(f"unexpected {', '.join(unexpected)}")
    for name in sorted(set(expected) & set(state_dict)):
        if state_dict[name].shape != expected[name].shape:
            problems.append(
                f"{name} has shape {tuple(state_dict[name].shape)}, the model needs {tuple(expected[name].shape)}"
            )
    if problems:
        raise SrcnnError(f"weights file {source} does not fit SuperResolutionNet: {'; '.join(problems)}")


def save_state_dict(state_dict: dict[str, torch.Tensor], path: Path) -> None:
    """Save weights as a plain state dict (loadable with weights_only=True); the file appears whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(state_dict, tmp)


def build_model(weights: Path | None = None) -> SuperResolutionNet:
    """The model in eval mode on the CPU, with weights from `weights` or a seeded random initialisation."""
    if weights is None:
        torch.manual_seed(SEED)
        model = SuperResolutionNet()
        log.warning(
            "no weights (%s is missing, and no --weights given): using a random initialisation (seed %d); the"
            " output is not super-resolved", DEFAULT_WEIGHTS.relative_to(DEFAULT_WEIGHTS.parent.parent), SEED
        )
    else:
        model = SuperResolutionNet()
        state_dict = load_state_dict(weights)
        check_state_dict(state_dict, model, weights)
        model.load_state_dict(state_dict)
        log.info("loaded weights from %s", weights)
    return model.eval()


# ----------------------------------------------------------------------------------------------------------------
# Image I/O: files hold grey, BGR or BGRA pixels of 8 or 16 bits (OpenCV); the model takes RGB float32 in [0, 1]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")  # what --image DIR picks up
DEPTH_MAX = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}  # 8- and 16-bit files; the peak maps to 1.0


@dataclass(frozen=True)
class Picture:
    """An image file's pixels as the model takes them, and what it takes to write a result in the same format."""

    rgb: torch.Tensor  # (1, 3, H, W) float32 in [0, 1]; a grey image as three equal channels
    alpha: torch.Tensor | None  # (1, 1, H, W) float32 in [0, 1], or None
    grey: bool
    dtype: np.dtype  # uint8 or uint16, as in the file


def read_picture(path: Path) -> Picture:
    """Read a grey, colour or colour+alpha image of 8 or 16 bits; one-line SrcnnError for anything else."""
    if not path.exists():
        raise SrcnnError(f"image not found: {path}")
    if path.is_dir():
        raise SrcnnError(f"{path} is a folder, not an image")
    try:
        data = np.fromfile(path, dtype=np.uint8)  # np.fromfile + imdecode also handles non-ASCII paths
    except OSError as exc:
        raise SrcnnError(f"cannot read {path}: {exc.strerror or exc}") from None
    if data.size == 0:
        raise SrcnnError(f"cannot read {path} as an image: the file is empty")
    pixels = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)  # keeps grey, alpha and 16 bits, but ignores EXIF
    if pixels is None:
        raise SrcnnError(f"cannot read {path} as an image (OpenCV could not decode it)")
    if pixels.ndim == 2 or pixels.shape[2] != 4:
        # The same pixels, turned upright as the camera's EXIF orientation says (phone photos): without alpha,
        # ANYDEPTH | ANYCOLOR keeps grey and 16 bits and applies the orientation, as image viewers do.
        pixels = cv2.imdecode(data, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)
    if pixels.dtype not in DEPTH_MAX:
        raise SrcnnError(f"{path} has {pixels.dtype} pixels; 8-bit and 16-bit images are supported")
    values = pixels.astype(np.float32) / DEPTH_MAX[pixels.dtype]
    if values.ndim == 3 and values.shape[2] == 1:
        values = values[:, :, 0]
    grey = values.ndim == 2
    if grey:
        rgb, alpha = np.repeat(values[:, :, None], 3, axis=2), None  # (H, W, 3)
    elif values.shape[2] == 3:
        rgb, alpha = cv2.cvtColor(values, cv2.COLOR_BGR2RGB), None
    elif values.shape[2] == 4:
        rgb, alpha = cv2.cvtColor(values, cv2.COLOR_BGRA2RGB), values[:, :, 3]
    else:
        raise SrcnnError(f"{path} has {values.shape[2]} channels; grey, colour and colour+alpha are supported")
    rgb_tensor = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).unsqueeze(0).contiguous()  # (1, 3, H, W)
    alpha_tensor = None if alpha is None else torch.from_numpy(np.ascontiguousarray(alpha))[None, None]  # (1, 1, H, W)
    return Picture(rgb_tensor, alpha_tensor, grey, pixels.dtype)


def read_image(path: Path) -> torch.Tensor:
    """Read an image file as a (1, 3, H, W) RGB float32 tensor in [0, 1] (alpha dropped, grey as 3 channels)."""
    return read_picture(path).rgb


def upscale_alpha(alpha: torch.Tensor, factor: Factor) -> np.ndarray:
    """The alpha channel upscaled by the model's own bicubic resize, clamped to [0, 1]: (1, 1, H', W')."""
    return bicubic_resize(alpha, factor.tensor()).clamp(0.0, 1.0).numpy()


def picture_pixels(rgb: np.ndarray, like: Picture, alpha: np.ndarray | None = None) -> np.ndarray:
    """(1, 3, H, W) RGB float result -> the (H, W[, C]) array OpenCV writes: `like`'s channels and bit depth.

    A grey input comes back grey (BT.601 luma of the result: the three channels differ only slightly), an
    input with alpha gets `alpha` (see upscale_alpha) back, and 16-bit inputs come back 16-bit.
    """
    values = np.clip(rgb[0].transpose(1, 2, 0), 0.0, 1.0)  # (H, W, 3)
    if like.grey:
        values = cv2.cvtColor(values, cv2.COLOR_RGB2GRAY)  # (H, W)
    elif alpha is not None:
        values = cv2.cvtColor(values, cv2.COLOR_RGB2BGRA)
        values[:, :, 3] = alpha[0, 0]
    else:
        values = cv2.cvtColor(values, cv2.COLOR_RGB2BGR)
    peak = DEPTH_MAX[like.dtype]
    return np.rint(values * peak).astype(like.dtype)


def write_picture(path: Path, rgb: np.ndarray, like: Picture, alpha: np.ndarray | None = None) -> None:
    """Write a result in the format of `like` (channels, depth) and of `path`'s suffix; whole or not at all."""
    write_bgr(path, picture_pixels(rgb, like, alpha))


def to_uint8_bgr(image: np.ndarray) -> np.ndarray:
    """(1, 3, H, W) RGB float in [0, 1] -> (H, W, 3) BGR uint8, clamping and rounding."""
    rgb = np.clip(image[0].transpose(1, 2, 0), 0.0, 1.0)  # (H, W, 3)
    return cv2.cvtColor(np.rint(rgb * 255.0).astype(np.uint8), cv2.COLOR_RGB2BGR)


def write_bgr(path: Path, bgr: np.ndarray) -> None:
    """Write an (H, W[, C]) OpenCV array (grey, BGR or BGRA) in the format of the file's suffix, atomically."""
    ok, encoded = cv2.imencode(path.suffix or ".png", bgr)
    if not ok:
        raise SrcnnError(f"OpenCV cannot encode an image as {path.suffix!r} for {path}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(encoded.tobytes())


# ----------------------------------------------------------------------------------------------------------------
# Export


@contextlib.contextmanager
def _quiet_export(exporter: Exporter) -> Iterator[None]:
    """Silence the exporters' expected, non-actionable chatter; real errors still raise."""
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated since PyTorch 2.9 and says so on every call. We use it on
        # purpose (it is the tutorial's method and honours NewInterpolate.symbolic): said once, in the log.
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*legacy TorchScript-based")
        warnings.filterwarnings("ignore", category=DeprecationWarning, message="The feature will be removed")
        # Tracing warns when Python values are recorded as constants. NewInterpolate keeps the factor a
        # graph input, so nothing the exported graph depends on is baked in; the conv shapes are constant.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        # torch.export's pytree code warns about its own deprecated internals (LeafSpec): not ours to fix.
        warnings.filterwarnings("ignore", category=FutureWarning, module="copyreg")
        registration = logging.getLogger("torch.onnx._internal.exporter._registration")
        level = registration.level
        if exporter == "dynamo":
            registration.setLevel(logging.ERROR)  # "torchvision is not installed. Skipping torchvision::nms"
        try:
            yield
        finally:
            registration.setLevel(level)


def resolve_opset(exporter: Exporter, opset: int | None) -> int:
    """The exporter's default opset, or `opset` if the exporter supports it."""
    if opset is None:
        return MIN_OPSET[exporter]
    if opset < MIN_OPSET[exporter]:
        raise SrcnnError(f"--opset {opset}: the {exporter} exporter needs opset {MIN_OPSET[exporter]} or newer")
    return opset


def export_onnx(
    model: SuperResolutionNet,
    path: Path,
    *,
    sample: torch.Tensor,
    exporter: Exporter = "torchscript",
    opset: int | None = None,
    factor: Factor = Factor(EXPORT_FACTOR, EXPORT_FACTOR),
) -> onnx.ModelProto:
    """Export `model` to `path` with dynamic batch, height, width and a runtime `factor` input; return the model.

    `sample` (N, 3, H, W) and `factor` are only the example inputs the exporter traces with.
    """
    opset = resolve_opset(exporter, opset)
    args = (sample.cpu(), factor.tensor())
    log.info("exporting %s with the %s exporter (opset %d, traced at x%s)", path.name, exporter, opset, factor.tag)
    if exporter == "torchscript":
        log.info("the TorchScript exporter is deprecated since PyTorch 2.9; --exporter dynamo is its successor")
    try:
        with _quiet_export(exporter), atomic_path(path) as tmp:
            if exporter == "torchscript":
                _export_torchscript(model, args, tmp, opset)
            else:
                _export_dynamo(model, args, tmp, opset)
    except SrcnnError:
        raise
    except Exception as exc:  # an exporter failure is reported in one line; --verbose logs the traceback
        log.debug("export failed", exc_info=True)
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SrcnnError(f"{exporter} export at opset {opset} failed: {first_line}") from None
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)  # structure, types and shape inference
    check_dynamic_graph(proto)
    return proto


def _export_torchscript(model: nn.Module, args: tuple[torch.Tensor, ...], path: Path, opset: int) -> None:
    torch.onnx.export(
        model,
        args,  # (input, factor): traced once with these values
        path,
        dynamo=False,  # the TorchScript exporter: honours NewInterpolate.symbolic
        opset_version=opset,
        input_names=list(INPUT_NAMES),  # name the graph inputs as the tutorial does
        output_names=[OUTPUT_NAME],
        dynamic_axes={  # without these, batch, height and width would be fixed at the sample's
            INPUT_NAMES[0]: {0: "batch", 2: "height", 3: "width"},
            OUTPUT_NAME: {0: "batch", 2: "out_height", 3: "out_width"},
        },
        do_constant_folding=True,  # fold the constant roi; the weights stay initializers
    )


def _export_dynamo(model: nn.Module, args: tuple[torch.Tensor, ...], path: Path, opset: int) -> None:
    batch, height, width = torch.export.Dim("batch"), torch.export.Dim("height"), torch.export.Dim("width")
    program = torch.onnx.export(
        model,
        args,  # (input, factor): example values only
        dynamo=True,  # the torch.export-based exporter, the default since PyTorch 2.9
        opset_version=opset,
        input_names=list(INPUT_NAMES),
        output_names=[OUTPUT_NAME],
        dynamic_shapes={"x": {0: batch, 2: height, 3: width}, "factor": None},  # keys: forward()'s argument names
        custom_translation_table={torch.ops.srcnn_dynamic.bicubic_resize.default: _resize_onnxscript},
        verbose=False,  # no step-by-step progress lines
    )
    assert program is not None, "torch.onnx.export(dynamo=True) returns an ONNXProgram"
    proto = program.model_proto  # a small model: the weights stay inside the one .onnx file
    # The output height and width are new symbols ("u0", "u1"); name them as the TorchScript export does.
    for dim, name in zip(proto.graph.output[0].type.tensor_type.shape.dim[2:], ("out_height", "out_width"), strict=True):
        if dim.HasField("dim_param"):
            dim.dim_param = name
    onnx.save(proto, path)


def load_onnx(path: Path) -> onnx.ModelProto:
    """Read an ONNX file, or fail in one line saying why."""
    if not path.is_file():
        raise SrcnnError(f"ONNX model not found: {path}")
    try:
        return onnx.load(path)
    except Exception as exc:  # protobuf's DecodeError and friends: the file is not an ONNX model
        raise SrcnnError(f"{path} is not a readable ONNX model ({type(exc).__name__}: {exc})".splitlines()[0]) from None


def check_dynamic_graph(proto: onnx.ModelProto, source: Path | None = None) -> None:
    """Raise SrcnnError unless the graph is the tutorial's: inputs (input, factor), one Resize fed by factor.

    source: the file a user gave (--onnx), named in the message; None for a model this script just exported.
    """
    inputs = [i.name for i in proto.graph.input]
    outputs = [o.name for o in proto.graph.output]
    resizes = [n for n in proto.graph.node if n.op_type == "Resize"]
    problems = []
    if inputs != list(INPUT_NAMES):
        problems.append(f"inputs are {inputs}, expected {list(INPUT_NAMES)}")
    if outputs != [OUTPUT_NAME]:
        problems.append(f"outputs are {outputs}, expected {[OUTPUT_NAME]}")
    if len(resizes) != 1 or len(resizes[0].input) < 3 or resizes[0].input[2] != INPUT_NAMES[1]:
        problems.append(f"expected one Resize whose scales input is {INPUT_NAMES[1]!r}")
    if problems and source is not None:
        raise SrcnnError(
            f"--onnx {source} is not this project's dynamic-factor model: {'; '.join(problems)} (export one with"
            " python srcnn_dynamic.py, which writes srcnn3.onnx)"
        )
    if problems:
        raise SrcnnError(f"the exported graph is not dynamic in the factor: {'; '.join(problems)}")


# ----------------------------------------------------------------------------------------------------------------
# A deployment rewrite for ONNX Runtime: the cubic Resize as two matrix products

# ONNX Runtime's cubic Resize is a scalar loop: measured at 256x256 x3 on a 2-core CPU it took 116 ms, as long as
# conv1, while PyTorch's bicubic takes 9 ms. Bicubic interpolation is separable and linear, so it is also
# output = Mh @ image @ Mw^T with Mh (H', H) and Mw (W', W) holding each output row's (column's) four cubic weights
# at clamped source indices; MatMul runs at matrix speed. The exported file keeps the tutorial's Resize; this
# rewrite builds the matrices from `factor` and the input's shape *inside the graph*, so the rewritten model is
# just as dynamic, and is applied in memory when a session is created (create_session(..., resize="matmul")).
OrtResize = Literal["matmul", "resize"]
ORT_RESIZES: tuple[OrtResize, ...] = ("matmul", "resize")  # matmul: the rewrite (default); resize: the graph exactly as exported
REWRITE_PREFIX = "resize_as_matmul/"


class _GraphBuilder:
    """Appends ONNX nodes with generated names; constants become initializers, each value stored once."""

    def __init__(self, prefix: str) -> None:
        self.prefix, self.nodes, self.initializers = prefix, [], {}
        self._count = 0

    def const(self, value: float | list[int], dtype: type = np.float32) -> str:
        array = np.array(value, dtype=dtype)
        name = f"{self.prefix}const_{array.dtype}_{'_'.join(str(v) for v in array.ravel().tolist())}"
        self.initializers.setdefault(name, onnx.numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, *inputs: str, output: str | None = None, **attributes: object) -> str:
        self._count += 1
        name = f"{self.prefix}{op_type}_{self._count}"
        self.nodes.append(onnx.helper.make_node(op_type, list(inputs), [output or name], name=name, **attributes))
        return output or name


def _keys_weight(b: _GraphBuilder, distance: str, near: bool) -> str:
    """Keys' cubic kernel at `distance` (Horner form): near for |d| <= 1, far for 1 < |d| < 2 (A = CUBIC_COEFF_A)."""
    a = CUBIC_COEFF_A
    coefficients = (a + 2, -(a + 3), 0.0, 1.0) if near else (a, -5 * a, 8 * a, -4 * a)  # d^3, d^2, d, 1
    value = b.const(coefficients[0])
    for c in coefficients[1:]:
        value = b.op("Add", b.op("Mul", value, distance), b.const(c))
    return value


def _interpolation_matrix(b: _GraphBuilder, shape: str, factor: str, axis: int) -> str:
    """(out_length, in_length) float matrix of bicubic weights along `axis` (2: height, 3: width).

    Every step mirrors PyTorch's upsample_bicubic2d: out = floor(in * f) in float32 (as Resize does),
    src = (dst + 0.5) / f - 0.5, taps at floor(src) - 1 ... floor(src) + 2 clamped to the image, weights
    Keys(1 + t), Keys(t), Keys(1 - t), Keys(2 - t) with t = src - floor(src). All in float: opset 11's Max, Min
    and Equal take no integers, and every index here is a small whole number, exact in float32.
    """
    one, zero = b.const(1.0), b.const(0.0)
    in_length = b.op("Cast", b.op("Gather", shape, b.const(axis, np.int64)), to=onnx.TensorProto.FLOAT)  # ()
    scale = b.op("Gather", factor, b.const(axis, np.int64))  # ()
    out_length = b.op("Floor", b.op("Mul", in_length, scale))  # ()
    dst = b.op("Range", zero, out_length, one)  # (out,)
    src = b.op("Sub", b.op("Mul", b.op("Add", dst, b.const(0.5)), b.op("Div", one, scale)), b.const(0.5))
    base = b.op("Floor", src)
    t = b.op("Sub", src, base)  # (out,) in [0, 1)
    last = b.op("Sub", in_length, one)
    columns = b.op("Reshape", b.op("Range", zero, in_length, one), b.const([1, -1], np.int64))  # (1, in)
    distances = [(b.op("Add", t, one), False), (t, True), (b.op("Sub", one, t), True), (b.op("Sub", b.const(2.0), t), False)]
    matrix = None
    for tap, (distance, near) in enumerate(distances):
        weight = b.op("Reshape", _keys_weight(b, distance, near), b.const([-1, 1], np.int64))  # (out, 1)
        index = b.op("Min", b.op("Max", b.op("Add", base, b.const(tap - 1.0)), zero), last)  # clamp to the image
        hits = b.op("Equal", b.op("Reshape", index, b.const([-1, 1], np.int64)), columns)  # (out, in) one-hot
        term = b.op("Mul", b.op("Cast", hits, to=onnx.TensorProto.FLOAT), weight)
        matrix = term if matrix is None else b.op("Add", matrix, term)  # clamped taps on one pixel add up
    assert matrix is not None
    return matrix


def resize_as_matmul(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of `proto` with its one cubic Resize replaced by Mh @ x @ Mw^T built from the Resize's scales."""
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    graph = model.graph
    resizes = [(i, n) for i, n in enumerate(graph.node) if n.op_type == "Resize"]
    if len(resizes) != 1:
        raise SrcnnError(f"cannot rewrite the resize as matrix products: the graph has {len(resizes)} Resize nodes, not 1")
    position, resize = resizes[0]
    _check_resize_attributes(resize)
    image, factor, output = resize.input[0], resize.input[2], resize.output[0]
    b = _GraphBuilder(REWRITE_PREFIX)
    shape = b.op("Shape", image)
    rows = _interpolation_matrix(b, shape, factor, axis=2)  # (H', H)
    columns_t = b.op("Transpose", _interpolation_matrix(b, shape, factor, axis=3), perm=[1, 0])  # (W, W')
    b.op("MatMul", b.op("MatMul", rows, image), columns_t, output=output)  # (N, C, H', W) @ (W, W') -> (N, C, H', W')
    nodes = [*graph.node[:position], *b.nodes, *graph.node[position + 1 :]]
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(b.initializers.values())
    _drop_unused(graph)  # Resize's roi constant
    onnx.checker.check_model(model, full_check=True)
    return model


def _check_resize_attributes(resize: onnx.NodeProto) -> None:
    """The rewrite computes exactly this project's bicubic; refuse any other Resize rather than change its meaning."""
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in resize.attribute}
    expected = {
        "mode": RESIZE_MODE.encode(),
        "coordinate_transformation_mode": COORDINATE_TRANSFORMATION_MODE.encode(),
        "cubic_coeff_a": np.float32(CUBIC_COEFF_A),
        "exclude_outside": 0,  # ONNX defaults, for the attributes an exporter may leave out
        "antialias": 0,
    }
    defaults = {"cubic_coeff_a": np.float32(-0.75), "exclude_outside": 0, "antialias": 0}
    actual = {name: attributes.get(name, defaults.get(name)) for name in expected}
    if wrong := {name: value for name, value in actual.items() if value != expected[name]}:
        raise SrcnnError(f"cannot rewrite this Resize as matrix products: it has {wrong}, not this project's bicubic")


def _drop_unused(graph: onnx.GraphProto) -> None:
    """Remove nodes and initializers whose outputs nothing reads (ONNX Runtime warns about them otherwise)."""
    while True:
        used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
        dead = [n for n in graph.node if not any(out in used for out in n.output)]
        for node in dead:
            graph.node.remove(node)
        if not dead:
            break
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)


# ----------------------------------------------------------------------------------------------------------------
# Devices and ONNX Runtime sessions

Device = Literal["cpu", "cuda"]
CUDA_PROVIDER, CPU_PROVIDER = "CUDAExecutionProvider", "CPUExecutionProvider"
GPU_INSTALL_HINT = "in a separate virtual environment: pip install -r requirements-gpu.txt"


def check_device(device: Device) -> None:
    """Fail early, in one line, when CUDA is asked for but PyTorch or ONNX Runtime cannot use it."""
    if device != "cuda":
        return
    if CUDA_PROVIDER not in ort.get_available_providers():
        raise SrcnnError(
            f"--device cuda: this onnxruntime has no {CUDA_PROVIDER} (it has {', '.join(ort.get_available_providers())});"
            f" install onnxruntime-gpu {GPU_INSTALL_HINT}"
        )
    if not torch.cuda.is_available():
        raise SrcnnError(f"--device cuda: PyTorch {torch.__version__} sees no CUDA GPU; {GPU_INSTALL_HINT}")


def create_session(
    model: Path | onnx.ModelProto,
    device: Device = "cpu",
    *,
    resize: OrtResize = "matmul",
    threads: int | None = None,
) -> ort.InferenceSession:
    """An ONNX Runtime session on exactly the requested device: never a silent fallback to the CPU.

    resize="matmul" applies resize_as_matmul() in memory (the file is not changed); "resize" runs the graph as
    exported. threads: ONNX Runtime's intra-op threads (default: one per physical core, ONNX Runtime's choice).
    """
    check_device(device)
    if device == "cuda":
        providers: list = [(CUDA_PROVIDER, {"use_tf32": int(CUDA_ALLOW_TF32)})]
    else:
        providers = [CPU_PROVIDER]
    if resize not in ORT_RESIZES:
        raise SrcnnError(f"resize {resize!r}: expected one of {', '.join(ORT_RESIZES)}")
    if resize == "matmul":
        model = resize_as_matmul(model if isinstance(model, onnx.ModelProto) else load_onnx(model))
    options = ort.SessionOptions()
    # ONNX Runtime's default, stated because it matters: ENABLE_ALL includes the NCHWc layout rewrite, whose
    # blocked convolution kernels make the model 1.6x faster on CPU than ENABLE_EXTENDED (89 vs 142 ms, 256x256 x3).
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads is not None:
        options.intra_op_num_threads = threads
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    session = ort.InferenceSession(source, options, providers=providers)
    wanted = CUDA_PROVIDER if device == "cuda" else CPU_PROVIDER
    if session.get_providers()[0] != wanted:  # ORT falls back quietly when e.g. CUDA libraries fail to load
        raise SrcnnError(
            f"--device {device}: ONNX Runtime created the session with {session.get_providers()}, not {wanted}"
            f" (are the CUDA and cuDNN libraries installed? {GPU_INSTALL_HINT})"
        )
    return session


def run_session(session: ort.InferenceSession, image: np.ndarray, factor: Factor) -> np.ndarray:
    """(N, 3, H, W) float32 -> (N, 3, floor(H*fh), floor(W*fw)) through ONNX Runtime."""
    feeds = {INPUT_NAMES[0]: np.ascontiguousarray(image, dtype=np.float32), INPUT_NAMES[1]: factor.tensor().numpy()}
    return session.run(None, feeds)[0]  # the one output: `output`, or the upsampled image of split_at_resize


def run_torch(model: SuperResolutionNet, image: torch.Tensor, factor: Factor, tile: int | None = None) -> np.ndarray:
    """The PyTorch reference on the model's device, in float32 (TF32 off on CUDA, see CUDA_ALLOW_TF32).

    With `tile`, the convolutions run on tiles of the upsampled image (tile_boxes): the same pixels, less memory.
    """
    device = next(model.parameters()).device
    with torch.inference_mode(), torch.backends.cudnn.flags(enabled=True, allow_tf32=CUDA_ALLOW_TF32):
        if tile is None:
            out = model(image.to(device), factor.tensor(device))  # (N, 3, H', W')
        else:
            upsampled = model.upsample(image.to(device), factor.tensor(device))  # (N, 3, H', W'): 3 channels, small
            out = torch.empty_like(upsampled)
            for box in _progress(tile_boxes(upsampled.shape[2], upsampled.shape[3], tile, model.halo)):
                refined = model.refine(upsampled[..., box.rows, box.cols])  # tile plus halo
                out[..., box.out_rows, box.out_cols] = refined[..., box.keep_rows, box.keep_cols]
    return out.cpu().numpy()


# ----------------------------------------------------------------------------------------------------------------
# Tiled inference: bounded memory for large outputs, the same pixels

# Untiled, conv1 holds 64 float32 channels at the output size: 2.1 GB for a 4K UHD (2160x3840) output, plus
# the other layers' maps. Tiling upsamples the whole image first (3 channels: cheap, and the sampling grid is the
# untiled one at every factor, so nothing needs aligning) and runs the three convolutions tile by tile, each tile
# padded by the network's halo of 6 pixels (the kernel radii 4 + 0 + 2) of real neighbours. Every kept pixel then
# sees exactly the inputs it sees untiled; at the image's edges both see the convolutions' zero padding.
TILE_ATOL = 1e-5  # tiled vs untiled on [0, 1]: the same arithmetic per pixel, so only the order of sums may differ
TILE_ABOVE_PIXELS = 1024 * 1024  # outputs larger than this are tiled unless --tile 0 (conv1's map: 256 MiB here)
DEFAULT_TILE = 512  # output pixels a side: the halo adds (512 + 12)^2 / 512^2 - 1 = 5% work; ~70 MiB for conv1
PROGRESS_MIN_TILES = 8  # fewer tiles finish in about a second: no progress bar


@dataclass(frozen=True)
class TileBox:
    """One tile: refine() reads (rows, cols) of the upsampled image and its (keep_rows, keep_cols) are exact."""

    rows: slice  # tile plus halo, clipped to the image
    cols: slice
    keep_rows: slice  # the tile inside refine()'s output of (rows, cols)
    keep_cols: slice
    out_rows: slice  # where the tile goes in the output
    out_cols: slice


def _spans(length: int, tile: int, halo: int) -> list[tuple[slice, slice, slice]]:
    spans = []
    for start in range(0, length, tile):
        stop = min(start + tile, length)
        lo, hi = max(start - halo, 0), min(stop + halo, length)
        spans.append((slice(lo, hi), slice(start - lo, stop - lo), slice(start, stop)))
    return spans


def tile_boxes(height: int, width: int, tile: int, halo: int) -> list[TileBox]:
    """Tiles of at most tile x tile output pixels covering a height x width image, row by row."""
    if tile < 1:
        raise SrcnnError(f"tile size {tile}: must be at least 1 pixel")
    return [
        TileBox(rows, cols, keep_rows, keep_cols, out_rows, out_cols)
        for rows, keep_rows, out_rows in _spans(height, tile, halo)
        for cols, keep_cols, out_cols in _spans(width, tile, halo)
    ]


def choose_tile(height: int, width: int, factor: Factor, tile: int | None) -> int | None:
    """The tile size to use for this image and factor: None (untiled) for `tile` 0 or small outputs.

    tile=None means automatic: DEFAULT_TILE when the output has more than TILE_ABOVE_PIXELS pixels.
    """
    out_h, out_w = factor.output_size(height, width)
    if tile is None:
        return DEFAULT_TILE if out_h * out_w > TILE_ABOVE_PIXELS else None
    if tile < 0:
        raise SrcnnError(f"--tile {tile}: must be 0 (never tile) or a positive number of output pixels")
    return None if tile == 0 or tile >= max(out_h, out_w) else tile


def _progress(boxes: list[TileBox]) -> Iterator[TileBox]:
    """A progress bar over tiles when there are many (tqdm hides it when stderr is not a terminal)."""
    if len(boxes) < PROGRESS_MIN_TILES:
        return iter(boxes)
    return iter(tqdm(boxes, desc="tiles", unit="tile", leave=False, disable=None, file=sys.stderr))



class OrtRunner:
    """The exported model in ONNX Runtime: the whole graph in one session, or tiled.

    Tiled runs split the graph at its Resize (split_at_resize) into an upsample session and a refine session,
    created on first use, and run the refine session tile by tile exactly as run_torch does.
    """

    def __init__(self, model: Path | onnx.ModelProto, device: Device = "cpu", *, resize: OrtResize = "matmul",
                 threads: int | None = None) -> None:
        self.proto = model if isinstance(model, onnx.ModelProto) else load_onnx(model)
        self.device, self.resize, self.threads = device, resize, threads
        self.session = create_session(self.proto, device, resize=resize, threads=threads)
        self._split: tuple[ort.InferenceSession, ort.InferenceSession] | None = None
        self.halo = refine_halo(self.proto)

    def __call__(self, image: np.ndarray, factor: Factor, tile: int | None = None) -> np.ndarray:
        """(N, 3, H, W) float32 -> (N, 3, floor(H*fh), floor(W*fw))."""
        if tile is None:
            return run_session(self.session, image, factor)
        if self._split is None:
            upsample, refine = split_at_resize(self.proto)
            self._split = (
                create_session(upsample, self.device, resize=self.resize, threads=self.threads),
                create_session(refine, self.device, resize="resize", threads=self.threads),  # no Resize in it
            )
        upsample_session, refine_session = self._split
        upsampled = run_session(upsample_session, image, factor)  # (N, 3, H', W')
        refine_input = refine_session.get_inputs()[0].name
        out = np.empty_like(upsampled)
        for box in _progress(tile_boxes(upsampled.shape[2], upsampled.shape[3], tile, self.halo)):
            crop = np.ascontiguousarray(upsampled[..., box.rows, box.cols])
            refined = refine_session.run(None, {refine_input: crop})[0]
            out[..., box.out_rows, box.out_cols] = refined[..., box.keep_rows, box.keep_cols]
        return out


def split_at_resize(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """(input, factor) -> upsampled, and upsampled -> output: the graph cut at its Resize's output."""
    check_dynamic_graph(proto)
    upsampled = next(n for n in proto.graph.node if n.op_type == "Resize").output[0]
    inferred = onnx.shape_inference.infer_shapes(proto)
    extractor = onnx.utils.Extractor(inferred)
    return (
        extractor.extract_model(list(INPUT_NAMES), [upsampled]),
        extractor.extract_model([upsampled], [OUTPUT_NAME]),
    )


def refine_halo(proto: onnx.ModelProto) -> int:
    """The refine part's halo read from the graph: the sum of its Conv kernels' radii (weights are (O, I, kH, kW))."""
    shapes = {t.name: tuple(t.dims) for t in proto.graph.initializer}
    kernels = [shapes[n.input[1]] for n in proto.graph.node if n.op_type == "Conv"]
    return sum(max(kh, kw) // 2 for *_, kh, kw in kernels)


# ----------------------------------------------------------------------------------------------------------------
# Comparison

T = TypeVar("T")


def timed(fn: Callable[[], T], runs: int = TIMING_RUNS, *, warmup: int = 0,
          sync: Callable[[], None] = lambda: None) -> tuple[T, float]:
    """Run `fn` `warmup` times untimed, then `runs` times; return its last result and the median wall time (ms).

    sync: called after each run inside the timing, e.g. torch.cuda.synchronize so GPU work is counted.
    """
    result = None
    for _ in range(warmup):
        result = fn()
    sync()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return result, statistics.median(times)  # type: ignore[return-value]


def psnr(reference: np.ndarray, test: np.ndarray, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB on the [0, peak] scale; inf for identical arrays."""
    mse = float(np.mean((reference.astype(np.float64) - test.astype(np.float64)) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(peak**2 / mse)


@dataclass(frozen=True)
class Comparison:
    """ONNX Runtime against PyTorch on one image at one factor."""

    image: str  # file name
    factor: Factor
    output_size: tuple[int, int]  # (height, width)
    max_abs_diff: float
    psnr_db: float
    torch_ms: float
    ort_ms: float

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= PARITY_ATOL


def compare(image: str, torch_out: np.ndarray, ort_out: np.ndarray, factor: Factor, torch_ms: float,
            ort_ms: float) -> Comparison:
    if torch_out.shape != ort_out.shape:
        raise AssertionError(f"{image} x{factor.tag}: PyTorch gave {torch_out.shape}, ONNX Runtime {ort_out.shape}")
    return Comparison(
        image=image,
        factor=factor,
        output_size=(ort_out.shape[2], ort_out.shape[3]),
        max_abs_diff=float(np.max(np.abs(torch_out - ort_out))),
        psnr_db=psnr(torch_out, ort_out),
        torch_ms=torch_ms,
        ort_ms=ort_ms,
    )


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> str:
    """A plain-text table: the first `left` columns left-aligned, the rest right-aligned, a rule under the header."""
    lines = [list(header), *map(list, rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]

    def render(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return "\n".join([render(lines[0]), render(["-" * w for w in widths]), *map(render, lines[1:])])


def format_table(rows: Sequence[Comparison]) -> str:
    """One row per image and factor; the image column only when there are several images."""
    several = len({r.image for r in rows}) > 1
    header = ("factor", "output (HxW)", "max |ORT-PyTorch|", "PSNR ORT vs PyTorch", "PyTorch ms", "ORT ms", "")
    table = render_table(("image", *header) if several else header, [
        (*((r.image,) if several else ()),
            f"x{r.factor.tag}",
            f"{r.output_size[0]}x{r.output_size[1]}",
            f"{r.max_abs_diff:.2e}",
            "inf dB" if math.isinf(r.psnr_db) else f"{r.psnr_db:.1f} dB",
            f"{r.torch_ms:.1f}",
            f"{r.ort_ms:.1f}",
            "ok" if r.ok else f"FAIL (> {PARITY_ATOL:g})",
        )
        for r in rows
    ], left=2 if several else 1)
    return table


# ----------------------------------------------------------------------------------------------------------------
# main()


def check_output_size(height: int, width: int, factor: Factor, tile: int | None) -> None:
    """Refuse outputs that would not fit in memory: a limit for untiled runs, a larger one for tiled runs."""
    out_h, out_w = factor.output_size(height, width)
    tiled = choose_tile(height, width, factor, tile) is not None
    limit = MAX_TILED_OUTPUT_PIXELS if tiled else MAX_OUTPUT_PIXELS
    if out_h * out_w <= limit:
        return
    message = f"factor {factor.tag} turns {height}x{width} into {out_h}x{out_w}, over the limit of {limit:,} output pixels"
    if not tiled and out_h * out_w <= MAX_TILED_OUTPUT_PIXELS:
        raise SrcnnError(f"{message} untiled; use --tile {DEFAULT_TILE}, a smaller factor or a smaller image")
    raise SrcnnError(f"{message}; use a smaller factor or a smaller image")


def check_output_dir(output_dir: Path) -> None:
    """Fail unless `output_dir` is, or can be created as, a writable folder (nothing is created here)."""
    existing = output_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise SrcnnError(f"output folder {output_dir}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise SrcnnError(f"output folder {output_dir} is not writable ({existing} does not allow writing)")


def image_paths(image: Path, option: str = "--image") -> list[Path]:
    """[image] for a file; the images in a folder (by suffix, sorted) for a folder. `option` names it in errors."""
    if not image.is_dir():
        return [image]
    paths = sorted(p for p in image.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise SrcnnError(f"{option} {image}: the folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return paths


def read_checked(path: Path, factors: Sequence[Factor], tile: int | None) -> Picture:
    """read_picture, then refuse any factor whose output would be over the pixel limit (check_output_size)."""
    picture = read_picture(path)
    for factor in factors:
        check_output_size(picture.rgb.shape[2], picture.rgb.shape[3], factor, tile)
    return picture


def result_paths(image: Path, factor: Factor, output_dir: Path) -> tuple[Path, Path]:
    """Where the PyTorch and ONNX Runtime results of `image` at `factor` go: the input's name and format."""
    suffix = image.suffix if image.suffix.lower() in IMAGE_SUFFIXES else ".png"
    return (output_dir / f"{image.stem}_torch_{factor.tag}{suffix}", output_dir / f"{image.stem}_ort_{factor.tag}{suffix}")


def check_no_overwrite(images: Sequence[Path], factors: Sequence[Factor], output_dir: Path) -> None:
    """Refuse a run whose outputs would replace one of its inputs."""
    inputs = {p.resolve() for p in images}
    for image in images:
        for factor in factors:
            for out in result_paths(image, factor, output_dir):
                if out.resolve() in inputs:
                    raise SrcnnError(f"the result {out} would overwrite an input image; choose another --output-dir")


@dataclass
class Report:
    rows: list[Comparison]
    skipped: list[tuple[Path, str]]  # folder mode: images that could not be processed, and why


def run(
    image_path: Path,
    factors: Sequence[Factor],
    *,
    output_dir: Path,
    device: Device = "cpu",
    exporter: Exporter = "torchscript",
    opset: int | None = None,
    weights: Path | None = None,
    tile: int | None = None,
    ort_resize: OrtResize = "matmul",
    onnx_model: Path | None = None,
) -> Report:
    """The tutorial end to end: PyTorch at each factor, one export at x3, ONNX Runtime at each factor.

    image_path: an image, or a folder whose images are each processed (a bad one is skipped and reported).
    tile: None tiles large outputs only (choose_tile), 0 never tiles, N tiles of N x N output pixels.
    onnx_model: run this exported model instead of exporting one (its inputs must be `input` and `factor`).
    """
    # Every check a user can fail comes before any work, so a mistake costs no time and writes nothing.
    check_device(device)
    opset = resolve_opset(exporter, opset)
    images = image_paths(image_path)
    folder_mode = image_path.is_dir()
    if not folder_mode:  # one image: its problems are the run's problems, reported now
        first = read_checked(images[0], factors, tile)
    check_output_dir(output_dir)
    check_no_overwrite(images, factors, output_dir)
    proto = None
    if onnx_model is not None:
        proto = load_onnx(onnx_model)
        check_dynamic_graph(proto, source=onnx_model)

    if weights is None and DEFAULT_WEIGHTS.is_file():
        weights = DEFAULT_WEIGHTS
    model = build_model(weights)
    output_dir.mkdir(parents=True, exist_ok=True)
    if proto is None:
        onnx_path = output_dir / f"srcnn{EXPORT_FACTOR:g}.onnx"
        sample = read_image(DEFAULT_IMAGE) if folder_mode else first.rgb
        # The exporter runs the model once on the sample: a corner is enough (the size is a dynamic axis) and
        # keeps a large image from costing an untiled forward pass here.
        proto = export_onnx(model, onnx_path, sample=sample[:, :, :EXPORT_SAMPLE_SIDE, :EXPORT_SAMPLE_SIDE],
                            exporter=exporter, opset=opset)
        log.info("wrote %s", onnx_path)
    else:
        log.info("running %s as it is (no export)", onnx_model)
    runner = OrtRunner(proto, device, resize=ort_resize)
    log.info("ONNX Runtime %s on %s, resize as %s", ort.__version__, runner.session.get_providers()[0],
             "matrix products (resize_as_matmul)" if ort_resize == "matmul" else "exported (cubic Resize)")
    model.to(device)

    report = Report([], [])
    runs = 1 if folder_mode else TIMING_RUNS  # a folder is a job, not a demo: each image once
    bar = tqdm(images, desc="images", unit="image", disable=None if folder_mode else True, file=sys.stderr)
    for path in bar:
        try:
            picture = read_checked(path, factors, tile) if folder_mode else first
            report.rows += upscale(model, runner, path, picture, factors, output_dir, tile, runs)
        except SrcnnError as exc:
            if not folder_mode:
                raise
            report.skipped.append((path, str(exc)))
            log.error("skipped %s: %s", path.name, exc)
    log.info("results in %s", output_dir)
    return report


def upscale(model: SuperResolutionNet, runner: OrtRunner, path: Path, picture: Picture, factors: Sequence[Factor],
            output_dir: Path, tile: int | None, runs: int) -> list[Comparison]:
    """One image at every factor in PyTorch and ONNX Runtime; both results written in the input's format."""
    height, width = picture.rgb.shape[2], picture.rgb.shape[3]
    rows = []
    for factor in factors:
        factor_tile = choose_tile(height, width, factor, tile)
        if factor_tile is not None:
            log.info("%s x%s: tiles of %d px (--tile 0 runs untiled)", path.name, factor.tag, factor_tile)
        if runner.resize == "resize" and resize_keeps_the_size(height, width, factor):
            log.warning("%s x%s: the size does not change, and ONNX Runtime's Resize then returns its input as it"
                        " is; expect a mismatch (--ort-resize matmul follows the factor)", path.name, factor.tag)
        torch_out, torch_ms = timed(functools.partial(run_torch, model, picture.rgb, factor, factor_tile), runs)
        ort_out, ort_ms = timed(functools.partial(runner, picture.rgb.numpy(), factor, factor_tile), runs)
        alpha = None if picture.alpha is None else upscale_alpha(picture.alpha, factor)
        torch_path, ort_path = result_paths(path, factor, output_dir)
        write_picture(torch_path, torch_out, picture, alpha)
        write_picture(ort_path, ort_out, picture, alpha)
        rows.append(compare(path.name, torch_out, ort_out, factor, torch_ms, ort_ms))
    return rows


def exit_code_for(exc: SrcnnError | KeyboardInterrupt) -> int:
    """Report a user mistake or Ctrl-C in one line on stderr; return the documented exit code."""
    if isinstance(exc, KeyboardInterrupt):  # atomic_path has removed any half-written file on the way out
        print("interrupted: no partial files were left", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"error: {exc}", file=sys.stderr)
    return EXIT_USAGE


class OneLineErrorParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"error: {message} (see --help)\n")  # one line, like every other error here


def factor_arg(text: str) -> Factor:
    """argparse type for --factor: a Factor, or argparse's own one-line error."""
    try:
        return Factor.parse(text)
    except SrcnnError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = OneLineErrorParser(
        description="Super-resolve an image with SRCNN at runtime upscale factors: PyTorch, then one ONNX export "
        "(traced at x3), then ONNX Runtime at every factor, compared with PyTorch.",
        epilog=f"exit codes: {EXIT_OK} all factors match within {PARITY_ATOL:g}; {EXIT_MISMATCH} ONNX Runtime and "
        f"PyTorch differ by more; {EXIT_USAGE} bad input or unavailable device (one-line message on stderr); "
        f"{EXIT_SKIPPED} some images of a folder were skipped; {EXIT_INTERRUPTED} interrupted (Ctrl-C)",
    )
    parser.add_argument(
        "--image", type=Path, default=DEFAULT_IMAGE, metavar="PATH",
        help="image to upscale, or a folder: every image in it (grey, colour or with alpha; 8 or 16 bits; results"
        " keep the format) (default: face.png beside this script)",
    )
    parser.add_argument(
        "--factor", type=factor_arg, action="append", metavar="F",
        help=f"upscale factor, repeatable: a number (3, 2.5) or HEIGHTxWIDTH (5x6), each >= {MIN_FACTOR:g} "
        f"(default: {' and '.join(DEFAULT_FACTORS)})",
    )
    parser.add_argument(
        "--device", choices=["cpu", "cuda"], default="cpu",
        help="where PyTorch and ONNX Runtime run; cuda needs requirements-gpu.txt (default: %(default)s)",
    )
    parser.add_argument(
        "--exporter", choices=EXPORTERS, default="torchscript",
        help="torchscript: the tutorial's dynamo=False exporter; dynamo: the torch.export-based one "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--opset", type=int, metavar="N",
        help=f"ONNX opset (default: {MIN_OPSET['torchscript']} for torchscript, {MIN_OPSET['dynamo']} for dynamo)",
    )
    parser.add_argument(
        "--weights", type=Path, metavar="PATH",
        help="state dict or mmediting/mmagic SRCNN checkpoint (default: weights/srcnn_dynamic.pth, made by "
        "train.py; a seeded random initialisation if that file is missing)",
    )
    parser.add_argument(
        "--onnx", type=Path, metavar="PATH",
        help="run this exported model (inputs `input` and `factor`) instead of exporting one",
    )
    parser.add_argument(
        "--output-dir", type=Path, default=Path("outputs"), metavar="DIR",
        help="where the ONNX model and images go (default: %(default)s)",
    )
    parser.add_argument(
        "--tile", type=int, metavar="N",
        help=f"run the convolutions in tiles of NxN output pixels to bound memory; 0: never (default: tiles of"
        f" {DEFAULT_TILE} for outputs over {TILE_ABOVE_PIXELS:,} pixels; the result is the same either way)",
    )
    parser.add_argument(
        "--ort-resize", choices=ORT_RESIZES, default="matmul",
        help="how ONNX Runtime computes the bicubic resize: matmul, the graph rewritten to two matrix products"
        " (faster; the file keeps its Resize); resize, the exported graph as it is (default: %(default)s)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging, with exporter tracebacks")
    args = parser.parse_args(argv)
    if args.factor is None:
        args.factor = [Factor.parse(f) for f in DEFAULT_FACTORS]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # Our status lines at INFO; other libraries' (onnxscript's graph passes) only at WARNING unless --verbose.
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    log.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        report = run(
            args.image,
            args.factor,
            output_dir=args.output_dir,
            device=args.device,
            exporter=args.exporter,
            opset=args.opset,
            weights=args.weights,
            tile=args.tile,
            ort_resize=args.ort_resize,
            onnx_model=args.onnx,
        )
    except (SrcnnError, KeyboardInterrupt) as exc:
        return exit_code_for(exc)
    if report.rows:
        print(format_table(report.rows))
    if failed := [r for r in report.rows if not r.ok]:
        worst = max(failed, key=lambda r: r.max_abs_diff)
        log.error("ONNX Runtime differs from PyTorch by %.2e (> %g) on %s at x%s", worst.max_abs_diff, PARITY_ATOL,
                  worst.image, worst.factor.tag)
        return EXIT_MISMATCH
    if report.skipped:
        log.error("%d of %d images skipped: %s", len(report.skipped), len(report.skipped) + len({r.image for r in report.rows}),
                  "; ".join(f"{p.name}: {why}" for p, why in report.skipped))
        return EXIT_SKIPPED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
