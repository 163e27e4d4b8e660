"""The runtime registry (srcnn.runtimes): each entry names its Runner, an absent package is one line, --help loads none."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT

from srcnn import core, runtime, runtimes


@pytest.mark.parametrize("name", runtimes.RUNTIMES)
def test_each_entry_names_its_runner(name) -> None:
    try:
        cls = runtimes.runtime_class(name)
    except core.SrcnnError as exc:
        pytest.skip(str(exc))
    assert issubclass(cls, runtime.Runner) and cls.name == name, f"{name}: {cls}"


def test_an_unknown_runtime_is_refused() -> None:
    with pytest.raises(core.SrcnnError, match="runtime 'tensorrt': expected one of ort, openvino"):
        runtimes.runtime_class("tensorrt")


def test_a_runtime_not_installed_is_one_line(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino now raises ModuleNotFoundError
    monkeypatch.delitem(sys.modules, "srcnn.openvino_runtime", raising=False)
    with pytest.raises(core.SrcnnError, match=r"--runtime openvino: openvino is not installed; pip install -r") as info:
        runtimes.runtime_class("openvino")
    assert "\n" not in str(info.value)


def test_help_loads_no_runtime() -> None:
    code = ("import sys, srcnn.cli\n"
            "try:\n    srcnn.cli.parse_args(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('onnxruntime', 'openvino', 'torch', 'numpy') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout[-500:] + done.stderr[-500:]
