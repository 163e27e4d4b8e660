"""ONNX Runtime as the product runs it: the rewritten Resize (by size), tiles, and models given with --onnx."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
import onnxruntime as ort

import srcnn_dynamic as sd
from srcnn.rewrite import resize_as_gather, resize_as_matmul
from srcnn.tiling import refine_in_tiles

# How ONNX Runtime computes the bicubic Resize. ORT's own cubic Resize is a scalar loop; the rewrites compute the
# same bicubic as two matrix products (fastest, but the matrices are output side x input side: gigabytes for a
# 4000x20 image) or as four weighted Gathers per axis (memory follows the output alone). auto picks by size.
OrtResize = Literal["auto", "matmul", "gather", "resize"]
ORT_RESIZES: tuple[OrtResize, ...] = ("auto", "matmul", "gather", "resize")  # resize: the graph as exported
REWRITES: dict[str, Callable[[onnx.ModelProto], onnx.ModelProto]] = {
    "matmul": resize_as_matmul, "gather": resize_as_gather, "resize": lambda proto: proto,
}
# auto: matrix products while both matrices hold at most this many weights together (their construction peaks at
# about 11 bytes a weight per float: some 700 MB here); longer sides use the Gathers (measured: docs/speed.md).
MATMUL_MAX_WEIGHTS = 16 * 2**20


def resize_form(resize: OrtResize, height: int, width: int, factor: sd.Factor) -> str:
    """The concrete form ("matmul", "gather" or "resize") that `resize` means for a height x width image."""
    if resize != "auto":
        return resize
    out_h, out_w = factor.output_size(height, width)
    return "matmul" if out_h * height + out_w * width <= MATMUL_MAX_WEIGHTS else "gather"


def resize_keeps_the_size(height: int, width: int, factor: sd.Factor) -> bool:
    """True when a factor other than 1x1 leaves the image's size unchanged (floor(L * f) == L on both axes).

    ONNX Runtime's Resize (1.32) then returns its input unchanged instead of sampling at (x + 0.5) / f - 0.5 as
    the ONNX spec and PyTorch do, so the graph *as exported* differs from PyTorch; the default matmul rewrite
    follows the spec. It needs f < 1 + 1/L on both axes: tiny images or factors very near 1.
    """
    return factor.output_size(height, width) == (height, width) and (factor.height, factor.width) != (1.0, 1.0)


def create_session(proto: onnx.ModelProto, device: sd.Device = "cpu", *, resize: str = "matmul",
                   threads: int = 0) -> ort.InferenceSession:
    """sd.create_session on the graph with its Resize in one concrete form (REWRITES), rewritten in memory."""
    if resize not in REWRITES:
        raise sd.SrcnnError(f"resize {resize!r}: expected one of {', '.join(REWRITES)}")
    return sd.create_session(REWRITES[resize](proto), device, threads)


MAX_ONNX_BYTES = 16 * 2**20  # the exported model is 80 KB: a larger file is not this project's
PROBE = (8, 8, sd.Factor(2.0, 2.0))  # a tiny run that any model of this project's graph must survive


def load_onnx(path: Path) -> onnx.ModelProto:
    """Read a model given with --onnx, refusing in one line a file that is missing, too large, not ours or not
    runnable here (opset, IR version, weights in Constant nodes, other channels or output shape)."""
    if not path.is_file():  # a FIFO or a device would block onnx.load
        raise sd.SrcnnError(f"--onnx {path} is not a file" if path.exists() else f"ONNX model not found: {path}")
    if (size := path.stat().st_size) > MAX_ONNX_BYTES:
        raise sd.SrcnnError(f"--onnx {path} has {size:,} bytes, over the limit of {MAX_ONNX_BYTES:,}")
    try:
        proto = onnx.load(path, load_external_data=False)  # external data is refused below, never read
    except Exception as exc:  # protobuf's DecodeError and friends: the file is not an ONNX model
        message = f"{path} is not a readable ONNX model ({type(exc).__name__}: {exc})"
        raise sd.SrcnnError(message.splitlines()[0]) from None
    if problems := sd.graph_problems(proto) + _weight_problems(proto):
        raise sd.SrcnnError(f"--onnx {path} is not this project's dynamic-factor model: {'; '.join(problems)} (export"
                            " one with python srcnn_dynamic.py, which writes srcnn3.onnx)")
    _check_runnable(proto, path)
    return proto


def _weight_problems(proto: onnx.ModelProto) -> list[str]:
    """How the graph's convolutions differ from SuperResolutionNet's: count, weights held in the file, shapes."""
    if any(onnx.external_data_helper.uses_external_data(t) for t in proto.graph.initializer):
        return ["its weights are stored in external data files"]
    shapes = {t.name: tuple(t.dims) for t in proto.graph.initializer}
    expected = [tuple(conv.weight.shape) for conv in sd.SuperResolutionNet().children() if hasattr(conv, "weight")]
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    if len(convs) != len(expected):
        return [f"it has {len(convs)} Conv nodes, expected {len(expected)}"]
    if missing := [n.name or n.output[0] for n in convs if n.input[1] not in shapes]:
        return [f"the weights of {', '.join(missing)} are not initializers (held in Constant nodes?)"]
    return [f"Conv {n.name or n.output[0]} has weights of shape {shapes[n.input[1]]}, the model needs {want}"
            for n, want in zip(convs, expected, strict=True) if shapes[n.input[1]] != want]


def _check_runnable(proto: onnx.ModelProto, path: Path) -> None:
    """Run the model once on a tiny image in ONNX Runtime, as exported; refuse it if that fails or looks wrong."""
    height, width, factor = PROBE
    try:
        out = sd.run_session(sd.create_session(proto), np.full((1, 3, height, width), 0.5, np.float32), factor)
    except Exception as exc:  # ORT's own errors: opset or IR version it does not know, invalid graphs...
        reason = (str(exc).strip() or type(exc).__name__).splitlines()[0]
        raise sd.SrcnnError(f"--onnx {path} cannot run in ONNX Runtime {ort.__version__}: {reason}") from None
    expected = (1, 3, *factor.output_size(height, width))
    if out.shape != expected or not np.isfinite(out).all():
        raise sd.SrcnnError(f"--onnx {path} gives an output of shape {out.shape} (all finite:"
                            f" {bool(np.isfinite(out).all())}) on a {height}x{width} image at x{factor.tag};"
                            f" this project's model gives {expected}, finite")


def split_at_resize(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """(input, factor) -> upsampled, and upsampled -> output: the checked graph cut at its one Resize's output."""
    (upsampled,) = [n.output[0] for n in proto.graph.node if n.op_type == "Resize"]
    extractor = onnx.utils.Extractor(onnx.shape_inference.infer_shapes(proto))
    return (extractor.extract_model(list(sd.INPUT_NAMES), [upsampled]),
            extractor.extract_model([upsampled], [sd.OUTPUT_NAME]))


