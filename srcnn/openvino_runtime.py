"""OpenVINO: the same graph parts as ONNX Runtime runs, compiled for the CPU, in float32 or (convolutions) bfloat16.

OpenVINO reads the ONNX parts as they are, the `factor` input included. In bf16 only the convolutions are
compiled with OpenVINO's bf16 inference precision: the upsampling's interpolation weights and indices do not
survive bfloat16 (a result off by 1.5 on [0, 1]), so its part stays float32. Imports neither torch nor onnx.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import openvino as ov

from srcnn.core import Device, Factor, Precision, SrcnnError
from srcnn.runtime import Runner, factor_input, specialise

log = logging.getLogger("srcnn")

OV_DEVICE = "CPU"  # OpenVINO's GPU plugin is Intel's GPUs': NVIDIA cards take --runtime ort --device cuda
OV_PRECISION = {"fp32": "f32", "bf16": "bf16"}  # INFERENCE_PRECISION_HINT: stated always, since on CPUs with AMX
# OpenVINO's own default is bf16, which would put the fp32 path's parity out of reach
BF16_CAPABILITY = "BF16"  # in the CPU plugin's OPTIMIZATION_CAPABILITIES when it has AVX512-BF16 or AMX

_core: ov.Core | None = None


def ov_core() -> ov.Core:
    """The process's OpenVINO Core, made once (it loads the CPU plugin)."""
    global _core
    if _core is None:
        _core = ov.Core()
    return _core


def cpu_name() -> str:
    return str(ov_core().get_property(OV_DEVICE, "FULL_DEVICE_NAME")).strip()


def has_bf16() -> bool:
    """Whether OpenVINO computes bfloat16 on this CPU (AVX512-BF16 or AMX), as its CPU plugin reports."""
    return BF16_CAPABILITY in ov_core().get_property(OV_DEVICE, "OPTIMIZATION_CAPABILITIES")


def compile_part(model: bytes, what: str, precision: Precision, threads: int) -> ov.CompiledModel:
    """One serialized ONNX part compiled for the CPU at `precision`; a part OpenVINO cannot take, named in one line."""
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": OV_PRECISION[precision], "PERFORMANCE_HINT": "LATENCY"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    try:
        compiled = ov_core().compile_model(ov_core().read_model(model), OV_DEVICE, config)
    except RuntimeError as exc:
        reason = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise SrcnnError(f"OpenVINO {ov.__version__} cannot compile {what}: {reason}") from None
    actual = str(compiled.get_property("INFERENCE_PRECISION_HINT")).lower()  # it falls back to f32 silently
    if OV_PRECISION[precision] not in actual.replace("float32", "f32").replace("bfloat16", "bf16"):
        raise SrcnnError(f"--precision {precision}: OpenVINO compiled {what} in {actual} on {cpu_name()}")
    return compiled


class OpenVinoRunner(Runner):
    """The graph's parts compiled by OpenVINO for the CPU, made on first use and kept: the upsampling in each form
    used (always float32), and the convolutions (a steered graph's: once per factor) at the run's precision."""

    name, label, tag = "openvino", "OpenVINO", "OpenVINO"

    @classmethod
    def check(cls, device: Device, precision: Precision) -> None:
        if device != "cpu":
            raise SrcnnError(f"--device {device}: this project runs OpenVINO on the CPU; on an NVIDIA GPU use"
                             " --runtime ort")
        if precision == "bf16" and not has_bf16():
            raise SrcnnError(f"--precision bf16: this CPU ({cpu_name()}) has neither AVX512-BF16 nor AMX, so"
                             " OpenVINO would compute float32 anyway; use --precision fp32")

    @classmethod
    def whole(cls, model: bytes, device: Device, precision: Precision = "fp32",
              threads: int = 0) -> Callable[[np.ndarray, Factor], np.ndarray]:
        cls.check(device, precision)
        compiled = compile_part(model, "the graph", precision, threads)  # the upsampling too: fp32 is for parts
        return lambda image, factor: compiled([np.ascontiguousarray(image, dtype=np.float32), factor_input(factor)])[0]

    def _start(self) -> str:
        self._refine_model(Factor(1.0, 1.0))  # fails early: a broken file
        return f"{OV_DEVICE} ({cpu_name()}), {self.precision}"

    def _upsample_model(self, form: str) -> ov.CompiledModel:
        if form not in self._sessions:
            self._sessions[form] = compile_part(self.parts.upsample[form], f"the upsampling as {form}", "fp32",
                                                self.threads)
        return self._sessions[form]

    def _refine_model(self, factor: Factor) -> ov.CompiledModel:
        name = f"refine x{factor.tag}" if self.parts.steered else "refine"
        if name not in self._sessions:
            model = specialise(self.parts.refine, factor) if self.parts.steered else self.parts.refine
            self._sessions[name] = compile_part(model, "the convolutions", self.precision, self.threads)
        return self._sessions[name]

    def upsample_in(self, form: str, image: np.ndarray, factor: Factor) -> np.ndarray:
        compiled = self._upsample_model(form)
        return compiled([np.ascontiguousarray(image, dtype=np.float32), factor_input(factor)])[0]

    def refiner(self, factor: Factor) -> Callable[[np.ndarray], np.ndarray]:
        compiled = self._refine_model(factor)
        return lambda crop: compiled([np.ascontiguousarray(crop, dtype=np.float32)])[0]
