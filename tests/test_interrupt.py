"""Ctrl-C during a run: exit code 130, one line, and no half-written or temporary file left behind."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
from conftest import cli_env

import srcnn_dynamic as sd
from srcnn import images

ROOT = Path(__file__).resolve().parent.parent


def test_sigint_exits_130_and_leaves_only_whole_files(tmp_path) -> None:
    # x8 untiled on face.png: a 2048x2048 output, several seconds of work after the export, so SIGINT lands mid-run
    process = subprocess.Popen(
        [sys.executable, "-m", "srcnn", "--factor", "8", "--factor", "7", "--tile", "0", "--output-dir", "out", "-v"],
        cwd=tmp_path, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=cli_env(),
    )
    assert process.stderr is not None
    log = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        log.append(line)
        if "ONNX Runtime on" in line or not line:  # the graph is loaded and the upscaling has started
            break
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    stdout, rest = process.communicate(timeout=300)
    stderr = "".join(log) + rest
    assert process.returncode == sd.EXIT_INTERRUPTED, f"exit {process.returncode}, expected 130\n{stderr}"
    assert stderr.strip().splitlines()[-1].startswith("interrupted"), f"last line:\n{stderr}"
    assert "Traceback" not in stderr, stderr
    assert stdout == "", f"no last line for an interrupted run: {stdout!r}"
    left = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert not [name for name in left if name.endswith(".tmp")], f"temporary files left: {left}"
    for name in left:
        if name.endswith(".png"):
            assert cv2.imread(str(tmp_path / "out" / name)) is not None, f"{name} is not a whole image"


def test_atomic_path_leaves_nothing_when_interrupted(tmp_path) -> None:
    target = tmp_path / "result.png"
    target.write_bytes(b"the previous result")
    try:
        with images.atomic_path(target) as tmp:
            tmp.write_bytes(b"half of a new fi")
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert target.read_bytes() == b"the previous result", "an interrupted write must not touch the existing file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.png"], "the temporary file must be removed"