class OrtRunner:
    """The exported model in ONNX Runtime, its Resize in the form `resize` chooses for each image, whole or tiled.

    Sessions are made on first use and kept, one per (form, part). Tiled runs split the graph at its Resize
    (split_at_resize) into an upsample part and a refine part, and refine tile by tile with the loop PyTorch
    uses (tiling.refine_in_tiles).
    """

    def __init__(self, proto: onnx.ModelProto, halo: int, device: sd.Device = "cpu", *,
                 resize: OrtResize = "auto", threads: int = 0) -> None:
        if resize not in ORT_RESIZES:
            raise sd.SrcnnError(f"resize {resize!r}: expected one of {', '.join(ORT_RESIZES)}")
        self.proto, self.halo, self.device, self.resize, self.threads = proto, halo, device, resize, threads
        self._parts: dict[str, onnx.ModelProto] = {}
        self._sessions: dict[tuple[str, str], ort.InferenceSession] = {}
        self.providers = self.session("resize" if resize == "resize" else "matmul").get_providers()  # fails early

    def session(self, form: str, part: str = "whole") -> ort.InferenceSession:
        """The session of `part` ("whole", "upsample" or "refine") with its Resize in `form`, made once."""
        if (form, part) not in self._sessions:
            if part != "whole" and not self._parts:
                self._parts = dict(zip(("upsample", "refine"), split_at_resize(self.proto), strict=True))
            proto = self.proto if part == "whole" else self._parts[part]
            self._sessions[form, part] = create_session(proto, self.device, resize=form, threads=self.threads)
        return self._sessions[form, part]

    def __call__(self, image: np.ndarray, factor: sd.Factor, tile: int | None = None) -> np.ndarray:
        """(N, 3, H, W) float32 -> (N, 3, floor(H*fh), floor(W*fw))."""
        form = resize_form(self.resize, image.shape[2], image.shape[3], factor)
        if tile is None:
            return sd.run_session(self.session(form), image, factor)
        upsampled = sd.run_session(self.session(form, "upsample"), image, factor)  # (N, 3, H', W')
        refine_session = self.session("resize", "refine")  # no Resize in it
        name = refine_session.get_inputs()[0].name

        def refine(crop: np.ndarray) -> np.ndarray:
            return refine_session.run(None, {name: np.ascontiguousarray(crop)})[0]

        return refine_in_tiles(refine, upsampled, np.empty_like(upsampled), tile, self.halo)
