"""Shared fixtures: each model seeded, its ONNX file per exporter made once per test session, CUDA detection."""

from __future__ import annotations

import copy
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import onnx
import onnxruntime as ort
import pytest
import torch

import srcnn_dynamic as sd
from srcnn import core, graph, models, runtime, runtimes


def cuda_skip_reason() -> str | None:
    """Why the CUDA tests cannot run here, or None when both PyTorch and ONNX Runtime can use a GPU."""
    if sd.CUDA_PROVIDER not in ort.get_available_providers():
        return f"onnxruntime {ort.__version__} has no {sd.CUDA_PROVIDER} (install requirements-gpu.txt on a GPU machine)"
    if not torch.cuda.is_available():
        return f"PyTorch {torch.__version__} sees no CUDA GPU"
    return None


ROOT = Path(__file__).resolve().parent.parent
# Every run of the suite, in-process or as a command, caches its graphs in one folder of its own: the user's cache
# is never touched, and the graph of each setting is exported once for the whole suite.
TEST_CACHE = Path(tempfile.mkdtemp(prefix="srcnn-test-cache-"))
os.environ["XDG_CACHE_HOME"] = str(TEST_CACHE)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(TEST_CACHE, ignore_errors=True)

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(cuda_skip_reason() is not None, reason=str(cuda_skip_reason()))),
]


MODEL_NAMES = list(models.MODELS)  # the parity, graph and tiling tests run over every model of the registry


def seeded_network(name: str) -> torch.nn.Module:
    """The model `name` as seeded initialisation gives it, in eval mode, so that a conditioned one's factor moves its
    filters in both runtimes: parameters outside its convolutions (a conditioning network, which may start at zero)
    are drawn far from rest; the factor-aware model's anchor sets start apart anyway."""
    torch.manual_seed(sd.SEED)
    network = models.model_kind(name).build()
    if models.model_kind(name).conditioned:
        with torch.no_grad():
            for parameter_name, parameter in network.named_parameters():
                if not parameter_name.startswith("conv"):  # the convolutions keep their initialisation's scale
                    parameter.normal_(0.0, 0.2)
    return network.eval()


@pytest.fixture(scope="session")
def model_on() -> Callable[..., torch.nn.Module]:
    """model_on(device, name="tutorial"): the seeded model on that device, made once."""

    @functools.cache
    def get(device: str, name: str = models.TUTORIAL_MODEL) -> torch.nn.Module:
        return seeded_network(name).to(device)

    return get


@pytest.fixture(scope="session")
def model(model_on: Callable[..., torch.nn.Module]) -> sd.SuperResolutionNet:
    """The tutorial's seeded model on the CPU."""
    return model_on("cpu")


@pytest.fixture(scope="session")
def onnx_path(model_on: Callable[..., torch.nn.Module], tmp_path_factory: pytest.TempPathFactory
              ) -> Callable[..., Path]:
    """onnx_path(exporter, name="tutorial"): the seeded model exported once with that exporter, traced at x3 on a
    64x64 example, then run at other shapes and factors."""

    @functools.cache
    def get(exporter: str, name: str = models.TUTORIAL_MODEL) -> Path:
        path = tmp_path_factory.mktemp(f"{name}-{exporter}") / "srcnn3.onnx"
        sd.export_onnx(copy.deepcopy(model_on("cpu", name)), path, exporter=exporter)
        return path

    return get


@pytest.fixture(scope="session")
def session_for(onnx_path: Callable[..., Path]) -> Callable[..., ort.InferenceSession]:
    """session_for(exporter, device, resize="matmul", name="tutorial"): one ONNX Runtime session per combination."""

    @functools.cache
    def get(exporter: str, device: str, resize: str = "matmul", name: str = models.TUTORIAL_MODEL
            ) -> ort.InferenceSession:
        return graph.form_session(onnx.load(onnx_path(exporter, name)), device, resize=resize)

    return get


def runtime_skip_reason(name: str, device: str = "cpu") -> str | None:
    """Why runtime `name` cannot run on `device` here (not installed, no such device for it), or None."""
    try:
        runtimes.runtime_class(name).check(device, "fp32")
    except core.SrcnnError as exc:
        return str(exc)
    return None


def bf16_skip_reason() -> str | None:
    """Why OpenVINO cannot run bf16 here (the CPU lacks AVX512-BF16 and AMX, or OpenVINO is absent), or None."""
    try:
        runtimes.runtime_class("openvino").check("cpu", "bf16")
    except core.SrcnnError as exc:
        return str(exc)
    return None


# the runtimes every parity and tiling test runs in, on the CPU (OpenVINO runs on the CPU alone)
RUNTIME_NAMES = [pytest.param(name, marks=pytest.mark.skipif(runtime_skip_reason(name) is not None,
                                                             reason=str(runtime_skip_reason(name))))
                 for name in runtimes.RUNTIMES]


@pytest.fixture(scope="session")
def runner_for(onnx_path: Callable[..., Path]) -> Callable[..., runtime.Runner]:
    """runner_for(exporter, device, resize="matmul", name="tutorial", runtime="ort"): one Runner (whole and tiled)
    per combination."""

    @functools.cache
    def get(exporter: str, device: str, resize: str = "matmul", name: str = models.TUTORIAL_MODEL,
            runtime_name: str = runtimes.DEFAULT_RUNTIME) -> runtime.Runner:
        parts = graph.graph_parts(onnx.load(onnx_path(exporter, name)))
        return runtimes.create_runner(parts, runtime_name, device, resize=resize)

    return get


COMMANDS = {  # what users type, run from another folder
    "script": [sys.executable, str(ROOT / "srcnn_dynamic.py")],
    "package": [sys.executable, "-m", "srcnn"],
}


def run_cli(*args: str, cwd: Path, command: str = "package", cache: Path | None = None,
            **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run one of the two commands in `cwd`, as a user would (the package found through PYTHONPATH); `cache`: a
    graph cache of its own (a cold one), instead of the suite's."""
    env = cli_env() | ({"XDG_CACHE_HOME": str(cache)} if cache else {})
    return subprocess.run([*COMMANDS[command], *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env=env, **kwargs)


def cli_env() -> dict[str, str]:
    """The environment for running `python -m srcnn` from another folder: the project first on PYTHONPATH."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
