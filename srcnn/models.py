"""The models, by name: how each is built, its weights file, its halo, whether it is the tutorial's.

Every other file takes a model's name (`--model tutorial`) or its ModelKind and none names a class: a new model is
one file that defines it, one entry here, and its tests. This module imports no torch; ModelKind.build does, when a
model is built (exporting, --check, training, evaluation).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from srcnn.core import DEFAULT_WEIGHTS, PROJECT_ROOT, SrcnnError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class ModelKind:
    """What the product knows of a model before building it."""

    name: str  # as --model takes it
    module: str  # the module that defines it, imported (with torch) to build it
    cls: str  # its class there: forward(x, factor), upsample(x, factor) and refine
    weights: str  # its shipped weights file, relative to the project
    halo: int  # how far an output pixel of its convolutions sees: the sum of their kernel radii
    tutorial: bool  # the tutorial's SuperResolutionNet, as the mmdeploy tutorial has it
    conditioned: bool  # its convolutions see the factor: refine(x, factor), else refine(x)
    about: str  # one line for --help and the tables

    @property
    def weights_path(self) -> Path:
        return PROJECT_ROOT / self.weights

    def build(self) -> torch.nn.Module:
        """A fresh instance, as its class initialises it."""
        return getattr(importlib.import_module(self.module), self.cls)()


MODELS: dict[str, ModelKind] = {kind.name: kind for kind in (
    ModelKind("tutorial", "srcnn_dynamic", "SuperResolutionNet", str(DEFAULT_WEIGHTS.relative_to(PROJECT_ROOT)),
              halo=6, tutorial=True, conditioned=False,
              about="the tutorial's SRCNN: one set of filters for every factor"),
    ModelKind("factor-aware", "srcnn.factor_aware", "FactorAwareNet", "weights/srcnn_factor_aware.pth",
              halo=6, tutorial=False, conditioned=True,
              about="SRCNN whose filters the factor blends from one set per anchor factor (srcnn/factor_aware.py)"),
)}
TUTORIAL_MODEL = "tutorial"  # what the library's functions build when no model is named: the tutorial's
# what the commands and the Python API run when no model is named: the factor-aware model beats the tutorial's at
# every factor of evaluate.py's table (tests/test_evaluate.py holds it to that)
DEFAULT_MODEL = "factor-aware"


def model_kind(name: str) -> ModelKind:
    """The ModelKind of `name`; a one-line SrcnnError naming the others for any other name."""
    if name not in MODELS:
        raise SrcnnError(f"model {name!r}: expected one of {', '.join(MODELS)}")
    return MODELS[name]
