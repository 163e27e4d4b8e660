"""A trial run of a graph given with --onnx, in a child process bounded in time and memory, before any photo.

A file that looks like this project's graph (its inputs, its Resize, its three convolutions) may still hold work
that no photo should pay for: a Loop that never ends, a Tile or a Range that asks for gigabytes, input sizes fixed
at 8x8. srcnn.graph refuses operators this project's graphs never use; this module runs what is left on a few small
images of different sizes, batch 2 among them, in a process that is killed past PROBE_SECONDS and cannot map more
than PROBE_MEMORY bytes, and names what went wrong. Run as `python -m srcnn.probe`: the graph on stdin, a JSON
list of problems on stdout.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

# (batch, height, width, factor): odd sizes, a factor near 1, unequal factors, batch 2; all tiny, so that this
# project's model runs them in milliseconds.
PROBES = ((1, 8, 8, "2"), (2, 13, 21, "2.5x3"), (1, 5, 31, "1.25"))
PROBE_SECONDS = 30.0  # the child starts in about 0.5 s and this project's model runs the probes in 0.1 s
PROBE_MEMORY = 3 * 2**30  # address space of the child: it maps about 0.8 GB running this project's model
PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # where the child finds `srcnn`, installed or not


def probe_problems(model: bytes) -> list[str]:
    """What goes wrong when the serialized graph `model` runs the PROBES in ONNX Runtime: empty when nothing does."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))}
    try:
        done = subprocess.run([sys.executable, "-m", "srcnn.probe"], input=model, capture_output=True, env=env,
                              timeout=PROBE_SECONDS, check=False)
    except subprocess.TimeoutExpired:  # subprocess.run has killed the child
        return [f"its trial run on {len(PROBES)} small images did not end within {PROBE_SECONDS:g} s"]
    if done.returncode < 0:
        return [f"its trial run was killed by {signal.Signals(-done.returncode).name} (out of memory?)"]
    try:
        problems = json.loads(done.stdout)
    except ValueError:  # the child died before it could answer: its last line of stderr says why
        said = done.stderr.decode(errors="replace").strip().splitlines() or [f"exit code {done.returncode}"]
        return [f"its trial run failed: {said[-1]}"]
    return [str(problem) for problem in problems]


def _limit_memory(limit: int) -> None:
    """Cap this process's address space, where the platform allows it: an allocation past it fails, no more."""
    try:
        import resource
    except ImportError:  # Windows: the time limit still holds
        return
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))


def _run_probes(model: bytes) -> list[str]:
    """The child's work: each probe's failure, wrong shape or non-finite output, in one line each."""
    import numpy as np

    from srcnn.core import Factor
    from srcnn.ort_runtime import create_session, run_session

    try:
        session = create_session(model)
    except Exception as exc:  # ORT's own errors: an opset or IR version it does not know, an invalid graph...
        return [f"it does not load: {(str(exc).strip() or type(exc).__name__).splitlines()[0]}"]
    problems = []
    for batch, height, width, text in PROBES:
        factor, where = Factor.parse(text), f"a {batch}x3x{height}x{width} input at x{text}"
        expected = (batch, 3, *factor.output_size(height, width))
        try:
            out = run_session(session, np.full((batch, 3, height, width), 0.5, np.float32), factor)
        except Exception as exc:  # MemoryError and ORT's failures alike: the graph cannot run this input
            problems.append(f"it fails on {where} ({(str(exc).strip() or type(exc).__name__).splitlines()[0]})")
            continue
        if out.shape != expected or not np.isfinite(out).all():
            problems.append(f"it gives {out.shape} (all finite: {bool(np.isfinite(out).all())}) on {where};"
                            f" this project's model gives {expected}, finite")
    return problems


def main() -> None:
    _limit_memory(PROBE_MEMORY)
    print(json.dumps(_run_probes(sys.stdin.buffer.read())))


if __name__ == "__main__":
    main()
