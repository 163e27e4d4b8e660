"""The graph the product runs, built once and kept in the user's cache folder, so that a run neither exports nor
imports torch.

An entry is keyed by everything that changes the graph: the weights' content, the model, the exporter and its
opset, the versions of torch, onnx and onnxscript, and the code that writes and rewrites it. It holds the parts
srcnn.runtime runs (GraphParts), each a serialized ONNX model. A cache folder that is read-only, full or damaged
never fails a run: the graph is then built in memory, and -v says so.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path

from srcnn.core import DEFAULT_WEIGHTS, PROJECT_ROOT, check_opset
from srcnn.runtime import GraphParts

log = logging.getLogger("srcnn")

CACHE_FORMAT = 1  # bump when the entry's layout changes
MODEL = "tutorial"  # the one model the product ships today: srcnn_dynamic.SuperResolutionNet
LIBRARIES = ("torch", "onnx", "onnxscript")  # their versions change what the exporters write
GRAPH_SOURCES = ("srcnn_dynamic.py", "srcnn/graph.py", "srcnn/rewrite.py")  # the code that writes the graph
PARTS_FILE = "parts.json"  # written last: an entry without it is incomplete


def cache_root() -> Path:
    """$XDG_CACHE_HOME/srcnn-dynamic, or ~/.cache/srcnn-dynamic (the XDG default)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "srcnn-dynamic"


def resolved_weights(weights: Path | None) -> Path | None:
    """The weights file a run uses: `weights`, else the shipped file, else None (a seeded initialisation)."""
    return weights if weights is not None else (DEFAULT_WEIGHTS if DEFAULT_WEIGHTS.is_file() else None)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "absent"


def graph_key(weights: Path | None, exporter: str, opset: int | None) -> str:
    """The cache key of the graph these settings export: a hex digest over everything that changes it."""
    weights = resolved_weights(weights)
    facts = {
        "format": CACHE_FORMAT,
        "model": MODEL,
        "weights": _sha256(weights) if weights is not None else "seeded initialisation",
        "exporter": exporter,
        "opset": check_opset(exporter, opset),
        "libraries": {name: _version(name) for name in LIBRARIES},
        "sources": {name: _sha256(PROJECT_ROOT / name) for name in GRAPH_SOURCES},
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:32]


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def load(key: str) -> GraphParts | None:
    """The cached parts under `key`, or None when there are none or they cannot be read (then they are rebuilt)."""
    entry = cache_root() / key
    try:
        facts = json.loads((entry / PARTS_FILE).read_text())
        return GraphParts(upsample={form: (entry / f"upsample-{form}.onnx").read_bytes() for form in facts["forms"]},
                          refine=(entry / "refine.onnx").read_bytes(), fast=(entry / "fast.onnx").read_bytes(),
                          halo=int(facts["halo"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:  # damaged by hand or by a full disk: rebuild
        log.info("the cached graph in %s cannot be read (%s); building it again", entry, exc)
        return None


def store(key: str, parts: GraphParts) -> None:
    """Keep `parts` under `key`; a cache folder that cannot take them is logged and left alone."""
    root = cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))  # beside the entry: the rename is atomic
        try:
            for form, model in parts.upsample.items():
                (staging / f"upsample-{form}.onnx").write_bytes(model)
            (staging / "refine.onnx").write_bytes(parts.refine)
            (staging / "fast.onnx").write_bytes(parts.fast)
            (staging / PARTS_FILE).write_text(json.dumps({"forms": list(parts.upsample), "halo": parts.halo}))
            entry = root / key
            if entry.exists():  # a damaged entry (load gave None), or another process's, just written
                shutil.rmtree(entry, ignore_errors=True)
            os.rename(staging, entry)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        log.info("cached the graph in %s", root / key)
    except OSError as exc:  # read-only, full or missing: the run goes on with the graph in memory
        log.info("cannot cache the graph in %s (%s); it was built in memory for this run", root,
                 exc.strerror or exc)


def graph_parts(weights: Path | None = None, exporter: str = "torchscript", opset: int | None = None) -> GraphParts:
    """The parts of the graph these settings export: from the cache, or exported now (torch) and cached."""
    key = graph_key(weights, exporter, opset)
    if (parts := load(key)) is not None:
        log.info("using the cached graph %s", cache_root() / key)
        return parts
    log.info("building the graph (%s exporter; needs PyTorch, once)", exporter)
    from srcnn import graph, pytorch  # torch and onnx load here, only when the graph is not cached

    parts = graph.graph_parts(pytorch.export(weights, exporter, opset))
    store(key, parts)
    return parts
