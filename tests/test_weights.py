"""Weights: plain state dicts and mmediting/mmagic checkpoints load; anything else gets a clear error."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import srcnn_dynamic as sd
from srcnn import weights


class RunsCode:
    """A pickle that would run a shell command if loaded unsafely."""

    def __reduce__(self):  # noqa: ANN204
        return (os.system, ("echo this must never run",))


def reference_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(123)
    return sd.SuperResolutionNet().state_dict()


def assert_same_weights(model: sd.SuperResolutionNet, state: dict[str, torch.Tensor]) -> None:
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, state[name]), f"{name} differs from the saved weights"


def test_plain_state_dict_loads(tmp_path) -> None:
    state = reference_state()
    torch.save(state, tmp_path / "srcnn.pth")
    assert_same_weights(weights.load_model(tmp_path / "srcnn.pth"), state)


def test_mmediting_checkpoint_loads(tmp_path) -> None:
    state = reference_state()
    checkpoint = {"meta": {"epoch": 1}, "state_dict": {f"generator.{k}": v for k, v in state.items()}}
    torch.save(checkpoint, tmp_path / "srcnn_mmedit.pth")
    assert_same_weights(weights.load_model(tmp_path / "srcnn_mmedit.pth"), state)


def test_random_initialisation_is_seeded_and_announced(caplog) -> None:
    with caplog.at_level("WARNING", logger="srcnn_dynamic"):
        first, second = sd.build_model(), sd.build_model()
    assert_same_weights(first, second.state_dict())
    assert "random initialisation" in caplog.text, f"no warning about random weights: {caplog.text!r}"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "weights file not found"),
        (lambda p: p.write_bytes(np.random.default_rng(0).bytes(256)), "corrupt or not a PyTorch file"),
        (lambda p: p.write_text("not weights"), "corrupt or not a PyTorch file"),
        (lambda p: p.write_bytes(b""), "corrupt or not a PyTorch file"),
        (lambda p: torch.save({"a": RunsCode()}, p), r"was refused: torch.load\(weights_only=True\).*posix.system"),
        (lambda p: torch.save([1, 2, 3], p), "does not hold a state dict"),
        (
            lambda p: torch.save({k: v for k, v in reference_state().items() if k != "conv3.bias"} | {"conv4.weight": torch.zeros(1)}, p),
            "missing conv3.bias; unexpected conv4.weight",
        ),
        (
            lambda p: torch.save(reference_state() | {"conv1.weight": torch.zeros(64, 1, 9, 9)}, p),
            r"conv1.weight has shape \(64, 1, 9, 9\), the model needs \(64, 3, 9, 9\)",
        ),
    ],
    ids=["missing", "random-bytes", "text", "empty", "pickled-code", "not-a-dict", "wrong-keys", "wrong-shape"],
)
def test_bad_weights_get_a_clear_error(tmp_path, make, message) -> None:
    path = tmp_path / "weights.pth"
    make(path)
    with pytest.raises(sd.SrcnnError, match=message) as info:
        weights.load_model(path)
    assert "\n" not in str(info.value), f"the message should be one line: {info.value!r}"
