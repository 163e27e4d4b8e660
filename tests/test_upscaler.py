"""The product as people use it: one result per photo, folders and reruns, the cache, no torch on the hot path,
--save-onnx for plain ONNX Runtime, --check, and the Python API (picklable, from a process pool)."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import re
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from conftest import ROOT, cli_env, run_cli

import srcnn_dynamic as sd
from srcnn import app, cache, core, models, report, runtime, weights
from srcnn.upscaler import Upscaler


def photo(path: Path, size: tuple[int, int] = (24, 32)) -> Path:
    """A small crop of face.png, written in `path`'s format."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.resize(cv2.imread(str(ROOT / "face.png")), size[::-1], interpolation=cv2.INTER_AREA))
    return path


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def imported(done: subprocess.CompletedProcess[str], *packages: str) -> list[str]:
    """The modules of `packages` a `python -X importtime` run imported: its stderr has a line per module, the name
    indented by its depth ("import time: 12 | 345 |     torch")."""
    pattern = re.compile(rf"\|\s+({'|'.join(map(re.escape, packages))})(\.\S+)?\s*$")
    lines = [line for line in done.stderr.splitlines() if line.startswith("import time")]
    return [line.strip() for line in lines if pattern.search(line)]


def test_a_folder_gives_one_result_per_photo_and_a_rerun_writes_nothing(tmp_path) -> None:
    for name in ("a.png", "b.jpg", "c.webp"):
        photo(tmp_path / "photos" / name)
    first = run_cli("-i", "photos", "-s", "2", "-o", "out", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert files_under(tmp_path / "out") == ["a_x2.png", "b_x2.jpg", "c_x2.webp"], files_under(tmp_path / "out")
    assert first.stdout.startswith("upscaled 3 images into 3 results"), first.stdout
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").iterdir()}
    second = run_cli("-i", "photos", "-s", "2", "-o", "out", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "nothing to do" in second.stdout and "--overwrite" in second.stdout, second.stdout
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "out").iterdir()} == stamps, "a rerun must write nothing"
    third = run_cli("-i", "photos", "-s", "2", "-o", "out", "--overwrite", "-q", cwd=tmp_path)
    assert third.returncode == 0 and third.stdout == "" and third.stderr == "", third
    assert all(p.stat().st_mtime_ns > stamps[p] for p in stamps), "--overwrite must compute every result again"


