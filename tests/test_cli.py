"""The command lines as users run them: the tutorial (python srcnn_dynamic.py) and the product (python -m srcnn).

Both: the default run, other exporters and factors. Every bad input of the product's table, and the script's own
mistakes: exit 2, one line, nothing written.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch
from conftest import COMMANDS, bf16_skip_reason, cuda_skip_reason, run_cli

ROOT = Path(__file__).resolve().parent.parent


def image_size(path: Path) -> tuple[int, int]:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, f"{path} is not a readable image"
    return image.shape[0], image.shape[1]


# What each command writes with no arguments, and at what size: the tutorial both runtimes' results and its export,
# the product one result per factor.
DEFAULT_FILES = {
    "script": {"face_ort_3.png": (768, 768), "face_ort_4.png": (1024, 1024), "face_torch_3.png": (768, 768),
               "face_torch_4.png": (1024, 1024), "srcnn3.onnx": None},
    "package": {"face_x3.png": (768, 768), "face_x4.png": (1024, 1024)},
}


@pytest.mark.parametrize("command", COMMANDS)
def test_default_run(tmp_path, command) -> None:
    result = run_cli(cwd=tmp_path, command=command)  # no arguments at all, from another folder: outputs/ lands there
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stderr}"
    out = tmp_path / "outputs"
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted(DEFAULT_FILES[command]), files
    for name, size in DEFAULT_FILES[command].items():
        assert size is None or image_size(out / name) == size, f"{name} is {image_size(out / name)}, expected {size}"
    if command == "package":
        assert result.stderr == "" and result.stdout.startswith("upscaled 1 image into 2 results"), result
        return
    table = result.stdout.splitlines()
    assert table[0].split()[:2] == ["factor", "output"], f"no table header: {result.stdout}"
    assert any(line.startswith("x3 ") and "768x768" in line and line.endswith("ok") for line in table), result.stdout
    assert any(line.startswith("x4 ") and "1024x1024" in line and line.endswith("ok") for line in table), result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_dynamo_exporter_and_uneven_factors(tmp_path, command) -> None:
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), cv2.resize(cv2.imread(str(ROOT / "face.png")), (40, 30)))  # (30, 40): not square
    result = run_cli("--exporter", "dynamo", "--image", str(small), "--factor", "2.5", "--factor", "5x6",
                     "--output-dir", "out", cwd=tmp_path, command=command, cache=tmp_path / "cache")  # exports
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stderr}"
    tag = "ort_" if command == "script" else "x"  # the tutorial's small_ort_2.5.png, the product's small_x2.5.png
    assert image_size(tmp_path / "out" / f"small_{tag}2.5.png") == (75, 100)
    assert image_size(tmp_path / "out" / f"small_{tag}5x6.png") == (150, 240)
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr, f"noisy export:\n{result.stderr}"
    if command == "package":  # stdout holds the report alone: the exporter's steps are not printed there
        assert result.stdout.startswith("upscaled 1 image"), f"noisy export:\n{result.stdout}"


class RunsCode:
    """A pickle that would run a shell command if loaded unsafely."""

    def __reduce__(self):  # noqa: ANN204
        return (os.system, ("echo this must never run",))


def foreign_onnx(path: Path) -> None:
    """A valid ONNX model that is not ours: one input `x`, an Identity."""
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["x"], ["y"])], "foreign",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
    )
    onnx.save(onnx.helper.make_model(graph), path)


def two_photos(folder: Path) -> None:
    """photos/a.png and photos/a_x3.png: with --output-dir photos, a's x3 result would replace the second."""
    folder.mkdir()
    small = cv2.resize(cv2.imread(str(ROOT / "face.png")), (16, 16))
    cv2.imwrite(str(folder / "a.png"), small)
    cv2.imwrite(str(folder / "a_x3.png"), small)


