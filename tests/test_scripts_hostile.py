"""train.py, evaluate.py and the tools on hostile input: one line on stderr and exit 2, before any work, within
bounded memory, nothing written and no input replaced. Every hostile file is made by the test."""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import ROOT, cli_env

import evaluate
import srcnn_dynamic as sd
import train
from srcnn import data, plan
from srcnn.core import SrcnnError

sys.path.insert(0, str(ROOT / "tools"))
import plot_training  # noqa: E402

MISTAKES = (sd.SrcnnError, SrcnnError)  # the tutorial's and the product's: both are one-line mistakes (exit 2)
MAX_REFUSAL_MB = 1024  # a refusal costs the imports (about 300 MB), never the input
MAX_EVALUATE_MB = 4608  # evaluate.py on a 4096x4096 image: about 3.5 GB measured (it took over 5 GB untiled)
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
HAS_SYS = Path("/sys/kernel").is_dir()  # Linux's sysfs: no file can be made at its top, not even by root

# Runs a command and prints its peak resident memory (MB) as the last line of stdout.
PEAK_WRAPPER = (
    "import resource, subprocess, sys\n"
    "done = subprocess.run(sys.argv[1:])\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)\n"
    "sys.exit(done.returncode)\n"
)


def run_script(script: str, *args: str, cwd: Path,
               timeout: float = 600) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run one of the project's scripts in `cwd` as a user would; return it and its peak resident memory in MB."""
    done = subprocess.run([sys.executable, "-c", PEAK_WRAPPER, sys.executable, str(ROOT / script), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=cli_env())
    return done, int(done.stdout.strip().splitlines()[-1])


def assert_refused(done: subprocess.CompletedProcess[str], pattern: str, peak_mb: int = 0) -> None:
    """Exit 2, one line on stderr matching `pattern` (a regular expression), no traceback, little memory."""
    lines = done.stderr.strip().splitlines()
    assert done.returncode == sd.EXIT_USAGE, f"exit {done.returncode}, expected 2\n{done.stderr[-3000:]}"
    assert len(lines) == 1, f"expected one line on stderr:\n{done.stderr[-3000:]}"
    assert re.search(pattern, lines[0]), f"expected {pattern!r} in:\n{lines[0]}"
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    assert peak_mb < MAX_REFUSAL_MB, f"the refusal took {peak_mb} MB"


def snapshot(folder: Path) -> dict[str, object]:
    """Everything under `folder`: a digest of each small file, the size and time of a large one, the mode of anything
    else (a folder, a FIFO). A refusal changes none of it and adds nothing."""
    found: dict[str, object] = {}
    for path in sorted(folder.rglob("*")):
        status = path.lstat()
        small = path.is_file() and status.st_size <= 2**20
        found[str(path.relative_to(folder))] = (hashlib.sha256(path.read_bytes()).hexdigest() if small
                                                else (status.st_mode, status.st_size, status.st_mtime_ns))
    return found


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height RGB pixels, with a few rows of real data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = zlib.compress(b"\0" * (min(width, 4096) * 3 + 1) * 4)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def face_of(size: tuple[int, int]) -> np.ndarray:
    """face.png resized to (height, width), BGR uint8."""
    return cv2.resize(cv2.imread(str(sd.DEFAULT_IMAGE)), (size[1], size[0]), interpolation=cv2.INTER_AREA)


# ---------------------------------------------------------------------------------------------------------------
# train.py --seed: the range torch.manual_seed takes, refused at parse time


@pytest.mark.parametrize("seed", [str(2**64), str(2**200), "-1", "-" + str(2**64)])
def test_a_seed_out_of_range_is_refused_at_parse_time(tmp_path, seed) -> None:
    done, peak_mb = run_script("train.py", "--seed", seed, "--steps", "1", "--out", "w.pth", cwd=tmp_path)
    assert_refused(done, rf"--seed {seed}: must be 0 or more, and at most 2\*\*64 - 1", peak_mb)
    assert list(tmp_path.iterdir()) == []


def test_the_seed_range_is_the_one_torch_and_numpy_take() -> None:
    assert train.parse_args(["--seed", str(train.MAX_SEED)]).seed == train.MAX_SEED
    torch.manual_seed(train.MAX_SEED)
    np.random.default_rng(train.MAX_SEED)
    with pytest.raises((RuntimeError, ValueError, OverflowError)):
        torch.manual_seed(train.MAX_SEED + 1)
    torch.manual_seed(sd.SEED)  # as the suite expects it


# ---------------------------------------------------------------------------------------------------------------
# Output paths: every impossible one refused, with the names really written, before any work

NOT_WRITABLE = "cannot be written|not writable|cannot write"  # tried as root; os.access's answer otherwise
NEEDS_SYS = pytest.mark.skipif(not HAS_SYS, reason="needs Linux's /sys, where nothing can be made")
PATH_CASES = [  # the output path ({s}: its suffix) and the refusal expected
    pytest.param("notes.txt/result{s}", "notes.txt is not a folder", id="a file as its folder"),
    pytest.param("notes.txt/new/result{s}", "notes.txt is not a folder", id="a file above its folder"),
    pytest.param("folder{s}", "is a folder; give a file name", id="an existing folder"),
    pytest.param("fifo{s}", "is not a regular file", id="a FIFO"),
    pytest.param("nowhere/result{s}", "nowhere is not a folder|cannot write", id="a link to nowhere as its folder"),
    pytest.param("n" * 256 + "{s}", "bytes, over the 255|File name too long", id="a name over 255 bytes"),
    pytest.param("/sys/result{s}", NOT_WRITABLE, id="a folder that takes no file", marks=NEEDS_SYS),
    pytest.param("/sys/new/result{s}", NOT_WRITABLE, id="a folder that cannot be made", marks=NEEDS_SYS),
    pytest.param("locked/result{s}", NOT_WRITABLE, id="a read-only folder", marks=pytest.mark.skipif(
        IS_ROOT, reason="root writes into a read-only folder: /sys stands in for it")),
]
FEW_PATH_CASES = [case for case in PATH_CASES if case.id in
                  ("a file as its folder", "an existing folder", "a folder that takes no file")]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A folder with a file, folders and FIFOs named as outputs, a read-only folder, a link to nothing and a valid
    training record."""
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    for suffix in (".pth", ".json", ".png"):
        (tmp_path / f"folder{suffix}").mkdir()
        os.mkfifo(tmp_path / f"fifo{suffix}")
    (tmp_path / "locked").mkdir(mode=0o555)
    (tmp_path / "nowhere").symlink_to(tmp_path / "missing")
    (tmp_path / "record.json").write_text(json.dumps({"steps": 2, "history": [[0, 30.0], [2, 30.5]]}))
    return tmp_path


def assert_nothing_written(folder: Path, before: dict[str, str], path: str) -> None:
    assert snapshot(folder) == before, "a refusal writes nothing and replaces nothing"
    if path.startswith("/"):
        assert not Path(path).exists(), f"{path} was written"


@pytest.mark.parametrize(("path", "message"), PATH_CASES)
def test_the_output_check_refuses_every_impossible_path_and_leaves_nothing(workspace, path, message) -> None:
    """plan.check_output_file, which every script here runs on its outputs before any work."""
    before = snapshot(workspace)
    target = path.format(s=".pth")
    with pytest.raises(MISTAKES, match=message) as info:
        plan.check_output_file(workspace / target, "--out")  # an absolute target stays itself
    assert "\n" not in str(info.value)
    assert_nothing_written(workspace, before, target)


def test_the_output_check_makes_no_folder_it_leaves_behind(tmp_path) -> None:
    plan.check_output_file(tmp_path / "new" / "deeper" / "w.pth", "--out", suffixes=(".pth",))
    assert list(tmp_path.iterdir()) == [], "the probe's folders and temporary file are removed"


PROGRAMS = {  # name -> (script and its arguments, PATH standing for the output path; the output's suffix)
    "train --out": (["train.py", "--steps", "1", "--out", "PATH"], ".pth"),
    "train --history": (["train.py", "--steps", "1", "--out", "w.pth", "--history", "PATH"], ".json"),
    # -v: the work's first step ("loaded weights from ...") would show as a second line
    "evaluate --figure": (["evaluate.py", "-v", "--factor", "4", "--figure", "PATH"], ".png"),
    "plot_training --out": (["tools/plot_training.py", "record.json", "--out", "PATH"], ".png"),
    "draw_graphs --out": (["tools/draw_graphs.py", "--out", "PATH"], ".png"),
    "make_readme_figure --out": (["tools/make_readme_figure.py", "--out", "PATH"], ".png"),
    "make_face": (["tools/make_face.py", "PATH"], ".png"),
}


def refuse_output(workspace: Path, program: str, path: str, message: str) -> None:
    (script, *args), suffix = PROGRAMS[program]
    target = path.format(s=suffix)
    before = snapshot(workspace)
    done, peak_mb = run_script(script, *(target if a == "PATH" else a for a in args), cwd=workspace)
    assert_refused(done, message, peak_mb)
    assert_nothing_written(workspace, before, target)


@pytest.mark.parametrize(("path", "message"), PATH_CASES)
@pytest.mark.parametrize("program", ["train --out", "evaluate --figure"])
def test_train_and_evaluate_refuse_an_impossible_output_before_any_work(workspace, program, path, message) -> None:
    refuse_output(workspace, program, path, message)


@pytest.mark.parametrize(("path", "message"), FEW_PATH_CASES)
@pytest.mark.parametrize("program", [p for p in PROGRAMS if p not in ("train --out", "evaluate --figure")])
def test_every_script_refuses_an_impossible_output_before_any_work(workspace, program, path, message) -> None:
    refuse_output(workspace, program, path, message)


@pytest.mark.parametrize(("program", "message"), [
    ("draw_graphs --out", "must end in .png"),
    ("make_readme_figure --out", "give an image suffix"),
    ("make_face", "must end in .png or"),
])
def test_the_tools_refuse_an_output_that_is_not_an_image(workspace, program, message) -> None:
    refuse_output(workspace, program, "result.txt", message)


def test_make_face_never_writes_over_its_input(tmp_path) -> None:
    """A link to scikit-image's astronaut (the input): were it written, only the link would be replaced."""
    from skimage import data

    (tmp_path / "astronaut.png").symlink_to(Path(data.data_dir) / "astronaut.png")
    done, peak_mb = run_script("tools/make_face.py", "astronaut.png", cwd=tmp_path)
    assert_refused(done, "would overwrite an input file", peak_mb)
    assert (tmp_path / "astronaut.png").is_symlink()


# ---------------------------------------------------------------------------------------------------------------
# evaluate.py --images: large images in bounded memory, small ones refused with the smallest size named


@pytest.mark.parametrize(("images", "message"), [
    ("", "--images: an empty path"),  # it would mean the current folder, which here holds an image
    ("q" * 300, "--images q+: File name too long"),
    ("photo.png", "--images photo.png: not a folder"),
    ("/dev/zero", "--images /dev/zero: not a folder"),
], ids=["empty", "a name over 255 bytes", "a file", "a device"])
def test_evaluate_refuses_an_impossible_images_path(tmp_path, images, message) -> None:
    cv2.imwrite(str(tmp_path / "photo.png"), face_of((64, 64)))
    before = snapshot(tmp_path)
    done, peak_mb = run_script("evaluate.py", "--images", images, cwd=tmp_path)
    assert_refused(done, message, peak_mb)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(("size", "factor", "smallest"), [
    ((5, 5), "2", "16x16"),
    ((1, 1), "2", "16x16"),
    ((12, 12), "2", "16x16"),  # 8x8 left once the border is cropped: under SSIM's 11x11 window
    ((15, 15), "2", "16x16"),
    ((15, 40), "4", "20x20"),
    ((24, 24), "5x6", "25x24"),
])
def test_evaluate_refuses_an_image_too_small_naming_the_smallest(tmp_path, size, factor, smallest) -> None:
    (tmp_path / "images").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "small.png"), face_of(size))
    before = snapshot(tmp_path)
    done, peak_mb = run_script("evaluate.py", "--images", "images", "--factor", factor, cwd=tmp_path)
    assert_refused(done, f"small.png: .*measure images of at least {smallest} pixels at x{factor}", peak_mb)
    assert snapshot(tmp_path) == before


