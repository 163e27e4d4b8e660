"""The command line as users run it: the default tutorial run, other exporters and factors, and mistakes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from conftest import cuda_skip_reason

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "srcnn_dynamic.py"


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def image_size(path: Path) -> tuple[int, int]:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, f"{path} is not a readable image"
    return image.shape[0], image.shape[1]


def test_default_run_is_the_tutorial(tmp_path) -> None:
    result = run_cli(cwd=tmp_path)  # no arguments at all, from another folder: outputs/ lands there
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stderr}"
    out = tmp_path / "outputs"
    files = sorted(p.name for p in out.iterdir())
    assert files == ["face_ort_3.png", "face_ort_4.png", "face_torch_3.png", "face_torch_4.png", "srcnn3.onnx"], files
    for name, size in [("face_torch_3.png", (768, 768)), ("face_ort_3.png", (768, 768)), ("face_ort_4.png", (1024, 1024))]:
        assert image_size(out / name) == size, f"{name} is {image_size(out / name)}, expected {size}"
    table = result.stdout.splitlines()
    assert table[0].split()[:2] == ["factor", "output"], f"no table header: {result.stdout}"
    assert any(line.startswith("x3 ") and "768x768" in line and line.endswith("ok") for line in table), result.stdout
    assert any(line.startswith("x4 ") and "1024x1024" in line and line.endswith("ok") for line in table), result.stdout


def test_dynamo_exporter_and_uneven_factors(tmp_path) -> None:
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), cv2.resize(cv2.imread(str(ROOT / "face.png")), (40, 30)))  # (30, 40): not square
    result = run_cli("--exporter", "dynamo", "--image", str(small), "--factor", "2.5", "--factor", "5x6",
                     "--output-dir", "out", cwd=tmp_path)
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stderr}"
    assert image_size(tmp_path / "out" / "small_ort_2.5.png") == (75, 100)
    assert image_size(tmp_path / "out" / "small_ort_5x6.png") == (150, 240)
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr, f"noisy export:\n{result.stderr}"


BAD_INPUTS = [
    (["--factor", "0.5"], "finite number >= 1"),
    (["--factor", "abc"], "expected a number"),
    (["--factor", "3x"], "expected a number"),
    (["--factor", "nan"], "finite number >= 1"),
    (["--factor", "inf"], "finite number >= 1"),
    (["--factor", "2x3x4"], "expected a number"),
    (["--factor", "100"], "over the limit"),
    (["--image", "missing.png"], "image not found: missing.png"),
    (["--image", "notes.txt"], "cannot read notes.txt as an image"),
    (["--weights", "missing.pth"], "weights file not found"),
    (["--opset", "9"], "needs opset 11 or newer"),
    (["--exporter", "dynamo", "--opset", "17"], "needs opset 18 or newer"),
    (["--exporter", "tflite"], "invalid choice"),
    (["--output-dir", "notes.txt/out"], "is not a folder"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_exits_2_with_one_line(tmp_path, args, message) -> None:
    (tmp_path / "notes.txt").write_text("not an image")
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2, f"exit {result.returncode}, expected 2\n{result.stderr}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], f"expected one line with {message!r}, got:\n{result.stderr}"
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"], "a failed run must write nothing"


@pytest.mark.skipif(cuda_skip_reason() is None, reason="CUDA is available here, so --device cuda is not an error")
def test_cuda_without_cuda_says_how_to_get_it(tmp_path) -> None:
    result = run_cli("--device", "cuda", cwd=tmp_path)
    assert result.returncode == 2, f"exit {result.returncode}\n{result.stderr}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "requirements-gpu.txt" in lines[0], f"unclear message:\n{result.stderr}"
    assert list(tmp_path.iterdir()) == [], "a failed run must write nothing"


@pytest.mark.skipif(cuda_skip_reason() is not None, reason=str(cuda_skip_reason()))
def test_cuda_run(tmp_path) -> None:
    result = run_cli("--device", "cuda", cwd=tmp_path)
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stderr}"
    assert "CUDAExecutionProvider" in result.stderr, f"the log should name the provider used:\n{result.stderr}"
