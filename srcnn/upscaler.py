"""The Python API: build an upscaler once, call it on arrays. Picklable, so process pools and Ray can ship it.

    from srcnn import Upscaler
    upscaler = Upscaler()            # the shipped model, ONNX Runtime on the CPU
    big = upscaler(rgb, 2.5)         # (H, W, 3) uint8 RGB -> (floor(2.5 H), floor(2.5 W), 3) uint8
    Upscaler(runtime="openvino")     # the same graph in OpenVINO

Like `python -m srcnn`, it runs the cached graph (built once, with PyTorch, the first time) in a runtime (ONNX
Runtime by default), tiles large outputs, and upscales an alpha channel with the same bicubic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from srcnn import cache
from srcnn.core import DEVICES, MAX_OUTPUT_PIXELS, PRECISIONS, Device, Factor, Precision, SrcnnError, check_output_size
from srcnn.models import DEFAULT_MODEL, model_kind
from srcnn.runtime import Runner, upscale_alpha
from srcnn.runtimes import DEFAULT_RUNTIME, create_runner, runtime_class
from srcnn.tiling import MAX_TILED_OUTPUT_PIXELS, check_tile, choose_tile


class Upscaler:
    """An SRCNN upscaler: `Upscaler(...)(image, factor)`. Its runtime's sessions are made on the first call (and
    again after unpickling), never pickled: the object itself is a few settings."""

    def __init__(self, model: str = DEFAULT_MODEL, device: Device = "cpu", threads: int = 0, *,
                 weights: str | Path | None = None, onnx: str | Path | None = None, tile: int | None = None,
                 runtime: str = DEFAULT_RUNTIME, precision: Precision = "fp32") -> None:
        """model: a srcnn.models name (default: what python -m srcnn runs). device: "cpu" or "cuda" (never a silent
        fallback). threads: the runtime's threads (0: one per core). weights: another weights file for the model;
        onnx: run this graph file instead (one written by --save-onnx). tile: as --tile (None: tiles for large
        outputs only; 0: never). runtime: a srcnn.runtimes name; precision: "fp32" or "bf16" (its convolutions)."""
        model_kind(model)  # a name the registry knows, refused in one line otherwise
        if device not in DEVICES:
            raise SrcnnError(f"device {device!r}: expected one of {', '.join(DEVICES)}")
        if weights is not None and onnx is not None:
            raise SrcnnError("weights and onnx: an ONNX file holds its own weights; give one of them")
        if threads < 0:
            raise SrcnnError(f"threads {threads}: must be 0 (one per core) or more")
        if precision not in PRECISIONS:
            raise SrcnnError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
        runtime_class(runtime).check(device, precision)
        check_tile(tile)
        self.model, self.device, self.threads, self.tile = model, device, threads, tile
        self.runtime, self.precision = runtime, precision
        self.weights = None if weights is None else Path(weights)
        self.onnx = None if onnx is None else Path(onnx)
        self._runner: Runner | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_runner": None}  # sessions hold threads and native memory: rebuilt where used

    def __repr__(self) -> str:
        return (f"Upscaler(model={self.model!r}, device={self.device!r}, threads={self.threads},"
                f" runtime={self.runtime!r}, precision={self.precision!r})")

    @property
    def runner(self) -> Runner:
        """The graph in the runtime, made on first use: from the cache, or from the --onnx file."""
        if self._runner is None:
            if self.onnx is not None:
                from srcnn import graph  # onnx loads here, to check the user's file

                parts = graph.graph_parts(graph.load_onnx(self.onnx))
            else:
                parts = cache.graph_parts(self.weights, model=self.model)
            self._runner = create_runner(parts, self.runtime, self.device, threads=self.threads,
                                         precision=self.precision)
        return self._runner

    def __call__(self, image: np.ndarray, factor: float | str | tuple[float, float] | Factor) -> np.ndarray:
        """Upscale an (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA image by `factor` (2, 2.5, "5x6", (5, 6) for
        height and width, or a Factor).

        uint8 and uint16 images come back in their own type; float images are taken on [0, 1] and come back
        float32, clamped to [0, 1]. Channels are RGB: flip OpenCV's BGR first.
        """
        if isinstance(factor, tuple | list):
            factor = "x".join(map(str, factor))  # (5, 6) -> "5x6": parsed, and checked, like the command line's
        factor = factor if isinstance(factor, Factor) else Factor.parse(str(factor))
        pixels = np.asarray(image)
        if pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] not in (3, 4)):
            raise SrcnnError(f"an image of shape {pixels.shape}: expected (H, W), (H, W, 3) or (H, W, 4)")
        if not (np.issubdtype(pixels.dtype, np.floating) or pixels.dtype in (np.uint8, np.uint16)):
            raise SrcnnError(f"an image of {pixels.dtype}: expected uint8, uint16 or floats on [0, 1]")
        height, width = pixels.shape[:2]
        tile = choose_tile(height, width, factor, self.tile)
        check_output_size((height, width), factor, MAX_OUTPUT_PIXELS if tile is None else MAX_TILED_OUTPUT_PIXELS)
        peak = np.iinfo(pixels.dtype).max if pixels.dtype.kind == "u" else 1.0
        values = pixels.astype(np.float32) / np.float32(peak)
        values = values[:, :, None] if values.ndim == 2 else values
        rgb = np.repeat(values, 3, axis=2) if values.shape[2] == 1 else values[:, :, :3]
        out = self.runner(np.ascontiguousarray(rgb.transpose(2, 0, 1)[None]), factor, tile)  # (1, 3, H', W')
        result = np.clip(out[0].transpose(1, 2, 0), 0.0, 1.0)  # (H', W', 3)
        if pixels.ndim == 2:  # BT.601 luma, as the command line writes grey results
            result = cv2.cvtColor(result, cv2.COLOR_RGB2GRAY)
        elif pixels.shape[2] == 4:
            alpha = upscale_alpha(self.runner, np.ascontiguousarray(values[None, None, :, :, 3]), factor)
            result = np.dstack([result, alpha[0, 0]])
        if pixels.dtype.kind == "u":
            return np.rint(result * peak).astype(pixels.dtype)
        return result.astype(np.float32)
