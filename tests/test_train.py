"""Training: the identity start, the degradation, the metrics, and a few real training steps on tiny data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import srcnn_dynamic as sd
import train
from srcnn import data, weights


def test_identity_init_outputs_the_bicubic_input() -> None:
    model = sd.SuperResolutionNet()
    train.identity_init(model)
    image = torch.rand(2, 3, 21, 17, generator=torch.Generator().manual_seed(0))
    for text in ("2", "2.5", "3x4"):
        factor = sd.Factor.parse(text)
        with torch.inference_mode():
            diff = (model(image, factor.tensor()) - sd.bicubic_resize(image, factor.tensor())).abs().max().item()
        assert diff < 1e-6, f"x{text}: identity start differs from bicubic by {diff:.2e}"


@pytest.mark.parametrize(("factor", "hr", "lr"), [(2.0, 101, 50), (2.5, 101, 40), (3.0, 100, 33), (2.25, 64, 28), (2.1, 512, 160)])
def test_make_pair_crops_to_a_whole_multiple(factor, hr, lr) -> None:
    image = torch.rand(1, 3, hr, hr)
    low, high = data.make_pair(image, sd.Factor(factor, factor))
    assert low.shape[2:] == (lr, lr), f"x{factor} of {hr}px: low-res {tuple(low.shape)}"
    assert high.shape[2] == round(lr * factor) == sd.resized_length(lr, factor), f"x{factor}: {tuple(high.shape)}"
    levels = low * data.PIXEL_LEVELS
    assert torch.equal(levels, levels.round()), "low-res input must be quantised to 8 bits"


def test_y_psnr_and_ssim_on_known_images() -> None:
    white = torch.ones(1, 3, 20, 20)
    assert data.y_channel(white).max() == pytest.approx(235.0, abs=1e-3), "BT.601 white is Y = 235"
    assert math.isinf(data.psnr_y(white, white, sd.Factor(2, 2)))
    darker = white - 1.0 / 255  # one 8-bit level darker in R, G and B: Y drops by 219/255
    expected = 10 * math.log10(255**2 / (219 / 255) ** 2)
    assert data.psnr_y(white, darker, sd.Factor(2, 2)) == pytest.approx(expected, abs=1e-6)
    noisy = (white * 0.5 + 0.1 * torch.rand(1, 3, 20, 20, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    assert data.ssim_y(noisy, noisy, sd.Factor(2, 2)) == pytest.approx(1.0)
    assert data.ssim_y(noisy, white * 0.5, sd.Factor(2, 2)) < 0.9


def test_photo_split_keeps_the_face_out_of_training() -> None:
    assert "astronaut" in data.VALIDATION_PHOTOS and "astronaut" not in data.TRAINING_PHOTOS
    assert len(data.VALIDATION_PHOTOS) >= 3
    grey = data.load_photo("camera")
    assert grey.shape[2] == 3 and np.array_equal(grey[..., 0], grey[..., 2]), "grey photos become 3 equal channels"


def test_a_few_training_steps_are_reproducible(tmp_path) -> None:
    runs = []
    for name in ("a.pth", "b.pth"):
        result = train.train(steps=6, batch_size=4, out=tmp_path / name, training_photos=("coins",),
                             validation_photos=("microaneurysms",), validate_every=3, progress=False)
        assert result.best_psnr >= result.initial_psnr, f"the kept checkpoint is never worse than the start: {result}"
        runs.append(torch.load(tmp_path / name, weights_only=True))
    for key in runs[0]:
        assert torch.equal(runs[0][key], runs[1][key]), f"{key}: the same seed must give the same weights"
    start = sd.SuperResolutionNet()
    train.identity_init(start)
    result_model = weights.load_model(tmp_path / "a.pth")  # loads through the application's own checks
    assert result_model.conv1.weight.shape == start.conv1.weight.shape


def test_interrupted_training_writes_nothing(tmp_path, monkeypatch, capsys) -> None:
    """Ctrl-C during training: exit 130 and `--out` untouched (the best checkpoint is written only at the end)."""
    out = tmp_path / "weights.pth"
    out.write_bytes(b"previous weights")
    real_validate = train.validate
    calls = []

    def validate_then_interrupt(*args, **kwargs):  # the first validation is at step 0, the second at step 2
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_validate(*args, **kwargs)

    monkeypatch.setattr(train, "validate", validate_then_interrupt)
    monkeypatch.setattr(train.train, "__kwdefaults__", {**train.train.__kwdefaults__, "validate_every": 2, "progress": False})
    code = train.main(["--steps", "4", "--batch-size", "2", "--out", str(out)])
    assert code == sd.EXIT_INTERRUPTED, f"exit {code}"
    assert out.read_bytes() == b"previous weights", "an interrupted run must leave --out as it was"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["weights.pth"], "no temporary files"
    assert "interrupted" in capsys.readouterr().err
