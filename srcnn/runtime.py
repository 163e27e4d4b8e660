"""ONNX Runtime as the product runs it: the Resize-as-matmul rewrite, tiles, and models given with --onnx."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import onnx
import onnxruntime as ort

import srcnn_dynamic as sd
from srcnn.rewrite import resize_as_matmul
from srcnn.tiling import refine_in_tiles

OrtResize = Literal["matmul", "resize"]
ORT_RESIZES: tuple[OrtResize, ...] = ("matmul", "resize")  # matmul: the rewrite (default); resize: as exported


def resize_keeps_the_size(height: int, width: int, factor: sd.Factor) -> bool:
    """True when a factor other than 1x1 leaves the image's size unchanged (floor(L * f) == L on both axes).

    ONNX Runtime's Resize (1.32) then returns its input unchanged instead of sampling at (x + 0.5) / f - 0.5 as
    the ONNX spec and PyTorch do, so the graph *as exported* differs from PyTorch; the default matmul rewrite
    follows the spec. It needs f < 1 + 1/L on both axes: tiny images or factors very near 1.
    """
    return factor.output_size(height, width) == (height, width) and (factor.height, factor.width) != (1.0, 1.0)


def create_session(proto: onnx.ModelProto, device: sd.Device = "cpu", *, resize: OrtResize = "matmul",
                   threads: int = 0) -> ort.InferenceSession:
    """sd.create_session on the graph as exported (resize="resize") or with resize_as_matmul applied in memory."""
    if resize not in ORT_RESIZES:
        raise sd.SrcnnError(f"resize {resize!r}: expected one of {', '.join(ORT_RESIZES)}")
    return sd.create_session(resize_as_matmul(proto) if resize == "matmul" else proto, device, threads)


def load_onnx(path: Path) -> onnx.ModelProto:
    """Read a model given with --onnx, refusing in one line a file that is missing, unreadable or not ours."""
    if not path.is_file():
        raise sd.SrcnnError(f"ONNX model not found: {path}")
    try:
        proto = onnx.load(path)
    except Exception as exc:  # protobuf's DecodeError and friends: the file is not an ONNX model
        message = f"{path} is not a readable ONNX model ({type(exc).__name__}: {exc})"
        raise sd.SrcnnError(message.splitlines()[0]) from None
    if problems := sd.graph_problems(proto):
        raise sd.SrcnnError(f"--onnx {path} is not this project's dynamic-factor model: {'; '.join(problems)} (export"
                            " one with python srcnn_dynamic.py, which writes srcnn3.onnx)")
    return proto


def split_at_resize(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """(input, factor) -> upsampled, and upsampled -> output: the checked graph cut at its one Resize's output."""
    (upsampled,) = [n.output[0] for n in proto.graph.node if n.op_type == "Resize"]
    extractor = onnx.utils.Extractor(onnx.shape_inference.infer_shapes(proto))
    return (extractor.extract_model(list(sd.INPUT_NAMES), [upsampled]),
            extractor.extract_model([upsampled], [sd.OUTPUT_NAME]))


class OrtRunner:
    """The exported model in ONNX Runtime: the whole graph in one session, or tiled.

    Tiled runs split the graph at its Resize (split_at_resize) into an upsample session and a refine session,
    created on first use, and refine tile by tile with the loop PyTorch uses (tiling.refine_in_tiles).
    """

    def __init__(self, proto: onnx.ModelProto, halo: int, device: sd.Device = "cpu", *,
                 resize: OrtResize = "matmul", threads: int = 0) -> None:
        self.proto, self.halo, self.device, self.resize, self.threads = proto, halo, device, resize, threads
        self.session = create_session(proto, device, resize=resize, threads=threads)
        self._split: tuple[ort.InferenceSession, ort.InferenceSession] | None = None

    def __call__(self, image: np.ndarray, factor: sd.Factor, tile: int | None = None) -> np.ndarray:
        """(N, 3, H, W) float32 -> (N, 3, floor(H*fh), floor(W*fw))."""
        if tile is None:
            return sd.run_session(self.session, image, factor)
        if self._split is None:
            upsample, refine = split_at_resize(self.proto)
            self._split = (create_session(upsample, self.device, resize=self.resize, threads=self.threads),
                           create_session(refine, self.device, resize="resize", threads=self.threads))  # no Resize
        upsample_session, refine_session = self._split
        upsampled = sd.run_session(upsample_session, image, factor)  # (N, 3, H', W')
        name = refine_session.get_inputs()[0].name

        def refine(crop: np.ndarray) -> np.ndarray:
            return refine_session.run(None, {name: np.ascontiguousarray(crop)})[0]

        return refine_in_tiles(refine, upsampled, np.empty_like(upsampled), tile, self.halo)