def test_evaluate_measures_the_smallest_image_it_names(tmp_path) -> None:
    (tmp_path / "images").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "small.png"), face_of((16, 16)))
    done, _ = run_script("evaluate.py", "--images", "images", "--factor", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "x2" in done.stdout and "Traceback" not in done.stderr, done.stdout


@pytest.mark.parametrize("text", ["2", "2.5", "3", "4", "2.25", "7", "5x6", "2.1"])
def test_the_smallest_side_named_is_the_smallest_that_measures(text) -> None:
    """min_side against the metrics themselves: its size gives a PSNR and an SSIM, one pixel less is refused."""
    factor = sd.Factor.parse(text)
    height, width = evaluate.min_side(factor.height), evaluate.min_side(factor.width)
    evaluate.check_measurable("x", height, width, factor)
    image = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    lr, hr = data.make_pair(image, factor)
    scores = data.score(hr, evaluate.bicubic(lr, factor), factor)  # SSIM's window fits
    assert np.isfinite(scores.ssim), scores
    for smaller in ((height - 1, width), (height, width - 1)):
        with pytest.raises(MISTAKES, match=f"at least {height}x{width} pixels"):
            evaluate.check_measurable("x", *smaller, factor)


@pytest.mark.parametrize(("width", "height"), [(4097, 4096), (30000, 30000)])
def test_evaluate_refuses_an_image_over_its_limit_before_decoding(tmp_path, width, height) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "huge.png").write_bytes(png_declaring(width, height))
    done, peak_mb = run_script("evaluate.py", "--images", "images", cwd=tmp_path)
    assert_refused(done, f"huge.png declares {height}x{width} pixels, over evaluate.py's limit of 16,777,216", peak_mb)