# Files the bad inputs below refer to, made in each test's empty folder before the run.
SETUP = {
    "notes.txt": lambda p: p.write_text("not an image"),
    "empty.png": lambda p: p.write_bytes(b""),
    "no-images": lambda p: (p.mkdir(), (p / "readme.txt").write_text("no images here")),
    "corrupt.pth": lambda p: p.write_bytes(np.random.default_rng(0).bytes(256)),
    "wrong.pth": lambda p: torch.save({"conv1.weight": torch.zeros(64, 1, 9, 9)}, p),
    # the tutorial's shipped weights, given to the default model (the factor-aware one)
    "tutorial.pth": lambda p: p.write_bytes((ROOT / "weights" / "srcnn_dynamic.pth").read_bytes()),
    "evil.pth": lambda p: torch.save({"conv1.weight": RunsCode()}, p),
    "corrupt.onnx": lambda p: p.write_bytes(np.random.default_rng(1).bytes(300)),
    "foreign.onnx": foreign_onnx,
    "photos": two_photos,
}

BF16_SKIP = bf16_skip_reason()
BAD_INPUTS = [
    (["--factor", "0.5"], "finite number >= 1"),
    (["--factor", "abc"], "expected a number"),
    (["--factor", "3x"], "expected a number"),
    (["--factor", "nan"], "finite number >= 1"),
    (["--factor", "inf"], "finite number >= 1"),
    (["--factor", "3e38"], "and <= 67108864"),  # finite as float64 and float32, but H * f would not be
    (["--factor", "1x1e308"], "and <= 67108864"),  # infinite as float32
    (["--factor", "2x3x4"], "expected a number"),
    (["--factor", "40"], "over the limit of 67,108,864 output pixels; use a smaller factor"),
    (["--factor", "20", "--tile", "0"], "untiled; use --tile 512"),
    (["--tile", "-1"], "must be 0 (never tile) or a positive number"),
    (["--image", "missing.png"], "image not found: missing.png"),
    (["--image", "notes.txt"], "cannot read notes.txt as an image"),
    (["--image", "empty.png"], "the file is empty"),
    (["--image", "no-images"], "the folder holds no images"),
    (["--weights", "missing.pth"], "weights file not found"),
    (["--weights", "corrupt.pth"], "is corrupt or not a PyTorch file"),
    (["--weights", "wrong.pth"], "does not fit the factor-aware model (FactorAwareNet): missing"),
    (["--weights", "tutorial.pth"], "they fit the tutorial model: add --model tutorial"),
    (["--weights", "evil.pth"], "was refused: torch.load(weights_only=True) loads tensors only"),
    (["--onnx", "missing.onnx"], "ONNX model not found"),
    (["--onnx", "corrupt.onnx"], "is not a readable ONNX model"),
    (["--onnx", "foreign.onnx"], "is not this project's dynamic-factor model: inputs are ['x']"),
    (["--opset", "9"], "needs opset 11 or newer"),
    (["--exporter", "dynamo", "--opset", "17"], "needs opset 18 or newer"),
    (["--exporter", "tflite"], "invalid choice"),
    (["--output-dir", "notes.txt/out"], "is not a folder"),
    (["--image", "photos", "--factor", "3", "--output-dir", "photos"], "is the folder of the photos"),
    (["--runs", "2"], "timed runs belong to --check"),
    (["--image", ""], "an empty path"),
    (["--check", "--runs", "0"], "must be at least 1"),
    (["-q", "-v"], "choose one"),
    (["--weights", "corrupt.pth", "--onnx", "foreign.onnx"], "the ONNX file holds its own weights"),
    (["--save-onnx", "notes.txt"], "must end in .onnx"),
    (["--save-onnx", "notes.txt/model.onnx"], "is not a folder"),
    (["--runtime", "tensorrt"], "invalid choice"),
    (["--runtime", "openvino", "--device", "cuda"], "this project runs OpenVINO on the CPU; on an NVIDIA GPU use"),
    (["--precision", "bf16"], "ONNX Runtime runs this graph in float32 only"),
    (["--precision", "fp16"], "invalid choice"),
]
if BF16_SKIP is not None:  # on a CPU without bf16 units, asking for it is a mistake named in one line
    BAD_INPUTS.append((["--runtime", "openvino", "--precision", "bf16"], "has neither AVX512-BF16 nor AMX"))


# The tutorial script's own mistakes: the rows of the table above without the product's options, refused in one
# line too, with these messages where the script's own rules differ (it never tiles; it reads one file).
PRODUCT_OPTIONS = {"--tile", "--onnx", "photos", "", "--runs", "--check", "-q", "--save-onnx", "tutorial.pth",
                   "--runtime", "--precision"}
