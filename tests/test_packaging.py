"""The install files agree: every pin of pyproject.toml is requirements-gpu.txt's too (but for ONNX Runtime, whose
GPU build replaces the CPU one), and the command the package declares is the one the README uses."""

from __future__ import annotations

import re
import tomllib

from conftest import ROOT

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
REPLACED_FOR_THE_GPU = {"onnxruntime": "onnxruntime-gpu"}  # both install the module `onnxruntime`


def pins(lines: list[str]) -> dict[str, str]:
    """name -> version of each `name==version` requirement (extras' self-references skipped)."""
    found = {}
    for line in lines:
        if match := re.fullmatch(r"\s*([A-Za-z0-9_.-]+)==([^\s;#]+)\s*(#.*)?", line):
            found[match[1].lower()] = match[2]
    return found


def test_every_pin_of_pyproject_is_the_gpu_environments() -> None:
    extras = [requirement for extra in PROJECT["optional-dependencies"].values() for requirement in extra]
    wanted = pins([*PROJECT["dependencies"], *extras])
    gpu = pins((ROOT / "requirements-gpu.txt").read_text().splitlines())
    for name, version in wanted.items():
        name = REPLACED_FOR_THE_GPU.get(name, name)
        assert name in gpu, f"requirements-gpu.txt lacks {name} (pyproject.toml pins {version})"
        if name not in REPLACED_FOR_THE_GPU.values():
            assert gpu[name] == version, f"{name}: pyproject.toml pins {version}, requirements-gpu.txt {gpu[name]}"
    assert "onnxruntime" not in gpu, "the CPU onnxruntime must not be installed beside onnxruntime-gpu"


def test_the_command_and_the_python_version() -> None:
    assert PROJECT["scripts"] == {"srcnn": "srcnn.cli:main"}, PROJECT["scripts"]
    assert PROJECT["requires-python"] == ">=3.11", PROJECT["requires-python"]
    readme = (ROOT / "README.md").read_text()
    assert "--extra-index-url https://download.pytorch.org/whl/cpu -r requirements.txt" in readme, \
        "the README's first command installs PyTorch's CPU build"
