"""ONNX Runtime, the default runtime: sessions on the graph's parts, on exactly the device asked for.

Imports neither torch nor onnx: the parts arrive serialized (srcnn.graph builds them, srcnn.cache keeps them).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnxruntime as ort

from srcnn.core import Device, Factor, Precision, SrcnnError
from srcnn.runtime import Runner, factor_input, specialise

CUDA_PROVIDER, CPU_PROVIDER = "CUDAExecutionProvider", "CPUExecutionProvider"
GPU_INSTALL_HINT = "in a separate virtual environment: pip install -r requirements-gpu.txt"
CUDA_ALLOW_TF32 = False  # TF32 convolutions (10-bit mantissa) put the runtimes ~1e-3 apart: parity is float32


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


def run_session(session: ort.InferenceSession, image: np.ndarray, factor: Factor) -> np.ndarray:
    """(N, 3, H, W) float32 and the factor -> the session's first output. Input names are read from the session."""
    names = [i.name for i in session.get_inputs()]
    feeds = {names[0]: np.ascontiguousarray(image, dtype=np.float32)}
    if len(names) > 1:
        feeds[names[1]] = factor_input(factor)
    return session.run(None, feeds)[0]


class OrtRunner(Runner):
    """The graph's parts in ONNX Runtime sessions, made on first use and kept: the upsampling in each form used
    (its memory given back after each run), and the convolutions (a steered graph's: once per factor)."""

    name, label, tag = "ort", "ONNX Runtime", "ORT"

    @classmethod
    def check(cls, device: Device, precision: Precision) -> None:
        check_device(device)
        if precision != "fp32":
            raise SrcnnError(f"--precision {precision}: ONNX Runtime runs this graph in float32 only (its CPU"
                             " convolutions have no bfloat16 kernels); --runtime openvino runs bf16 on CPUs that have"
                             " it")

    @classmethod
    def whole(cls, model: bytes, device: Device, precision: Precision = "fp32",
              threads: int = 0) -> Callable[[np.ndarray, Factor], np.ndarray]:
        cls.check(device, precision)
        session = create_session(model, device, threads)
        return lambda image, factor: run_session(session, image, factor)

    def _start(self) -> str:
        return self._refine_session(Factor(1.0, 1.0)).get_providers()[0]  # fails early: a missing GPU, a broken file

    def _session(self, form: str) -> ort.InferenceSession:
        if form not in self._sessions:
            self._sessions[form] = create_session(self.parts.upsample[form], self.device, self.threads, arena=False)
        return self._sessions[form]

    def _refine_session(self, factor: Factor) -> ort.InferenceSession:
        name = f"refine x{factor.tag}" if self.parts.steered else "refine"
        if name not in self._sessions:
            model = specialise(self.parts.refine, factor) if self.parts.steered else self.parts.refine
            self._sessions[name] = create_session(model, self.device, self.threads, arena=True)
        return self._sessions[name]

    def upsample_in(self, form: str, image: np.ndarray, factor: Factor) -> np.ndarray:
        return run_session(self._session(form), image, factor)

    def refiner(self, factor: Factor) -> Callable[[np.ndarray], np.ndarray]:
        session = self._refine_session(factor)
        name = session.get_inputs()[0].name
        return lambda crop: session.run(None, {name: np.ascontiguousarray(crop)})[0]
