"""`python -m srcnn --check`: every result computed by PyTorch too, both written and compared, as in the tutorial.

PyTorch computes in float32, the judge of every runtime and precision: float32 results must match it within
PARITY_ATOL, bf16 ones within the PSNR budget that srcnn.core derives (within_budget).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import srcnn_dynamic as sd
from srcnn.core import Factor, Precision, budget_text, within_budget
from srcnn.images import Picture
from srcnn.models import TUTORIAL_MODEL
from srcnn.plan import Job
from srcnn.pytorch import run_torch
from srcnn.runtime import Runner
from srcnn.weights import load_model


@dataclass(frozen=True)
class Comparison:
    """A runtime's result against PyTorch's on one image at one factor."""

    image: str
    factor: Factor
    runtime: str  # the runtime's tag: "ORT", "OpenVINO"
    precision: Precision
    output_size: tuple[int, int]
    max_abs_diff: float
    psnr_db: float
    torch_ms: float
    runtime_ms: float
    ok: bool  # within the precision's budget (srcnn.core.within_budget)


def compare(image: str, factor: Factor, runner: Runner, torch_out: np.ndarray, out: np.ndarray, torch_ms: float,
            runtime_ms: float) -> Comparison:
    """The parity figures of one pair of results, which must have the same shape."""
    assert torch_out.shape == out.shape, f"{image} x{factor.tag}: {torch_out.shape} vs {out.shape}"
    diff, psnr_db = float(np.max(np.abs(torch_out - out))), sd.psnr(torch_out, out)
    return Comparison(image, factor, runner.tag, runner.precision, out.shape[2:], diff, psnr_db, torch_ms,
                      runtime_ms, ok=within_budget(runner.precision, diff, psnr_db))


def format_table(rows: list[Comparison]) -> str:
    """One row per image and factor, as the tutorial's table; an image column only when there are several images."""
    several = len({r.image for r in rows}) > 1
    tag, precision = rows[0].runtime, rows[0].precision  # one runner per run
    header = ("factor", "output (HxW)", f"max |{tag}-PyTorch|", f"PSNR {tag} vs PyTorch", "PyTorch ms", f"{tag} ms",
              "")
    return sd.render_table(("image",) * several + header, [
        (r.image,) * several + (f"x{r.factor.tag}", "{}x{}".format(*r.output_size), f"{r.max_abs_diff:.2e}",
                                f"{r.psnr_db:.1f} dB", f"{r.torch_ms:.1f}", f"{r.runtime_ms:.1f}",
                                "ok" if r.ok else f"FAIL ({budget_text(precision)})") for r in rows],
        left=1 + several)


class Checker:
    """The model in PyTorch (float32) beside the graph in a runtime: both results and their parity figures."""

    def __init__(self, weights: Path | None, device: sd.Device, runs: int, model: str = TUTORIAL_MODEL) -> None:
        sd.check_device(device)  # PyTorch's side of CUDA, before any work
        self.model = load_model(weights, model).to(device)
        self.runs = runs

    def __call__(self, runner: Runner, picture: Picture, job: Job) -> tuple[np.ndarray, np.ndarray, Comparison]:
        """(PyTorch's result, the runtime's, their comparison), each timed over `runs` runs (median)."""
        torch_out, torch_ms = sd.timed(functools.partial(run_torch, self.model, picture.rgb, job.factor, job.tile),
                                       self.runs)
        out, runtime_ms = sd.timed(functools.partial(runner, picture.rgb, job.factor, job.tile), self.runs)
        return torch_out, out, compare(job.image.name, job.factor, runner, torch_out, out, torch_ms, runtime_ms)