def test_an_incomplete_result_is_computed_again(tmp_path) -> None:
    photo(tmp_path / "photos" / "a.png")
    photo(tmp_path / "photos" / "b.jpg")
    assert app.run(tmp_path / "photos", [core.Factor.parse("2")], output_dir=tmp_path / "out").written
    whole = (tmp_path / "out" / "b_x2.jpg").read_bytes()
    (tmp_path / "out" / "b_x2.jpg").write_bytes(whole[: len(whole) // 2])  # cut short, as by a crash elsewhere
    again = app.run(tmp_path / "photos", [core.Factor.parse("2")], output_dir=tmp_path / "out")
    assert [p.name for p in again.written] == ["b_x2.jpg"], again
    assert [p.name for p in again.existing] == ["a_x2.png"], again
    assert (tmp_path / "out" / "b_x2.jpg").read_bytes() == whole, "the result computed again is the same"
    result = tmp_path / "out" / "a_x2.png"
    os.utime(tmp_path / "photos" / "a.png", ns=(result.stat().st_mtime_ns + 10**9,) * 2)  # the photo, edited since
    edited = app.run(tmp_path / "photos", [core.Factor.parse("2")], output_dir=tmp_path / "out")
    assert [p.name for p in edited.written] == ["a_x2.png"], f"a photo newer than its result is done again: {edited}"


def test_recursive_mirrors_sub_folders_and_never_reads_its_results(tmp_path) -> None:
    photos = tmp_path / "photos"
    for name in ("a.png", "2024/b.png", "2024/summer/c.jpg"):
        photo(photos / name)
    out = photos / "upscaled"  # the results inside the photos' folder: never read back as photos
    flat = app.run(photos, [core.Factor.parse("2")], output_dir=out)
    assert files_under(out) == ["a_x2.png"], f"without --recursive only the folder itself: {files_under(out)}"
    assert [p.name for p in flat.left_out] == ["2024"], f"the sub-folder left out is told: {flat.left_out}"
    assert "1 sub-folder not read (-r reads them)" in report.summary(flat), report.summary(flat)
    deep = app.run(photos, [core.Factor.parse("2")], output_dir=out, recursive=True)
    assert files_under(out) == ["2024/b_x2.png", "2024/summer/c_x2.jpg", "a_x2.png"], files_under(out)
    assert len(deep.written) == 2 and len(deep.existing) == 1 and len(flat.written) == 1, (flat, deep)
    again = app.run(photos, [core.Factor.parse("2")], output_dir=out, recursive=True)
    assert not again.written and len(again.existing) == 3, again


def test_a_broken_photo_is_named_once(tmp_path) -> None:
    """One photo refused by its header (while planning), one whose pixels do not decode (while upscaling)."""
    photo(tmp_path / "photos" / "a.png")
    (tmp_path / "photos" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    whole = (tmp_path / "photos" / "cut.jpg")
    photo(whole)
    whole.write_bytes(whole.read_bytes()[:400])  # the header survives, the pixels do not
    done = run_cli("-i", "photos", "-s", "2", "-o", "out", cwd=tmp_path)
    assert done.returncode == core.EXIT_SKIPPED, done.stderr
    assert (done.stderr.count("broken.png"), done.stderr.count("cut.jpg")) == (1, 1), done.stderr
    assert "2 skipped" in done.stdout, done.stdout


def importtime(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "srcnn", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env=cli_env())
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_the_hot_path_and_help_import_no_torch(tmp_path) -> None:
    """`python -X importtime` lists every module a run imports: a cached run, --onnx and --help load no torch;
    a cached run and --help not even onnx (the cache holds the parts ready to run)."""
    photo(tmp_path / "a.png")
    importtime(["-i", "a.png", "-s", "2", "-o", "warm", "--save-onnx", "fast.onnx"], tmp_path)  # cached from now
    for args, forbidden in ((["--help"], ("torch", "srcnn_dynamic", "onnx", "onnxruntime")),
                            (["-i", "a.png", "-s", "2", "-o", "cached"], ("torch", "srcnn_dynamic", "onnx")),
                            (["-i", "a.png", "-s", "2.5", "-o", "given", "--onnx", "fast.onnx"],
                             ("torch", "srcnn_dynamic"))):
        done = importtime(args, tmp_path)
        assert imported(done, *forbidden) == [], f"{args} imported {imported(done, *forbidden)[:5]}"
    assert imported(importtime(["-i", "a.png", "-s", "3", "-o", "checked", "--check"], tmp_path), "torch"), \
        "the pattern must see torch where it is imported (--check)"
    written = files_under(tmp_path / "cached"), files_under(tmp_path / "given")
    assert written == (["a_x2.png"], ["a_x2.5.png"]), written


def default_network() -> torch.nn.Module:
    """The model python -m srcnn and Upscaler() run by default, with its shipped weights, in PyTorch."""
    return weights.load_model(None, models.DEFAULT_MODEL)


def test_save_onnx_writes_the_fast_graph_for_plain_onnxruntime(tmp_path) -> None:
    done = run_cli("--save-onnx", "fast.onnx", cwd=tmp_path)
    assert done.returncode == 0 and sorted(os.listdir(tmp_path)) == ["fast.onnx"], (done.stderr, os.listdir(tmp_path))
    proto = onnx.load(tmp_path / "fast.onnx")
    onnx.checker.check_model(proto, full_check=True)
    assert [i.name for i in proto.graph.input] == list(core.INPUT_NAMES), proto.graph.input
    assert not [n for n in proto.graph.node if n.op_type == "Resize"], "the fast form has no cubic Resize left"
    # As the README's snippet runs it: plain ONNX Runtime, nothing from this project.
    session = ort.InferenceSession(tmp_path / "fast.onnx", providers=["CPUExecutionProvider"])
    image = np.random.default_rng(0).random((1, 3, 13, 17), dtype=np.float32)
    (out,) = session.run(None, {"input": image, "factor": np.array([1, 1, 2.5, 3], np.float32)})
    reference = sd.run_torch(default_network(), torch.from_numpy(image), sd.Factor(2.5, 3.0))  # the default model
    diff = float(np.abs(out - reference).max())
    assert out.shape == (1, 3, 32, 51) and diff <= core.PARITY_ATOL, f"{out.shape}, max |ORT - PyTorch| {diff:.2e}"
    photo(tmp_path / "a.png")
    again = run_cli("-i", "a.png", "-s", "3", "-o", "out", "--onnx", "fast.onnx", "--check", cwd=tmp_path)
    assert again.returncode == 0 and "ok" in again.stdout, again.stdout + again.stderr


def test_a_saved_fast_graph_refuses_a_long_side_that_needs_the_gathers(tmp_path) -> None:
    """The fast form has its matrix products only: for 4000x20 at x4 they would hold 64 million weights (GBs)."""
    assert run_cli("--save-onnx", "fast.onnx", cwd=tmp_path).returncode == 0
    photo(tmp_path / "strip.png", size=(4000, 20))
    done = run_cli("-i", "strip.png", "-s", "4", "-o", "out", "--onnx", "fast.onnx", cwd=tmp_path)
    assert done.returncode == core.EXIT_USAGE and "without --onnx" in done.stderr, done.stderr
    assert not (tmp_path / "out").exists(), "a refused run writes nothing"


def test_a_cache_folder_that_cannot_be_made_builds_in_memory_and_says_so_under_v(tmp_path) -> None:
    """As root, permissions never refuse a write: a file where the cache folder should be refuses it for anyone."""
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "srcnn-dynamic").write_text("a file where the cache folder should be")
    photo(tmp_path / "a.png")
    done = subprocess.run([sys.executable, "-m", "srcnn", "-i", "a.png", "-s", "2", "-o", "out", "-v"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300,
                          env={**cli_env(), "XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr
    assert "cannot cache the graph" in done.stderr and "built in memory" in done.stderr, done.stderr
    assert files_under(tmp_path / "out") == ["a_x2.png"], files_under(tmp_path / "out")


@pytest.mark.parametrize("damage", ["parts.json", "refine.onnx", "fast.onnx", "upsample-matmul.onnx"])
def test_the_cache_follows_xdg_cache_home_and_a_damaged_entry_is_rebuilt(tmp_path, monkeypatch, damage) -> None:
    """A part cut short (a full disk, a power cut) or edited is found by its SHA-256 and built again."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    key = cache.graph_key(None, "torchscript", None)
    built = cache.graph_parts()
    entry = tmp_path / "cache" / "srcnn-dynamic" / key
    assert (entry / cache.PARTS_FILE).is_file(), f"no entry in {entry}: {files_under(tmp_path / 'cache')}"
    assert cache.load(key) == built, "an entry loads as it was stored"
    (entry / damage).write_bytes((entry / damage).read_bytes()[:100])
    assert cache.load(key) is None, f"{damage} cut short must not load"
    assert cache.graph_parts() == built, "a damaged entry is exported and cached again, to the same graph"
    assert cache.load(key) == built, "the rebuilt entry loads"
    assert sorted(p.name for p in (tmp_path / "cache" / "srcnn-dynamic").iterdir()) == [f".{key}.lock", key], \
        "nothing but the entry and its lock is left (no staging or damaged folders)"


def test_processes_starting_together_on_a_cold_cache_export_once(tmp_path) -> None:
    photo(tmp_path / "a.png")
    env = {**cli_env(), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    runs = [subprocess.Popen([sys.executable, "-m", "srcnn", "-i", "a.png", "-s", "2", "-o", f"out{i}", "-v"],
                             cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            for i in range(2)]
    logs = [run.communicate(timeout=300)[1] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], logs
    exports = sum(log.count("building the graph") for log in logs)
    assert exports == 1, f"{exports} exports for one setting:\n" + "\n".join(logs)


def test_the_cache_key_follows_the_library_versions(monkeypatch) -> None:
    before = cache.graph_key(None, "torchscript", None)
    monkeypatch.setattr(cache, "_version", lambda package: "0.0" if package == "onnxscript" else "9.9")
    assert cache.graph_key(None, "torchscript", None) != before, "another torch or onnxscript writes another graph"


def test_the_cache_key_follows_the_weights_exporter_and_opset(tmp_path) -> None:
    other = tmp_path / "other.pth"
    other.write_bytes(sd.DEFAULT_WEIGHTS.read_bytes() + b"\0")
    keys = {cache.graph_key(None, "torchscript", None), cache.graph_key(other, "torchscript", None),
            cache.graph_key(None, "dynamo", None), cache.graph_key(None, "torchscript", 13)}
    assert len(keys) == 4, keys
    assert cache.graph_key(None, "torchscript", None) == cache.graph_key(sd.DEFAULT_WEIGHTS, "torchscript", 11)


def test_check_keeps_the_tutorials_table_and_exit_codes(tmp_path, monkeypatch, capsys) -> None:
    photo(tmp_path / "a.png")
    checked = app.run(tmp_path / "a.png", [core.Factor.parse("2")], output_dir=tmp_path / "out", check=True, runs=1)
    assert files_under(tmp_path / "out") == ["a_ort_2.png", "a_torch_2.png"]
    code, out = report.finish(checked), capsys.readouterr().out
    assert code == core.EXIT_OK and "ok" in out, f"exit {code}:\n{out}"
    real_call = runtime.Runner.__call__
    monkeypatch.setattr(runtime.Runner, "__call__", lambda self, *a, **k: real_call(self, *a, **k) + 1e-3)
    drifted = app.run(tmp_path / "a.png", [core.Factor.parse("2")], output_dir=tmp_path / "out2", check=True, runs=1)
    code, out = report.finish(drifted), capsys.readouterr().out
    assert code == core.EXIT_MISMATCH and "FAIL" in out, f"exit {code}:\n{out}"


# ---------------------------------------------------------------------------------------------------------------
# The Python API


@pytest.fixture(scope="module")
def upscaler() -> Upscaler:
    return Upscaler(threads=1)


@pytest.mark.parametrize(("shape", "dtype"), [((20, 30, 3), np.uint8), ((20, 30), np.uint16), ((20, 30, 4), np.uint8),
                                              ((20, 30, 3), np.float32)])
def test_the_api_keeps_layout_and_type(upscaler, shape, dtype) -> None:
    rng = np.random.default_rng(1)
    image = rng.random(shape, dtype=np.float32) if dtype == np.float32 else rng.integers(0, np.iinfo(dtype).max,
                                                                                              shape, dtype=dtype)
    out = upscaler(image, "2.5")
    assert out.shape == (50, 75, *shape[2:]) and out.dtype == dtype, f"{shape} {dtype} -> {out.shape} {out.dtype}"
    assert np.array_equal(upscaler(image, (2.5, 2.5)), out), "a (height, width) pair is the same factor"


def test_the_api_equals_pytorch(upscaler) -> None:
    image = np.random.default_rng(2).random((17, 23, 3), dtype=np.float32)
    reference = np.clip(sd.run_torch(default_network(), torch.from_numpy(image.transpose(2, 0, 1)[None].copy()),
                                     sd.Factor(3.0, 2.0))[0].transpose(1, 2, 0), 0, 1)
    diff = float(np.abs(upscaler(image, "3x2") - reference).max())
    assert diff <= core.PARITY_ATOL, f"max |API - PyTorch| = {diff:.2e}"


def test_the_api_refuses_in_one_line(upscaler) -> None:
    for image, factor, words in [(np.zeros((4, 4, 2), np.uint8), 2, r"expected \(H, W\)"),
                                 (np.zeros((4, 4, 3), np.int32), 2, "expected uint8"),
                                 (np.zeros((4, 4, 3), np.uint8), 0.5, "finite number >= 1")]:
        with pytest.raises(core.SrcnnError, match=words) as info:
            upscaler(image, factor)
        assert "\n" not in str(info.value), str(info.value)
    for settings, words in [({"model": "esrgan"}, "expected one of tutorial"), ({"device": "gpu"}, "expected one of"),
                            ({"weights": "a.pth", "onnx": "b.onnx"}, "give one of them"), ({"tile": 7}, "--tile 32")]:
        with pytest.raises(core.SrcnnError, match=words):
            Upscaler(**settings)


def _upscale_in_worker(job: tuple[Upscaler, np.ndarray]) -> np.ndarray:
    upscaler, image = job
    return upscaler(image, 2)


def test_the_api_pickles_and_runs_in_a_process_pool(upscaler) -> None:
    images = [np.random.default_rng(seed).integers(0, 255, (16, 12, 3), dtype=np.uint8) for seed in range(3)]
    expected = [upscaler(image, 2) for image in images]  # the sessions exist now: pickling must leave them out
    copy = pickle.loads(pickle.dumps(upscaler))
    assert copy._runner is None and len(pickle.dumps(upscaler)) < 1000, "an upscaler pickles as its settings"
    # spawn, not fork: this process already runs ONNX Runtime's thread pools
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(_upscale_in_worker, [(upscaler, image) for image in images]))
    for got, want in zip(results, expected, strict=True):
        assert np.array_equal(got, want), f"a worker's result differs by {np.abs(got.astype(int) - want).max()} levels"


# ---------------------------------------------------------------------------------------------------------------
# Nothing of the photo lost, end to end


def camera_exif(orientation: int) -> bytes:
    """An EXIF block as a camera writes one: make, model, the date taken (in the Exif sub-IFD), the orientation."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112] = "Fujifilm", "X-T5", orientation  # Make, Model, Orientation
    exif.get_ifd(0x8769)[0x9003] = "2026:07:14 18:30:00"  # DateTimeOriginal
    exif.get_ifd(0x8769)[0xA002], exif.get_ifd(0x8769)[0xA003] = 30, 20  # PixelX/YDimension: the stored picture
    return exif.tobytes()


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_a_photo_keeps_its_exif_icc_and_text(tmp_path, suffix) -> None:
    """A sideways camera photo with a colour profile (and, in PNG, text): the result is upright, orientation 1, and
    keeps the date, the camera, the very same profile and the text."""
    from PIL import Image, ImageCms, PngImagePlugin

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    stored = Image.fromarray(np.ascontiguousarray(cv2.resize(cv2.imread(str(ROOT / "face.png")), (30, 20))[:, :, ::-1]))
    extra = {"quality": 95} if suffix == ".jpg" else {"pnginfo": PngImagePlugin.PngInfo()}
    if suffix == ".png":
        extra["pnginfo"].add_text("Description", "the astronaut")
        extra["pnginfo"].add_itxt("Title", "宇宙飛行士")
    stored.save(tmp_path / f"photo{suffix}", exif=camera_exif(6), icc_profile=icc, **extra)
    done = run_cli("-i", f"photo{suffix}", "-s", "2", "-o", "out", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    with Image.open(tmp_path / "out" / f"photo_x2{suffix}") as result:
        exif = result.getexif()
        sub = exif.get_ifd(0x8769)
        got = (result.size, exif.get(0x0112), exif.get(0x010F), exif.get(0x0110), sub.get(0x9003),
               (sub.get(0xA002), sub.get(0xA003)), result.info.get("icc_profile") == icc)
        texts = getattr(result, "text", {}) if suffix == ".png" else {}
    assert got == ((40, 60), 1, "Fujifilm", "X-T5", "2026:07:14 18:30:00", (40, 60), True), \
        f"(size, orientation, make, model, date, EXIF pixel size, same profile) = {got}"
    if suffix == ".png":
        assert texts == {"Description": "the astronaut", "Title": "宇宙飛行士"}, texts


def test_the_readmes_plain_onnxruntime_snippet_runs_the_saved_graph(tmp_path) -> None:
    """The README's snippet, as it is, on the file `srcnn --save-onnx srcnn.onnx` writes: a face_x2.5.png of 640x640."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Use it from plain ONNX Runtime"):]
    start = section.index("```python") + len("```python")
    snippet = section[start:section.index("```", start)]
    assert run_cli("--save-onnx", "srcnn.onnx", cwd=tmp_path).returncode == 0
    (tmp_path / "face.png").write_bytes((ROOT / "face.png").read_bytes())
    done = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = cv2.imread(str(tmp_path / "face_x2.5.png"))
    assert result is not None and result.shape == (640, 640, 3), None if result is None else result.shape


def test_a_sub_folder_that_cannot_be_listed_is_named_and_the_rest_goes_on(tmp_path, monkeypatch) -> None:
    """As root every folder can be listed: os.scandir is told to refuse one, as it would for another user."""
    photo(tmp_path / "photos" / "a.png")
    photo(tmp_path / "photos" / "private" / "b.png")
    real_scandir = os.scandir

    def refusing(path: object) -> object:
        if Path(str(path)).name == "private":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", refusing)
    done = app.run(tmp_path / "photos", [core.Factor.parse("2")], output_dir=tmp_path / "out", recursive=True)
    assert [p.name for p in done.written] == ["a_x2.png"], done
    assert [(p.name, "Permission denied" in why) for p, why in done.skipped] == [("private", True)], done.skipped
    assert report.finish(done, quiet=True) == core.EXIT_SKIPPED


def test_hidden_files_and_folders_are_not_photos(tmp_path) -> None:
    """A folder copied from a Mac or a camera card: ._ companions, dot files and thumbnail folders are left alone."""
    photos = tmp_path / "photos"
    photo(photos / "a.jpg")
    (photos / "._a.jpg").write_bytes(b"\0\5\26\7 AppleDouble companion, not a JPEG")
    photo(photos / ".hidden.jpg")
    photo(photos / ".thumbs" / "t.jpg")
    done = app.run(photos, [core.Factor.parse("2")], output_dir=tmp_path / "out", recursive=True)
    assert files_under(tmp_path / "out") == ["a_x2.jpg"] and not done.skipped, (files_under(tmp_path / "out"), done)


def test_several_photos_and_folders_in_one_run(tmp_path) -> None:
    """-i a.png b.png -i folder: every photo once, a folder's mirrored; the same result name twice is refused."""
    photo(tmp_path / "a.png")
    photo(tmp_path / "b.png")
    photo(tmp_path / "more" / "c.png")
    done = run_cli("-i", "a.png", "b.png", "-i", "more", "-s", "2", "-o", "out", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert files_under(tmp_path / "out") == ["a_x2.png", "b_x2.png", "c_x2.png"], files_under(tmp_path / "out")
    photo(tmp_path / "more" / "a.png")
    clash = run_cli("-i", "a.png", "more", "-s", "2", "-o", "clash", cwd=tmp_path)
    assert clash.returncode == core.EXIT_USAGE and "give results of one name" in clash.stderr, clash.stderr


def test_a_full_cache_disk_builds_in_memory(tmp_path, monkeypatch, caplog) -> None:
    """No space left while the entry is written: the run goes on with the graph in memory, nothing half-kept."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def full(path: Path, data: bytes) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache, "_write_synced", full)
    with caplog.at_level("INFO", logger="srcnn"):
        parts = cache.graph_parts()
    assert parts.refine and parts.upsample, "the graph was built all the same"
    assert "No space left on device" in caplog.text and "built in memory" in caplog.text, caplog.text
    left = sorted(p.name for p in (tmp_path / "cache" / "srcnn-dynamic").iterdir())
    assert all(name.endswith(".lock") for name in left), f"no staging folder or partial entry is left: {left}"


def test_a_link_loop_in_a_folder_is_skipped_and_the_rest_goes_on(tmp_path) -> None:
    """b.png -> c.png -> b.png, and a link to the folder itself: named, skipped (exit 3), never followed."""
    photos = tmp_path / "photos"
    photo(photos / "a.png")
    (photos / "b.png").symlink_to("c.png")
    (photos / "c.png").symlink_to("b.png")
    (photos / "self").symlink_to(".")
    done = run_cli("-i", "photos", "-s", "2", "-o", "out", "-r", cwd=tmp_path)
    assert done.returncode == core.EXIT_SKIPPED and "Traceback" not in done.stderr, done.stderr
    assert files_under(tmp_path / "out") == ["a_x2.png"], files_under(tmp_path / "out")
    assert (done.stderr.count("b.png"), done.stderr.count("c.png")) == (1, 1), done.stderr
