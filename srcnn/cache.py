"""The graph the product runs, built once and kept in the user's cache folder, so that a run neither exports nor
imports torch.

An entry is keyed by everything that changes the graph: the weights' content, the model, the exporter and its
opset, the versions of torch, onnx and onnxscript, and the code that writes, cuts and rewrites it. It holds the
parts srcnn.runtime runs (GraphParts), each a serialized ONNX model whose SHA-256 the entry records. A cache folder
that is read-only, full, damaged or shared with other processes never fails a run: a damaged entry is built again,
one process builds while the others wait for it, and a folder that cannot take an entry leaves the graph in
memory for the run; -v says which.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

from srcnn.core import PROJECT_ROOT, SrcnnError, check_opset, check_weights_size
from srcnn.models import MODELS, TUTORIAL_MODEL, model_kind
from srcnn.runtime import GraphParts

log = logging.getLogger("srcnn")

CACHE_FORMAT = 3  # bump when the entry's layout changes
LIBRARIES = ("torch", "onnx", "onnxscript")  # their versions change what the exporters write
# the code that defines, writes, cuts, rewrites and stores the graph
GRAPH_SOURCES = ("srcnn_dynamic.py", "srcnn/core.py", "srcnn/graph.py", "srcnn/rewrite.py", "srcnn/runtime.py",
                 "srcnn/pytorch.py", "srcnn/cache.py", "srcnn/models.py", "srcnn/factor_aware.py")
PARTS_FILE = "parts.json"  # written last: an entry without it is incomplete


def cache_root() -> Path:
    """$XDG_CACHE_HOME/srcnn-dynamic, or ~/.cache/srcnn-dynamic (the XDG default)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")  # RuntimeError without a home
    return Path(base) / "srcnn-dynamic"


def resolved_weights(weights: Path | None, model: str = TUTORIAL_MODEL) -> Path | None:
    """The weights file a run uses: `weights`, else the model's shipped file, else None (missing)."""
    shipped = model_kind(model).weights_path
    return weights if weights is not None else (shipped if shipped.is_file() else None)


def _sha256_of_file(path: Path) -> str:
    """The file's SHA-256, read in blocks: memory stays flat whatever its size."""
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _weights_digest(weights: Path | None) -> str:
    """The weights' SHA-256, after the checks the loader would make first: a file, and not far too large."""
    if weights is None:
        return "seeded initialisation"
    if not weights.is_file():
        raise SrcnnError(f"weights file {weights} is not a file" if weights.exists() else
                         f"weights file not found: {weights}")
    check_weights_size(weights)
    try:
        return _sha256_of_file(weights)
    except OSError as exc:
        raise SrcnnError(f"cannot read weights file {weights}: {exc.strerror or exc}") from None


def _version(package: str) -> str:
    """An installed package's version, read from its metadata (importing torch to ask would cost seconds)."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def graph_key(weights: Path | None, exporter: str, opset: int | None, model: str = TUTORIAL_MODEL) -> str:
    """The cache key of the graph these settings export: a hex digest over everything that changes it."""
    if model not in MODELS:
        raise SrcnnError(f"model {model!r}: expected one of {', '.join(MODELS)}")
    sources = {name: _sha256_of_file(PROJECT_ROOT / name) if (PROJECT_ROOT / name).is_file() else "absent"
               for name in GRAPH_SOURCES}
    facts = {
        "format": CACHE_FORMAT,
        "model": model,
        "weights": _weights_digest(resolved_weights(weights, model)),
        "exporter": exporter,
        "opset": check_opset(exporter, opset),
        "libraries": {name: _version(name) for name in LIBRARIES},
        "sources": sources,
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:32]


def _part_files(parts: GraphParts) -> dict[str, bytes]:
    """An entry's files: each upsampling form, the convolutions, the fast whole graph."""
    return {**{f"upsample-{form}.onnx": model for form, model in parts.upsample.items()},
            "refine.onnx": parts.refine, "fast.onnx": parts.fast}


