"""Which runtimes run the graph: one entry each. A new runtime is one file (a srcnn.runtime.Runner) and one entry.

Imports no runtime: a runtime's module loads when a run asks for it, so that --help answers at once and a runtime
that is not installed costs nothing until it is asked for.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from srcnn.core import Device, SrcnnError

if TYPE_CHECKING:
    from srcnn.runtime import GraphParts, Runner


@dataclass(frozen=True)
class RuntimeKind:
    """What the product knows of a runtime before importing it."""

    name: str  # as --runtime takes it
    module: str  # the module that defines its Runner
    cls: str
    package: str  # the pip requirement that installs it (pinned in pyproject.toml)
    about: str  # one line for --help


RUNTIMES: dict[str, RuntimeKind] = {kind.name: kind for kind in (
    RuntimeKind("ort", "srcnn.ort_runtime", "OrtRunner", "onnxruntime", "ONNX Runtime, on the CPU or CUDA"),
    RuntimeKind("openvino", "srcnn.openvino_runtime", "OpenVinoRunner", "openvino",
                "OpenVINO, on the CPU; bf16 on CPUs with AVX512-BF16 or AMX"),
)}
DEFAULT_RUNTIME = "ort"


def runtime_class(name: str) -> type[Runner]:
    """The Runner class of `name`, its module imported; a one-line SrcnnError for an unknown name or a runtime
    that is not installed."""
    if name not in RUNTIMES:
        raise SrcnnError(f"runtime {name!r}: expected one of {', '.join(RUNTIMES)}")
    kind = RUNTIMES[name]
    try:
        module = importlib.import_module(kind.module)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.startswith("srcnn"):
            raise
        raise SrcnnError(f"--runtime {name}: {exc.name} is not installed; pip install -r requirements.txt"
                         f" installs it ({kind.package}, pinned in pyproject.toml)") from None
    return getattr(module, kind.cls)


def create_runner(parts: GraphParts, runtime: str = DEFAULT_RUNTIME, device: Device = "cpu",
                  **options: Any) -> Runner:
    """The graph's parts in `runtime` (a RUNTIMES name) on `device`; options as srcnn.runtime.Runner takes them."""
    return runtime_class(runtime)(parts, device, **options)