SCRIPT_MESSAGES = {
    "--factor 40": "over the limit of 16,777,216 output pixels",
    "--image no-images": "is not an image file",
    "--image empty.png": "cannot read empty.png as an image: empty",
    "--weights wrong.pth": "do not fit SuperResolutionNet",
}
SCRIPT_BAD_INPUTS = [
    (args, SCRIPT_MESSAGES.get(" ".join(args), message)) for args, message in BAD_INPUTS
    if not PRODUCT_OPTIONS & set(args)
]
CASES = [("package", args, message) for args, message in BAD_INPUTS] + [
    ("script", args, message) for args, message in SCRIPT_BAD_INPUTS
]


@pytest.mark.parametrize(("command", "args", "message"), CASES, ids=[f"{c}: {' '.join(a)}" for c, a, _ in CASES])
def test_bad_input_exits_2_with_one_line(tmp_path, command, args, message) -> None:
    for name, make in SETUP.items():
        if name in args or any(a.startswith(f"{name}/") for a in args):
            make(tmp_path / name)
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    result = run_cli(*args, cwd=tmp_path, command=command)
    assert result.returncode == 2, f"exit {result.returncode}, expected 2\n{result.stderr}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], f"expected one line with {message!r}, got:\n{result.stderr}"
    assert "Traceback" not in result.stderr and "must never run" not in result.stdout
    after = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert after == before, f"a failed run must write nothing: new files {sorted(set(after) - set(before))}"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads and writes files whatever their permissions")
@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", ["unreadable image", "read-only output folder"])
def test_permission_problems_exit_2(tmp_path, case, command) -> None:
    if case == "unreadable image":
        image = tmp_path / "locked.png"
        image.write_bytes((ROOT / "face.png").read_bytes())
        image.chmod(0)
        args, message = ["--image", str(image)], "cannot read"
    else:
        folder = tmp_path / "locked"
        folder.mkdir()
        folder.chmod(0o555)
        args, message = ["--output-dir", str(folder)], "is not writable"
    result = run_cli(*args, cwd=tmp_path, command=command)
    assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1, result.stderr


@pytest.mark.skipif(cuda_skip_reason() is None, reason="CUDA is available here, so --device cuda is not an error")
@pytest.mark.parametrize("command", COMMANDS)
def test_cuda_without_cuda_says_how_to_get_it(tmp_path, command) -> None:
    result = run_cli("--device", "cuda", cwd=tmp_path, command=command)
    assert result.returncode == 2, f"exit {result.returncode}\n{result.stderr}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "requirements-gpu.txt" in lines[0], f"unclear message:\n{result.stderr}"
    assert list(tmp_path.iterdir()) == [], "a failed run must write nothing"


@pytest.mark.skipif(cuda_skip_reason() is not None, reason=str(cuda_skip_reason()))
@pytest.mark.parametrize("command", COMMANDS)
def test_cuda_run(tmp_path, command) -> None:
    result = run_cli("--device", "cuda", cwd=tmp_path, command=command)
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stderr}"
    assert "CUDAExecutionProvider" in result.stderr, f"the log should name the provider used:\n{result.stderr}"


def test_unwritable_output_folder_is_found_before_any_work(tmp_path, monkeypatch) -> None:
    """Also where the tests run as root (which may write anywhere): the check asks os.access, so ask it to say no."""
    from srcnn import app, core

    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(core.os, "access", lambda path, mode: path != locked and real_access(path, mode))
    with pytest.raises(core.SrcnnError, match="is not writable"):
        app.run(core.DEFAULT_IMAGE, [core.Factor.parse("2")], output_dir=locked / "out")
    assert list(locked.iterdir()) == [], "nothing may be written"


def test_two_results_never_share_a_path(tmp_path) -> None:
    """Factors 1 and 1.0000001 print alike (tag '1'): the run is refused instead of one result replacing the other."""
    result = run_cli("--factor", "1", "--factor", "1.0000001", cwd=tmp_path)
    assert result.returncode == 2 and "two results of this run" in result.stderr, result.stderr
    assert list(tmp_path.iterdir()) == [], "a refused run writes nothing"
