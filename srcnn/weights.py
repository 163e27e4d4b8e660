"""Weights as the product takes them: every mismatch with the model named in one line before it is built."""

from __future__ import annotations

from pathlib import Path

import torch

import srcnn_dynamic as sd
from srcnn.cache import resolved_weights
from srcnn.core import check_weights_size
from srcnn.images import atomic_path
from srcnn.models import MODELS, TUTORIAL_MODEL, model_kind


def state_dict_problems(state_dict: dict[str, torch.Tensor], model: str = TUTORIAL_MODEL) -> list[str]:
    """Every missing, unexpected or wrongly shaped tensor, named; empty when the weights fit the model."""
    expected = model_kind(model).build().state_dict()
    missing, unexpected = sorted(set(expected) - set(state_dict)), sorted(set(state_dict) - set(expected))
    problems = [f"missing {', '.join(missing)}"] if missing else []
    problems += [f"unexpected {', '.join(unexpected)}"] if unexpected else []
    return problems + [
        f"{name} has shape {tuple(state_dict[name].shape)}, the model needs {tuple(expected[name].shape)}"
        for name in sorted(set(expected) & set(state_dict)) if state_dict[name].shape != expected[name].shape
    ]


def load_model(weights: Path | None, model: str = TUTORIAL_MODEL) -> torch.nn.Module:
    """The model `model` (a srcnn.models name) in eval mode with `weights` (None: its shipped weights; for the
    tutorial's model, a seeded initialisation when they are missing, as the tutorial does)."""
    kind = model_kind(model)
    weights = resolved_weights(weights, model)  # the rule the graph cache keys by
    if weights is None and kind.tutorial:
        return sd.build_model(None)
    if weights is None:
        raise sd.SrcnnError(f"the {kind.name} model has no weights: {kind.weights} is missing (python train.py"
                            f" --model {kind.name} --out {kind.weights} trains them)")
    check_weights_size(weights)
    state_dict = sd.load_state_dict(weights)
    if problems := state_dict_problems(state_dict, model):
        fits = [name for name in MODELS if name != model and not state_dict_problems(state_dict, name)]
        hint = f" (they fit the {fits[0]} model: add --model {fits[0]})" if fits else ""
        raise sd.SrcnnError(f"weights file {weights} does not fit the {kind.name} model ({kind.cls}):"
                            f" {'; '.join(problems)}{hint}")
    if kind.tutorial:
        network = sd.build_model(state_dict)
    else:
        network = kind.build()
        network.load_state_dict(state_dict)  # strict; every name and shape was checked above
        network.eval()
    sd.log.info("loaded weights from %s", weights)
    return network


def save_state_dict(state_dict: dict[str, torch.Tensor], path: Path) -> None:
    """Save weights as a plain state dict (loadable with weights_only=True); the file appears whole or not at all."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            torch.save(state_dict, tmp)
    except (OSError, RuntimeError) as exc:  # a full disk or a read-only folder (torch.save raises RuntimeError)
        reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
        raise sd.SrcnnError(f"cannot write {path}: {reason}; nothing was left half-written") from None
