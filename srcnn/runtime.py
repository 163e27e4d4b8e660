"""The runtime seam: what every runtime runs (the graph's parts) and how (Runner); srcnn.runtimes lists them.

A runtime is one file, a Runner subclass that makes its compiled parts and runs them (srcnn.ort_runtime,
srcnn.openvino_runtime), and one srcnn.runtimes entry. The Resize form chosen by size, the tiles and the alpha
channel are here, shared. Imports neither torch nor onnx nor any runtime: the parts arrive serialized (srcnn.graph
builds them, srcnn.cache keeps them).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from srcnn.core import ORT_RESIZES, PRECISIONS, Device, Factor, OrtResize, Precision, SrcnnError
from srcnn.tiling import refine_in_tiles

log = logging.getLogger("srcnn")

# How ONNX Runtime computes the bicubic Resize (core.ORT_RESIZES). ORT's own cubic Resize is a scalar loop; the
# rewrites compute the same bicubic as two matrix products (fastest, but the matrices are output side x input side:
# gigabytes for a 4000x20 image) or as four weighted Gathers per axis (memory follows the output alone).
FORMS = ("matmul", "gather", "resize")  # the concrete forms a graph's parts come in
# auto: the form that needs less memory. Measured (docs/speed.md), the matrix products peak at about 30 bytes per
# weight of their two matrices and the gathers at about 80 bytes per output pixel: so matrix products while their
# weights number at most this many times the output's pixels (a photo at x2: about 1), gathers for long sides.
MATMUL_WEIGHTS_PER_OUTPUT_PIXEL = 2.5


@dataclass(frozen=True)
class GraphParts:
    """The graph the product runs, serialized: its upsampling in each form it has, its convolutions, their halo."""

    upsample: dict[str, bytes]  # form -> (input, factor) -> the upsampled image, (N, 3, H', W')
    refine: bytes  # the upsampled image -> output: the convolutions, no Resize
    fast: bytes  # the whole graph with its Resize as matrix products: what --save-onnx writes
    halo: int  # how far an output pixel of the convolutions sees (the sum of their kernel radii)
    # True when the factor steers the convolutions (the factor-aware model): `refine` then holds the factor as a
    # constant, FACTOR_SENTINEL, which specialise() writes over for each factor (see there)
    steered: bool = False


# The stand-in for the factor in a steered graph's convolutions: 16 bytes that occur once in the serialized part
FACTOR_SENTINEL = np.frombuffer(b"srcnn's factor!\0", dtype=np.float32)


def specialise(refine: bytes, factor: Factor) -> bytes:
    """A steered graph's convolutions with the factor written in as a constant.

    Fed as an input, the factor reaches the convolutions' weights through the factor-aware model's blend, and ONNX
    Runtime runs convolutions whose weights are not constants: it blends and reorders them into the blocked layout
    of its fast convolutions on every run (docs/speed.md). Held as a constant, the blend is folded into constant
    weights when the session is made: the tutorial model's speed, for a session of a few milliseconds per factor.
    OpenVINO folds it alike when it compiles.
    The 16 bytes of FACTOR_SENTINEL are the raw data of that constant.
    """
    sentinel = FACTOR_SENTINEL.tobytes()
    assert refine.count(sentinel) == 1, "a steered part holds its factor sentinel once"
    return refine.replace(sentinel, factor_input(factor).tobytes())


def resize_form(resize: OrtResize, height: int, width: int, factor: Factor) -> str:
    """The concrete form ("matmul", "gather" or "resize") that `resize` means for a height x width image."""
    if resize != "auto":
        return resize
    out_h, out_w = factor.output_size(height, width)
    weights = out_h * height + out_w * width  # Mh (H', H) and Mw (W', W)
    return "matmul" if weights <= MATMUL_WEIGHTS_PER_OUTPUT_PIXEL * out_h * out_w else "gather"


def resize_keeps_the_size(height: int, width: int, factor: Factor) -> bool:
    """True when a factor other than 1x1 leaves the image's size unchanged (floor(L * f) == L on both axes).

    ONNX Runtime's Resize (1.32) then returns its input unchanged instead of sampling at (x + 0.5) / f - 0.5 as
    the ONNX spec and PyTorch do, so the graph *as exported* differs from PyTorch; the default matmul rewrite
    follows the spec. It needs f < 1 + 1/L on both axes: tiny images or factors very near 1.
    """
    return factor.output_size(height, width) == (height, width) and (factor.height, factor.width) != (1.0, 1.0)


def factor_input(factor: Factor) -> np.ndarray:
    """The graph's `factor` input: [1, 1, fh, fw] float32, shape (4,)."""
    return np.array([1.0, 1.0, factor.height, factor.width], dtype=np.float32)


