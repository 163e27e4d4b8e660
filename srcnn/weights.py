"""Weights as the product takes them: every mismatch with the model named in one line before it is built."""

from __future__ import annotations

from pathlib import Path

import torch

import srcnn_dynamic as sd
from srcnn.cache import resolved_weights
from srcnn.core import check_weights_size
from srcnn.images import atomic_path


def state_dict_problems(state_dict: dict[str, torch.Tensor]) -> list[str]:
    """Every missing, unexpected or wrongly shaped tensor, named; empty when the weights fit the model."""
    expected = sd.SuperResolutionNet().state_dict()
    missing, unexpected = sorted(set(expected) - set(state_dict)), sorted(set(state_dict) - set(expected))
    problems = [f"missing {', '.join(missing)}"] if missing else []
    problems += [f"unexpected {', '.join(unexpected)}"] if unexpected else []
    return problems + [
        f"{name} has shape {tuple(state_dict[name].shape)}, the model needs {tuple(expected[name].shape)}"
        for name in sorted(set(expected) & set(state_dict)) if state_dict[name].shape != expected[name].shape
    ]


def load_model(weights: Path | None) -> sd.SuperResolutionNet:
    """sd.build_model from `weights` (None: the shipped weights if present, else a seeded initialisation)."""
    weights = resolved_weights(weights)  # the rule the graph cache keys by
    if weights is None:
        return sd.build_model(None)
    check_weights_size(weights)
    state_dict = sd.load_state_dict(weights)
    if problems := state_dict_problems(state_dict):
        raise sd.SrcnnError(f"weights file {weights} does not fit SuperResolutionNet: {'; '.join(problems)}")
    model = sd.build_model(state_dict)
    sd.log.info("loaded weights from %s", weights)
    return model


def save_state_dict(state_dict: dict[str, torch.Tensor], path: Path) -> None:
    """Save weights as a plain state dict (loadable with weights_only=True); the file appears whole or not at all."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            torch.save(state_dict, tmp)
    except (OSError, RuntimeError) as exc:  # a full disk or a read-only folder (torch.save raises RuntimeError)
        reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
        raise sd.SrcnnError(f"cannot write {path}: {reason}; nothing was left half-written") from None