def load(key: str) -> GraphParts | None:
    """The cached parts under `key`, or None when there are none, or when any part is missing or not the bytes
    that were stored (a disk that filled up, a hand's edit): they are then built again."""
    entry = cache_root() / key
    try:
        facts = json.loads((entry / PARTS_FILE).read_text())
        files = {name: (entry / name).read_bytes() for name in facts["sha256"]}
        damaged = [name for name, data in files.items() if hashlib.sha256(data).hexdigest() != facts["sha256"][name]]
        if damaged:
            raise ValueError(f"{', '.join(damaged)} changed since it was stored")
        parts = GraphParts(upsample={form: files[f"upsample-{form}.onnx"] for form in facts["forms"]},
                           refine=files["refine.onnx"], fast=files["fast.onnx"], halo=int(facts["halo"]),
                           steered=bool(facts["steered"]))
    except FileNotFoundError as exc:
        if entry.exists():
            log.info("the cached graph in %s is incomplete (%s); building it again", entry, exc.filename)
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:  # damaged by hand or by a full disk
        log.info("the cached graph in %s cannot be used (%s); building it again", entry, exc)
        return None
    return parts if _part_files(parts).keys() == files.keys() else None


def store(key: str, parts: GraphParts) -> None:
    """Keep `parts` under `key`, the entry appearing whole (a renamed folder) or not at all; a cache folder that
    cannot take it is logged and left alone."""
    root = cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))  # beside the entry: the rename is atomic
        try:
            files = _part_files(parts)
            for name, data in files.items():
                _write_synced(staging / name, data)
            facts = {"forms": list(parts.upsample), "halo": parts.halo, "steered": parts.steered,
                     "sha256": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}}
            _write_synced(staging / PARTS_FILE, json.dumps(facts).encode())
            entry = root / key
            if entry.exists():  # damaged (load gave None): moved aside whole, so no reader sees half of it
                os.rename(entry, Path(tempfile.mkdtemp(prefix=f".{key}.old.", dir=root)) / key)
            os.rename(staging, entry)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            for old in root.glob(f".{key}.old.*"):
                shutil.rmtree(old, ignore_errors=True)
        log.info("cached the graph in %s", entry)
    except OSError as exc:  # read-only, full or missing: the run goes on with the graph in memory
        log.info("cannot cache the graph in %s (%s); it was built in memory for this run", root,
                 exc.strerror or exc)


def _write_synced(path: Path, data: bytes) -> None:
    """Write `data` and flush it to the disk before the entry is renamed into place (a power cut leaves no
    zero-length part behind a complete-looking entry)."""
    with path.open("wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


@contextlib.contextmanager
def _building(key: str) -> Iterator[None]:
    """Hold the entry's lock while it is built: processes that start together (a pool on a cold cache) export
    once, the others wait and then load it. Without a usable cache folder there is nothing to share: no lock."""
    try:
        cache_root().mkdir(parents=True, exist_ok=True)
        lock = (cache_root() / f".{key}.lock").open("a")
    except OSError:
        yield
        return
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


def graph_parts(weights: Path | None = None, exporter: str = "torchscript", opset: int | None = None,
                model: str = TUTORIAL_MODEL) -> GraphParts:
    """The parts of the graph these settings export: from the cache, or exported now (torch) and cached."""
    key = graph_key(weights, exporter, opset, model)
    if resolved_weights(weights, model) is None and model_kind(model).tutorial:  # said on every run
        log.warning("no weights (%s is missing, and no --weights given): the graph has a seeded random"
                    " initialisation; its results are not super-resolved", model_kind(model).weights)
    try:
        cache_root()
    except RuntimeError as exc:  # no home folder and no XDG_CACHE_HOME: nothing to keep, build in memory
        log.info("no cache folder (%s); building the graph in memory", exc)
        return _build(weights, exporter, opset, model)
    if (parts := load(key)) is not None:
        log.info("using the cached graph %s", cache_root() / key)
        return parts
    with _building(key):
        if (parts := load(key)) is not None:  # another process built it while this one waited
            return parts
        parts = _build(weights, exporter, opset, model)
        store(key, parts)
    return parts


def _build(weights: Path | None, exporter: str, opset: int | None, model: str) -> GraphParts:
    """Export the model with PyTorch and cut it into the parts the runtime runs."""
    log.info("building the graph (the %s model, %s exporter; needs PyTorch, once)", model, exporter)
    from srcnn import graph, pytorch  # torch and onnx load here, only when the graph is not cached

    return graph.graph_parts(pytorch.export(weights, exporter, opset, model))
