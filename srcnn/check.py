"""`python -m srcnn --check`: every result computed by PyTorch too, both written and compared, as in the tutorial."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

import srcnn_dynamic as sd
from srcnn.images import Picture
from srcnn.models import TUTORIAL_MODEL
from srcnn.plan import Job
from srcnn.pytorch import run_torch, tutorial_factor
from srcnn.runtime import OrtRunner
from srcnn.weights import load_model


class Checker:
    """The model in PyTorch beside the graph in ONNX Runtime: both results and their parity figures."""

    def __init__(self, weights: Path | None, device: sd.Device, runs: int, model: str = TUTORIAL_MODEL) -> None:
        sd.check_device(device)  # PyTorch's side of CUDA, before any work
        self.model = load_model(weights, model).to(device)
        self.runs = runs

    def __call__(self, runner: OrtRunner, picture: Picture, job: Job) -> tuple[np.ndarray, np.ndarray, sd.Comparison]:
        """(PyTorch's result, ONNX Runtime's, their comparison), each timed over `runs` runs (median)."""
        torch_out, torch_ms = sd.timed(functools.partial(run_torch, self.model, picture.rgb, job.factor, job.tile),
                                       self.runs)
        ort_out, ort_ms = sd.timed(functools.partial(runner, picture.rgb, job.factor, job.tile), self.runs)
        comparison = sd.compare(job.image.name, tutorial_factor(job.factor), torch_out, ort_out, torch_ms, ort_ms)
        return torch_out, ort_out, comparison