@pytest.mark.slow
def test_evaluate_measures_a_4096_square_image_in_bounded_memory(tmp_path) -> None:
    """The largest image evaluate.py takes: its convolutions run tile by tile (untiled, conv1 alone took 4.3 GB)."""
    (tmp_path / "images").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "big.png"), face_of((4096, 4096)))
    done, peak_mb = run_script("evaluate.py", "--images", "images", "--factor", "4", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "x4" in done.stdout, done.stdout
    assert peak_mb < MAX_EVALUATE_MB, f"a 4096x4096 image took {peak_mb} MB"


# ---------------------------------------------------------------------------------------------------------------
# tools/plot_training.py: a record is a small regular file of JSON in train.py's shape


def a_fifo(folder: Path) -> Path:
    os.mkfifo(folder / "fifo.json")  # reading it would wait for a writer for ever
    return folder / "fifo.json"


def a_folder(folder: Path) -> Path:
    (folder / "records").mkdir()
    return folder / "records"


def a_huge_file(folder: Path) -> Path:
    with (folder / "huge.json").open("wb") as file:
        file.truncate(3 * 2**30)  # sparse: 3 GB to read, nothing on disk
    return folder / "huge.json"


def deeply_nested(folder: Path) -> Path:
    (folder / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    return folder / "deep.json"


@pytest.mark.parametrize(("make", "message"), [
    (lambda folder: Path("/dev/zero"), "/dev/zero is not a regular file"),
    (a_fifo, "fifo.json is not a regular file"),
    (a_folder, "records is not a regular file"),
    (a_huge_file, "huge.json holds over 4,194,304 bytes"),
    (deeply_nested, "deep.json nests its JSON too deeply"),
], ids=["a device", "a FIFO", "a folder", "a 3 GB file", "100,000 nested lists"])
def test_plot_training_refuses_what_is_no_record_before_reading_it(tmp_path, make, message) -> None:
    record = make(tmp_path)
    before = snapshot(tmp_path)
    done, peak_mb = run_script("tools/plot_training.py", str(record), "--out", "curve.png", cwd=tmp_path, timeout=120)
    assert_refused(done, message, peak_mb)
    assert snapshot(tmp_path) == before


HISTORY = [[0, 30.0], [2000, 30.4]]


@pytest.mark.parametrize(("text", "message"), [
    ('{"history": [[' + "9" * 5000 + ", 30]]}", "is not JSON"),  # over Python's 4,300 digits
    (b"\xff\xfe{}", "is not JSON"),
    ("", "is not JSON"),
    ('{"history": [[Infinity, 30]]}', "no training history"),
    ('{"history": [[0, NaN]]}', "no training history"),
    ('{"history": [[1' + "0" * 400 + ", 30]]}", "no training history"),  # an integer past any float
    ('{"history": [[true, 30]]}', "no training history"),
    ("[[0, 30]]", "no training history"),
    ('{"history": [[0, 30, 1]]}', "no training history"),
    (json.dumps({"history": HISTORY, "detail": [{"step": 0, "x2": "30"}]}), "its detail is not"),
    (json.dumps({"history": HISTORY, "detail": [{"step": 0, **{f"x{k}": 30.0 for k in range(100)}}]}),
     "its detail is not"),
], ids=["5000 digits", "not UTF-8", "empty", "infinite step", "NaN PSNR", "1e400 step", "a bool", "a list",
        "triples", "a string PSNR", "100 factors"])
def test_plot_training_refuses_a_record_of_another_shape_in_one_line(tmp_path, text, message) -> None:
    path = tmp_path / "record.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(MISTAKES, match=message) as info:
        plot_training.read_record(path)
    assert "\n" not in str(info.value)


def test_plot_training_refuses_a_name_too_long_to_look_up(tmp_path) -> None:
    with pytest.raises(MISTAKES, match="File name too long"):
        plot_training.read_record(tmp_path / ("q" * 300 + ".json"))


def test_plot_training_draws_any_label_as_written(tmp_path) -> None:
    """Names that matplotlib would read as broken math ($...$), and minutes that are not a number, still draw."""
    record = {"recipe": "$\\frac{$ " + "long " * 100, "minutes": "soon", "device": "cpu", "history": HISTORY,
              "detail": [{"step": 0, "$^^$": 30.0}, {"step": 2000, "$^^$": 30.5}]}
    (tmp_path / "record.json").write_text(json.dumps(record))
    done, _ = run_script("tools/plot_training.py", "record.json", "--out", "curve.png", cwd=tmp_path)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert (tmp_path / "curve.png").stat().st_size > 0


# ---------------------------------------------------------------------------------------------------------------
# tools/make_readme_figure.py --weights: the tutorial's one-line reasons, before any export


def not_weights(folder: Path) -> str:
    (folder / "notes.pth").write_text("not weights")
    return "notes.pth"


def another_network(folder: Path) -> str:
    torch.save({"conv1.weight": torch.zeros(64, 1, 9, 9)}, folder / "other.pth")  # a one-channel SRCNN's first layer
    return "other.pth"


def a_weights_folder(folder: Path) -> str:
    (folder / "folder.pth").mkdir()
    return "folder.pth"


@pytest.mark.parametrize(("make", "message"), [
    (not_weights, "weights file notes.pth is corrupt or not a PyTorch file"),
    (another_network, r"other.pth does not fit the tutorial model \(SuperResolutionNet\): missing conv1.bias"),
    (lambda folder: "missing.pth", "weights file not found: missing.pth"),
    (a_weights_folder, "weights file folder.pth is not a file"),
    (lambda folder: "/dev/zero", "weights file /dev/zero is not a file"),
], ids=["not weights", "another shape", "missing", "a folder", "a device"])
def test_make_readme_figure_refuses_wrong_weights_in_one_line(tmp_path, make, message) -> None:
    weights = make(tmp_path)
    before = snapshot(tmp_path)
    done, peak_mb = run_script("tools/make_readme_figure.py", "--weights", weights, "--out", "parity.png",
                               cwd=tmp_path)
    assert_refused(done, message, peak_mb)
    assert snapshot(tmp_path) == before
