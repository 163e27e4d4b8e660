"""ONNX Runtime as the product runs it: sessions on the graph's parts, the Resize form chosen by size, tiles.

Imports neither torch nor onnx: the parts arrive serialized (srcnn.graph builds them, srcnn.cache keeps them).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from srcnn.core import ORT_RESIZES, Device, Factor, OrtResize, SrcnnError
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
CUDA_PROVIDER, CPU_PROVIDER = "CUDAExecutionProvider", "CPUExecutionProvider"
GPU_INSTALL_HINT = "in a separate virtual environment: pip install -r requirements-gpu.txt"
CUDA_ALLOW_TF32 = False  # TF32 convolutions (10-bit mantissa) put the runtimes ~1e-3 apart: parity is float32


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


def check_device(device: Device) -> None:
    """Fail early, in one line, when CUDA is asked for but this ONNX Runtime cannot use it."""
    if device == "cuda" and CUDA_PROVIDER not in (have := ort.get_available_providers()):
        raise SrcnnError(f"--device cuda: this onnxruntime has no {CUDA_PROVIDER} (it has {', '.join(have)});"
                         f" install onnxruntime-gpu {GPU_INSTALL_HINT}")


def create_session(model: bytes, device: Device = "cpu", threads: int = 0, arena: bool = True) -> ort.InferenceSession:
    """An ONNX Runtime session on exactly `device` (never a silent fallback) with `threads` intra-op threads; arena
    False gives the memory of each run back when it ends."""
    check_device(device)
    options = ort.SessionOptions()
    # The default, stated because it matters: ENABLE_ALL's NCHWc layout makes the convolutions fast (docs/speed.md).
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads  # 0: ONNX Runtime's choice, one per physical core
    # The arena keeps what a run allocated for the next: right for the convolutions, run tile after tile, but
    # the upsampling runs once per image and its peak (1.5 GB for a 48-megapixel result) would stay held.
    options.enable_cpu_mem_arena = arena
    wanted = CUDA_PROVIDER if device == "cuda" else CPU_PROVIDER
    providers = [(CUDA_PROVIDER, {"use_tf32": int(CUDA_ALLOW_TF32)})] if device == "cuda" else [CPU_PROVIDER]
    session = ort.InferenceSession(model, options, providers=providers)  # may quietly fall back to the CPU...
    if session.get_providers()[0] != wanted:  # ...e.g. when the CUDA libraries fail to load: refuse
        raise SrcnnError(f"--device {device}: ONNX Runtime created the session with {session.get_providers()}, not"
                         f" {wanted} (are the CUDA and cuDNN libraries installed? {GPU_INSTALL_HINT})")
    return session


def factor_input(factor: Factor) -> np.ndarray:
    """The graph's `factor` input: [1, 1, fh, fw] float32, shape (4,)."""
    return np.array([1.0, 1.0, factor.height, factor.width], dtype=np.float32)


def run_session(session: ort.InferenceSession, image: np.ndarray, factor: Factor) -> np.ndarray:
    """(N, 3, H, W) float32 and the factor -> the session's first output. Input names are read from the session."""
    names = [i.name for i in session.get_inputs()]
    feeds = {names[0]: np.ascontiguousarray(image, dtype=np.float32)}
    if len(names) > 1:
        feeds[names[1]] = factor_input(factor)
    return session.run(None, feeds)[0]


class OrtRunner:
    """The graph in ONNX Runtime, its Resize in the form `resize` chooses for each image, whole or tiled.

    Sessions are made on first use and kept: the upsampling in each form used, and the convolutions, which run on
    the whole upsampled image or tile by tile (tiling.refine_in_tiles, the loop PyTorch uses too).
    """

    def __init__(self, parts: GraphParts, device: Device = "cpu", *, resize: OrtResize = "auto",
                 threads: int = 0, progress: bool = True) -> None:
        if resize not in ORT_RESIZES:
            raise SrcnnError(f"resize {resize!r}: expected one of {', '.join(ORT_RESIZES)}")
        if resize != "auto" and resize not in parts.upsample:
            raise SrcnnError(f"--ort-resize {resize}: this graph's Resize is already rewritten as matrix products;"
                             " use --ort-resize auto")
        self.parts, self.device, self.resize, self.threads, self.progress = parts, device, resize, threads, progress
        self._sessions: dict[str, ort.InferenceSession] = {}
        # fails early: a missing GPU, a broken file
        self.providers = self._refine_session(Factor(1.0, 1.0)).get_providers()

    @property
    def halo(self) -> int:
        return self.parts.halo

    def _session(self, name: str) -> ort.InferenceSession:
        """The session of one form's upsampling, made once."""
        if name not in self._sessions:
            self._sessions[name] = create_session(self.parts.upsample[name], self.device, self.threads, arena=False)
        return self._sessions[name]

    def _refine_session(self, factor: Factor) -> ort.InferenceSession:
        """The session of the convolutions, made once (a steered graph's: once per factor, specialise())."""
        name = f"refine x{factor.tag}" if self.parts.steered else "refine"
        if name not in self._sessions:
            model = specialise(self.parts.refine, factor) if self.parts.steered else self.parts.refine
            self._sessions[name] = create_session(model, self.device, self.threads, arena=True)
        return self._sessions[name]

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
        return run_session(self._session(self.form(*image.shape[2:], factor)), image, factor)

    def __call__(self, image: np.ndarray, factor: Factor, tile: int | None = None) -> np.ndarray:
        """(N, 3, H, W) float32 -> (N, 3, floor(H*fh), floor(W*fw)), unclamped."""
        upsampled = self.upsample(image, factor)  # (N, 3, H', W')
        refine_session = self._refine_session(factor)
        name = refine_session.get_inputs()[0].name

        def refine(crop: np.ndarray) -> np.ndarray:
            return refine_session.run(None, {name: np.ascontiguousarray(crop)})[0]

        if tile is None:
            return refine(upsampled)
        return refine_in_tiles(refine, upsampled, np.empty_like(upsampled), tile, self.halo, self.progress)


def upscale_alpha(runner: OrtRunner, alpha: np.ndarray, factor: Factor) -> np.ndarray:
    """(1, 1, H, W) alpha -> (1, 1, H', W'): the graph's own bicubic (on 3 copies, its input's channels), clamped."""
    return np.clip(runner.upsample(np.repeat(alpha, 3, axis=1), factor)[:, :1], 0.0, 1.0)