class Runner(ABC):
    """The graph's parts in one runtime: its Resize in the form `resize` chooses for each image, then the
    convolutions on the whole upsampled image or tile by tile (tiling.refine_in_tiles, the loop PyTorch uses too).

    A runtime says what it can run before any work (check), starts (_start: its first compiled part, so that a
    missing device or a broken file fails at once), and runs the upsampling in a form (upsample_in) and the
    convolutions at a factor (refiner); compiled parts are made on first use and kept in `_sessions`.
    """

    name: ClassVar[str]  # as --runtime takes it
    label: ClassVar[str]  # in logs
    tag: ClassVar[str]  # in tables' headers, short: "ORT", as the tutorial's table says

    def __init__(self, parts: GraphParts, device: Device = "cpu", *, resize: OrtResize = "auto",
                 precision: Precision = "fp32", threads: int = 0, progress: bool = True) -> None:
        if resize not in ORT_RESIZES:
            raise SrcnnError(f"resize {resize!r}: expected one of {', '.join(ORT_RESIZES)}")
        if precision not in PRECISIONS:
            raise SrcnnError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
        if resize != "auto" and resize not in parts.upsample:
            raise SrcnnError(f"--ort-resize {resize}: this graph's Resize is already rewritten as matrix products;"
                             " use --ort-resize auto")
        self.check(device, precision)
        self.parts, self.device, self.resize, self.precision = parts, device, resize, precision
        self.threads, self.progress = threads, progress
        self._sessions: dict[str, Any] = {}  # compiled parts by name, made on first use
        self.where = self._start()  # what runs the graph: a provider, a device, its precision

    @classmethod
    @abstractmethod
    def check(cls, device: Device, precision: Precision) -> None:
        """Refuse, in one line and before any work, a device or precision this runtime cannot run here."""

    @classmethod
    @abstractmethod
    def whole(cls, model: bytes, device: Device, precision: Precision = "fp32",
              threads: int = 0) -> Callable[[np.ndarray, Factor], np.ndarray]:
        """A whole graph (inputs `input` and `factor`) in one compiled model, as a plain user of the runtime runs a
        file: (N, 3, H, W), factor -> (N, 3, H', W'). For benchmarks and tests of the graph as exported."""

    @abstractmethod
    def _start(self) -> str:
        """Make the first compiled part (failing early) and say what runs it."""

    @abstractmethod
    def upsample_in(self, form: str, image: np.ndarray, factor: Factor) -> np.ndarray:
        """The upsampling part in `form`: (N, 3, H, W) -> (N, 3, floor(H*fh), floor(W*fw)), in float32."""

    @abstractmethod
    def refiner(self, factor: Factor) -> Callable[[np.ndarray], np.ndarray]:
        """The convolutions at `factor`: (N, 3, h, w) -> (N, 3, h, w), for a whole image or a tile."""

    @property
    def halo(self) -> int:
        return self.parts.halo

    def form(self, height: int, width: int, factor: Factor) -> str:
        """The form of the Resize for this image and factor, among those the graph has."""
        form = resize_form(self.resize, height, width, factor)
        if form in self.parts.upsample:
            return form
        out_h, out_w = factor.output_size(height, width)  # auto chose the gathers: the matrices would be huge
        raise SrcnnError(f"{height}x{width} at x{factor.tag}: as matrix products, the only form of this graph (a"
                         f" --save-onnx file), the resize would hold {out_h * height + out_w * width:,} weights;"
                         " run it without --onnx, where the cached graph takes the gathers")

    def upsample(self, image: np.ndarray, factor: Factor) -> np.ndarray:
        """(N, 3, H, W) -> (N, 3, floor(H*fh), floor(W*fw)): the graph's bicubic alone."""
        return self.upsample_in(self.form(*image.shape[2:], factor), image, factor)

    def __call__(self, image: np.ndarray, factor: Factor, tile: int | None = None) -> np.ndarray:
        """(N, 3, H, W) float32 -> (N, 3, floor(H*fh), floor(W*fw)), unclamped."""
        upsampled = self.upsample(image, factor)  # (N, 3, H', W')
        refine = self.refiner(factor)
        if tile is None:
            return refine(upsampled)
        return refine_in_tiles(refine, upsampled, np.empty_like(upsampled), tile, self.halo, self.progress)


def upscale_alpha(runner: Runner, alpha: np.ndarray, factor: Factor) -> np.ndarray:
    """(1, 1, H, W) alpha -> (1, 1, H', W'): the graph's own bicubic (on 3 copies, its input's channels), clamped."""
    return np.clip(runner.upsample(np.repeat(alpha, 3, axis=1), factor)[:, :1], 0.0, 1.0)
