"""Training: the identity start, the degradation, the metrics, and a few real training steps on tiny data."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import srcnn_dynamic as sd
import train
from srcnn import data, factor_aware, models, weights
from srcnn.losses import LOSSES, PATCH_MSE_FLOOR, log_mse_per_group
from srcnn.recipe import CONDITIONED_FACTOR_CHOICES, FACTOR_CHOICES
from srcnn.sampler import RESCALE_LEVELS

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import plot_training  # noqa: E402
import recipe_study  # noqa: E402
import soft_conflict  # noqa: E402


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


def test_no_training_photo_is_a_held_out_photo() -> None:
    """By pixels, not names: a package may ship a held-out photo under another name (PyWavelets' camera)."""
    held_out = {name: data.load_photo(name).astype(np.float32) for name in data.VALIDATION_PHOTOS}
    for name in train.RECIPE.photos:
        photo = data.load_photo(name).astype(np.float32)
        assert photo.shape[0] * photo.shape[1] >= 2**16, f"{name}: {photo.shape} is too small to train on"
        for other, pixels in held_out.items():
            if photo.shape == pixels.shape:
                difference = float(np.abs(photo - pixels).mean())
                assert difference > 10, f"{name} looks like held-out {other} (mean difference {difference:.1f})"
    assert not set(train.RECIPE.photos) & set(data.NEVER_TRAINED_ON)


@pytest.mark.parametrize("mix_factors", [False, True], ids=["one factor", "mixed factors"])
def test_batches_pair_the_upsampled_input_with_its_target(mix_factors) -> None:
    recipe = train.Recipe(patch=24, batch_size=6, mix_factors=mix_factors, min_rescale=0.5, soft_fraction=0.5,
                          photos=("coins",))
    sampler = train.PatchSampler([data.load_photo_tensor("coins")], recipe, seed=1)
    inputs, targets, soft, _ = sampler.batch()
    assert inputs.shape == targets.shape == (6, 3, 24, 24), f"{tuple(inputs.shape)}, {tuple(targets.shape)}"
    assert soft.shape == (6,) and soft.dtype == torch.bool, f"one soft flag per patch: {soft}"
    error = float((inputs - targets).abs().mean())
    assert 0 < error < 0.1, f"the bicubic input must be near its target, not equal nor unrelated: {error:.4f}"
    assert len(sampler.images) == RESCALE_LEVELS, "coins at every rescale level"


def test_full_context_adds_the_halo_around_the_same_patches() -> None:
    """With full_context the input grows by the halo on each side; its centre and the targets stay the same."""
    recipe = train.Recipe(patch=24, batch_size=4, full_context=True, photos=("coins",))
    photos = [data.load_photo_tensor("coins")]
    halo = train.model_halo(sd.SuperResolutionNet())
    inputs, targets, _, _ = train.PatchSampler(photos, recipe, seed=1, context=halo).batch()
    plain_inputs, plain_targets, _, _ = train.PatchSampler(photos, recipe, seed=1).batch()
    assert inputs.shape == (4, 3, 24 + 2 * halo, 24 + 2 * halo), f"{tuple(inputs.shape)}"
    assert torch.equal(train.centre_crop(inputs, 24), plain_inputs), "the context must surround the same patch"
    assert torch.equal(targets, plain_targets)


@pytest.mark.parametrize("scale", [2.0, 2.5, 2.75, 4.0])
def test_soft_patches_only_up_to_their_largest_factor(scale: float) -> None:
    """Every patch is softened (soft_fraction 1) at factors up to soft_max_factor, none beyond it."""
    recipe = train.Recipe(patch=24, batch_size=2, soft_fraction=1.0, soft_max_factor=2.5, photos=("coins",))
    sampler = train.PatchSampler([data.load_photo_tensor("coins")], recipe, seed=1)
    patch = sampler.patch(40)
    softened, blurred = sampler.soften(patch, scale)
    change = float((softened - patch).abs().max())
    if scale <= recipe.soft_max_factor:  # a blur of 0.5 pixels or more moves an edge of coins by several levels
        assert blurred and change > 0.01, f"x{scale}: a soft patch must be blurred (largest change {change:.4f})"
    else:
        assert not blurred and softened is patch, f"x{scale}: beyond x{recipe.soft_max_factor} no patch is blurred"


def test_soft_max_factor_at_the_largest_factor_leaves_batches_as_they_were() -> None:
    """The default (soft patches at every factor) draws the same random numbers as a limit that is never reached,
    so the option did not change the shipped recipe's batches."""
    recipe = train.Recipe(patch=24, batch_size=4, soft_fraction=0.5, photos=("coins",))
    photos = [data.load_photo_tensor("coins")]
    unlimited = dataclasses.replace(recipe, soft_max_factor=math.inf)
    for seed in range(8):  # one factor per batch: some of the eight draw factors above x2.5
        default_inputs, default_targets, default_soft, _ = train.PatchSampler(photos, recipe, seed=seed).batch()
        inputs, targets, soft, _ = train.PatchSampler(photos, unlimited, seed=seed).batch()
        assert torch.equal(default_inputs, inputs) and torch.equal(default_targets, targets), f"seed {seed}"
        assert torch.equal(default_soft, soft), f"seed {seed}"


def test_soft_blur_is_drawn_from_the_recipes_range(monkeypatch) -> None:
    """Every soft patch's blur lies in Recipe.soft_sigmas."""
    sigmas: list[float] = []
    blur = data.gaussian_blur
    monkeypatch.setattr(data, "gaussian_blur", lambda image, sigma: sigmas.append(sigma) or blur(image, sigma))
    recipe = train.Recipe(patch=24, batch_size=2, soft_fraction=1.0, soft_sigmas=(0.7, 0.9), photos=("coins",))
    sampler = train.PatchSampler([data.load_photo_tensor("coins")], recipe, seed=3)
    for _ in range(20):
        sampler.soften(sampler.patch(40), 2.0)
    assert len(sigmas) == 20 and all(0.7 <= s <= 0.9 for s in sigmas), f"blurs drawn: {sorted(sigmas)}"


@pytest.mark.parametrize("min_std", [0.0, 0.1])
def test_patches_flatter_than_the_recipes_floor_are_redrawn(min_std: float) -> None:
    """With a floor on a patch's standard deviation, (nearly) every patch clears it; coins' background does not."""
    recipe = train.Recipe(patch=24, batch_size=2, min_patch_std=min_std, photos=("coins",))
    sampler = train.PatchSampler([data.load_photo_tensor("coins")], recipe, seed=5)
    stds = np.array([float(sampler.patch(24).std()) for _ in range(200)])
    share = float((stds >= 0.1).mean())
    if min_std:  # a patch is kept after MAX_DRAWS flat draws in a row, which is rare here
        assert share >= 0.95, f"{share:.0%} of the patches have a standard deviation of 0.1 or more"
    else:
        assert share < 0.95, f"{share:.0%}: without the floor, coins' flat background must show up"


def test_a_soft_x2_input_looks_like_a_sharp_x3_one() -> None:
    """The wall docs/training.md measures: blurred by the soft case's sigma, a photo's x2 input is closer to its
    sharp x3 input than to its sharp x2 one, and far closer than the two targets are to each other, so one set of
    filters must settle between sharpening the sharp x3 photo and leaving the soft x2 one alone."""
    photo = data.load_photo_tensor("camera")
    [(inputs, target)] = soft_conflict.agreement([photo], (data.SOFT_SIGMA,))
    assert inputs["3"] > inputs["2"] and inputs["3"] > target + 5, f"inputs {inputs}, targets {target:.1f} dB apart"


@pytest.mark.parametrize("mix_factors", [False, True])
def test_batches_draw_only_the_recipes_factors(mix_factors: bool) -> None:
    recipe = train.Recipe(patch=24, batch_size=4, factors=(3.0, 4.0), mix_factors=mix_factors, photos=("coins",))
    sampler = train.PatchSampler([data.load_photo_tensor("coins")], recipe, seed=2)
    drawn = {f for _ in range(20) for f in sampler.factors(recipe.batch_size)}
    assert drawn == {3.0, 4.0}, f"factors drawn: {sorted(drawn)}"


@pytest.mark.parametrize(("factors", "expected"), [(FACTOR_CHOICES, data.EVAL_FACTORS), ((4.0,), ("4",)),
                                                   ((2.0, 3.0), ("2", "2.5", "3")), ((2.25,), data.EVAL_FACTORS),
                                                   (CONDITIONED_FACTOR_CHOICES, ("1.5", *data.EVAL_FACTORS))])
def test_validation_uses_the_evaluation_factors_trained_on(factors, expected) -> None:
    assert train.validation_factors(train.Recipe(factors=factors)) == expected


def test_gaussian_blur_keeps_flat_images_and_the_mean() -> None:
    flat = torch.full((1, 3, 20, 20), 0.25)
    assert torch.allclose(data.gaussian_blur(flat, 1.5), flat, atol=1e-6)
    noise = torch.rand(1, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    blurred = data.gaussian_blur(noise, 1.0)
    assert blurred.shape == noise.shape and float(blurred.std()) < 0.5 * float(noise.std())


def test_last_layer_learning_rate_is_scaled() -> None:
    model = sd.SuperResolutionNet()
    optimizer = train.make_optimizer(model, train.Recipe(last_layer_lr_scale=0.1), 1e-3)
    rates = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    assert rates[id(model.conv3.weight)] == pytest.approx(1e-4) and rates[id(model.conv1.weight)] == 1e-3
    assert len(rates) == len(list(model.parameters())), "every parameter is trained, once"


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_losses_are_least_at_the_target(loss) -> None:
    target = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    near, far, soft = target + 0.01, target + 0.1, torch.tensor([True, False])
    loss_fn = train.loss_function(train.Recipe(loss=loss))
    assert loss_fn(near, target, soft) < loss_fn(far, target, soft)


def test_the_per_group_loss_pools_each_group_and_weighs_it_by_its_share() -> None:
    """log_mse_per_group: a quarter soft patches weigh a quarter, whatever their errors; within the sharp group the
    patch with the larger error pulls harder (pooled, as PSNR pools a photo), unlike log_mse_per_patch."""
    target = torch.zeros(4, 1, 4, 4)
    levels = torch.tensor([1.0, 2.0, 8.0, 1.0]).view(4, 1, 1, 1) / 255  # the last patch is soft
    soft = torch.tensor([False, False, False, True])
    loss_fn = train.loss_function(train.Recipe(loss="log_mse_per_group", patch_mse_floor=0.0))
    output = (target + levels).requires_grad_()
    loss = loss_fn(output, target, soft)
    sharp_mse = float((levels[:3] ** 2).mean())
    expected = 0.75 * math.log(sharp_mse) + 0.25 * math.log(float(levels[3] ** 2))
    assert loss.item() == pytest.approx(expected, rel=1e-5), f"{loss.item()} against {expected}"
    loss.backward()
    pull = output.grad.abs().sum(dim=(1, 2, 3))
    assert pull[2] > pull[1] > pull[0], f"pooled: the sharp patch with the largest error pulls hardest: {pull}"
    per_patch = train.loss_function(train.Recipe(loss="log_mse_per_patch", patch_mse_floor=0.0))
    output.grad = None
    per_patch(output, target, soft).backward()
    assert output.grad.abs().sum(dim=(1, 2, 3))[0] > output.grad.abs().sum(dim=(1, 2, 3))[2], "per patch: the reverse"
    all_sharp = loss_fn(output, target, torch.zeros(4, dtype=torch.bool))
    pooled = math.log(float((levels**2).mean()))
    assert all_sharp.item() == pytest.approx(pooled, rel=1e-5), "no soft patch: log(MSE) over the batch"


def test_the_per_patch_floor_weighs_nearly_right_patches_less() -> None:
    """log(MSE + floor) per patch: the higher the floor, the less a patch that is nearly right pulls."""
    target = torch.zeros(2, 3, 8, 8)
    errors = torch.tensor([1.0, 8.0]).view(2, 1, 1, 1) / 255  # a soft patch 1 level off, a sharp one 8 levels off

    def pull_ratio(floor: float) -> float:
        output = (target + errors).requires_grad_()
        loss_fn = train.loss_function(train.Recipe(loss="log_mse_per_patch", patch_mse_floor=floor))
        loss_fn(output, target, torch.zeros(2, dtype=torch.bool)).backward()
        per_patch = output.grad.abs().sum(dim=(1, 2, 3))
        return float(per_patch[0] / per_patch[1])

    ratios = [pull_ratio((level / 255) ** 2) for level in (0.5, 1, 2, 4)]
    assert ratios == sorted(ratios, reverse=True) and ratios[0] > 1 > ratios[-1], f"soft/sharp pull: {ratios}"


def test_the_luma_loss_sees_luma_alone() -> None:
    """Recipe.luma_loss: a grey error counts as 219/255 of itself (BT.601's 16-235 range), one with no luma not at
    all: colour is free to drift, which is why the option is off (docs/training.md, the ninth round)."""
    target = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    on_luma = train.loss_function(train.Recipe(luma_loss=True, patch_mse_floor=0.0))
    on_channels = train.loss_function(train.Recipe(patch_mse_floor=0.0))
    soft, grey = torch.zeros(2, dtype=torch.bool), torch.full((2, 3, 8, 8), 4 / data.PIXEL_LEVELS)
    scale = sum(data.BT601_Y_WEIGHTS) / data.PIXEL_LEVELS
    seen = on_luma(target + grey, target, soft).item()
    expected = on_channels(target + grey * scale, target, soft).item()
    assert seen == pytest.approx(expected, rel=1e-5), f"a grey error of 4 levels: {seen} against {expected}"
    red, green = torch.tensor(data.BT601_Y_WEIGHTS[:2]) / data.PIXEL_LEVELS
    chroma_only = torch.zeros(2, 3, 8, 8)
    chroma_only[:, 0], chroma_only[:, 1] = 0.05 * green, -0.05 * red  # red up, green down: luma unchanged
    floor = math.log(PATCH_MSE_FLOOR)  # the least either loss can be, with the shipped floor
    drift = train.loss_function(train.Recipe(luma_loss=True))(target + chroma_only, target, soft).item()
    assert drift == pytest.approx(floor, abs=1e-3), f"an error with no luma costs nothing: {drift} against {floor}"
    seen = train.loss_function(train.RECIPE)(target + chroma_only, target, soft).item()
    assert seen > floor + 4, f"on the channels it is over e^4 (about 55) times the floor: {seen} against {floor}"


def test_the_luma_loss_keeps_the_soft_patches_apart() -> None:
    """With the per-group loss, the luma loss still pools the soft and the sharp patches each on their own."""
    generator = torch.Generator().manual_seed(0)
    output, target = torch.rand(4, 3, 8, 8, generator=generator), torch.rand(4, 3, 8, 8, generator=generator)
    soft = torch.tensor([True, False, False, False])
    on_luma = train.loss_function(train.Recipe(loss="log_mse_per_group", luma_loss=True))
    scaled = [data.luma(t) / data.PIXEL_LEVELS for t in (output, target)]
    expected = log_mse_per_group(*scaled, soft).item()
    seen = on_luma(output, target, soft).item()
    assert seen == pytest.approx(expected, rel=1e-6), f"{seen} against {expected}"
    pooled = log_mse_per_group(*scaled, torch.zeros(4, dtype=torch.bool)).item()
    assert abs(seen - pooled) > 1e-3, f"the soft mask must matter here: {seen} against {pooled} without it"


TINY = dataclasses.replace(train.RECIPE, batch_size=4, patch=32, photos=("coins",))  # a few seconds of training


@pytest.mark.parametrize("ema_decay", [0.0, train.RECIPE.ema_decay], ids=["weights", "their average"])
@pytest.mark.parametrize("full_context", [False, True], ids=["padded context", "full context"])
def test_a_few_training_steps_are_reproducible(tmp_path, full_context, ema_decay) -> None:
    runs, recipe = [], dataclasses.replace(TINY, full_context=full_context, ema_decay=ema_decay)
    for name in ("a.pth", "b.pth"):
        result = train.train(steps=6, out=tmp_path / name, recipe=recipe, validation_photos=("microaneurysms",),
                             validate_every=3, progress=False)
        assert result.best_psnr >= result.initial_psnr, f"the kept checkpoint is never worse than the start: {result}"
        runs.append(torch.load(tmp_path / name, weights_only=True))
    for key in runs[0]:
        assert torch.equal(runs[0][key], runs[1][key]), f"{key}: the same seed must give the same weights"
    start = sd.SuperResolutionNet()
    train.identity_init(start)
    result_model = weights.load_model(tmp_path / "a.pth")  # loads through the application's own checks
    assert result_model.conv1.weight.shape == start.conv1.weight.shape


def test_the_factor_aware_model_starts_as_the_tutorials_and_trains_on_the_factor(tmp_path) -> None:
    """It starts from the tutorial's shipped network (every anchor set the tutorial's), its batches carry their
    factor, and a step moves the anchor sets around that factor alone. A short run writes weights that load."""
    recipe = dataclasses.replace(TINY, factors=(1.5, 3.0), ema_decay=0.0)
    model = models.MODELS["factor-aware"].build()
    train.start_from_tutorial(model)
    image, factor = torch.rand(1, 3, 12, 10), sd.Factor(1.5, 2.0).tensor()
    with torch.no_grad():
        same = model(image, factor) - sd.build_model(sd.load_state_dict(sd.DEFAULT_WEIGHTS))(image, factor)
    # the blend of equal sets (0.61 w + 0.39 w) rounds in float32: within a few ulps of the tutorial's
    assert float(same.abs().max()) <= 1e-6, f"untrained, the factor-aware network is the tutorial's: {same.abs().max()}"
    inputs, targets, soft, factors = train.PatchSampler([data.load_photo_tensor("coins")], recipe, seed=1).batch()
    assert len(set(factors.tolist())) == 1 and float(factors[0]) in recipe.factors, factors
    batch_factor = sd.Factor(float(factors[0]), float(factors[0])).tensor()
    train.train_step(functools.partial(model.refine, factor=batch_factor), train.make_optimizer(model, recipe, 1e-3),
                     inputs, targets, soft, train.loss_function(recipe), None)
    anchors = model.conv1.weight.detach().reshape(len(factor_aware.ANCHORS), -1)
    moved = (anchors != anchors[-1]).any(dim=1).tolist()  # x4's set, never near these factors, stays the tutorial's
    near = (factor_aware.anchor_blend(batch_factor) > 0).tolist()
    assert moved == near, f"the sets that moved {moved} must be those blended at x{float(factors[0])}: {near}"
    train.train(steps=2, out=tmp_path / "fa.pth", recipe=recipe, model_name="factor-aware",
                validation_photos=("microaneurysms",), validate_every=2, progress=False)
    assert isinstance(weights.load_model(tmp_path / "fa.pth", "factor-aware"), type(model))


def test_a_teacher_starts_the_blend_at_its_factor(tmp_path) -> None:
    """A teacher's weights become the anchor set at its factor: there the blend is the teacher, at a far anchor
    still the tutorial's network, and between them a mix. A factor that is no anchor, or a model without sets, is
    refused."""
    tutorial_state = sd.load_state_dict(sd.DEFAULT_WEIGHTS)
    generator = torch.Generator().manual_seed(3)
    teacher_state = {k: v + 0.01 * torch.randn(v.shape, generator=generator) for k, v in tutorial_state.items()}
    path = tmp_path / "teacher.pth"
    weights.save_state_dict(teacher_state, path)
    model = models.MODELS["factor-aware"].build()
    train.start_from_tutorial(model)
    train.start_from_teachers(model, {2.0: path})
    image = torch.rand(1, 3, 11, 9, generator=generator)
    with torch.no_grad():
        for text, state, expected in (("2", teacher_state, True), ("4", tutorial_state, True),
                                      ("2.5", teacher_state, False), ("2x4", tutorial_state, False)):
            factor = sd.Factor.parse(text).tensor()
            diff = float((model(image, factor) - sd.build_model(state)(image, factor)).abs().max())
            which = "teacher" if state is teacher_state else "tutorial"
            assert (diff <= 1e-6) == expected, f"x{text}: {diff:.2e} from the {which}'s network"
    with pytest.raises(ValueError, match="not an anchor"):
        model.start_anchor_from(2.5, teacher_state)
    with pytest.raises(sd.SrcnnError, match="no per-factor weights"):
        train.start_from_teachers(sd.SuperResolutionNet(), {2.0: path})


def test_the_factor_aware_run_trains_its_teacher_first(tmp_path, monkeypatch) -> None:
    """`train.py --model factor-aware` trains the x2 teacher (the tutorial's network at x2 alone) beside --out, then
    the blend from it; the record holds both, and the blend's start at x2 is the teacher's kept weights."""
    out, history = tmp_path / "fa.pth", tmp_path / "run.json"
    monkeypatch.setattr(train, "RECIPE", TINY)
    monkeypatch.setattr(train.train, "__kwdefaults__", {**train.train.__kwdefaults__, "validate_every": 2,
                                                        "progress": False, "validation_photos": ("microaneurysms",)})
    assert train.main(["--model", "factor-aware", "--steps", "2", "--teacher-steps", "2", "--ema-decay", "0",
                       "--learning-rate", "1e-5", "--out", str(out), "--history", str(history)]) == 0
    teacher_file = tmp_path / "fa_x2_teacher.pth"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fa.pth", "fa_x2_teacher.pth", "run.json"]
    record = json.loads(history.read_text())
    (teacher,) = record["teachers"]
    assert teacher["factor"] == 2.0 and teacher["steps"] == 2, f"{teacher}"
    assert all(row.keys() == {"step", "x2", "soft x2"} for row in teacher["detail"]), "a teacher validates at x2 alone"
    kept = next(row for row in teacher["detail"] if row["step"] == teacher["best_step"])
    assert record["detail"][0]["x2"] == pytest.approx(kept["x2"], abs=1e-4), f"{record['detail'][0]} vs {kept}"
    assert isinstance(weights.load_model(teacher_file), sd.SuperResolutionNet)


def test_the_tutorials_run_has_no_teacher(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(train, "RECIPE", TINY)
    monkeypatch.setattr(train.train, "__kwdefaults__", {**train.train.__kwdefaults__, "validate_every": 2,
                                                        "progress": False, "validation_photos": ("microaneurysms",)})
    assert train.main(["--steps", "2", "--out", str(tmp_path / "w.pth"), "--history", str(tmp_path / "r.json")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "w.pth"]
    assert json.loads((tmp_path / "r.json").read_text())["teachers"] == []


def test_a_factor_aware_model_refuses_a_factor_per_patch(tmp_path) -> None:
    with pytest.raises(sd.SrcnnError, match="one factor per batch"):
        train.train(steps=1, out=tmp_path / "x.pth", recipe=dataclasses.replace(TINY, mix_factors=True),
                    model_name="factor-aware", progress=False)


def test_the_average_of_the_weights_is_validated_and_kept(tmp_path, monkeypatch) -> None:
    """With Recipe.ema_decay, the validation and the kept state dict are the moving average of the weights after
    each step (the first step's weights, then average + (1 - decay) * (weights - average)), not the last weights;
    and the weights train as they do without it (same seed, same steps)."""
    after_each_step: list[dict[str, torch.Tensor]] = []
    real_step = train.train_step

    def step_and_record(refine, *args, **kwargs):  # refine is the trained model's bound method
        loss = real_step(refine, *args, **kwargs)
        after_each_step.append(train.cpu_state(refine.__self__))
        return loss

    real_psnr, calls = train.psnr_per_factor, []

    def start_low(model, photos, factors=data.EVAL_FACTORS):  # the start scores 100 dB less, so step 3 is kept
        calls.append(factors)
        return {tag: v - 100 * (len(calls) == 1) for tag, v in real_psnr(model, photos, factors).items()}

    monkeypatch.setattr(train, "train_step", step_and_record)
    monkeypatch.setattr(train, "psnr_per_factor", start_low)
    decay = 0.75  # not 0.5, so that decay and 1 - decay swapped would fail
    result = train.train(steps=3, out=tmp_path / "w.pth", recipe=dataclasses.replace(TINY, ema_decay=decay),
                         validation_photos=("microaneurysms",), validate_every=3, progress=False,
                         max_soft_loss=math.inf)
    expected = dict(after_each_step[0])
    for state in after_each_step[1:]:
        expected = {k: decay * v + (1 - decay) * state[k] for k, v in expected.items()}
    photos = [data.load_photo_tensor("microaneurysms")]

    def validation_psnr(state: dict[str, torch.Tensor]) -> float:  # what train() records: the mean over factors
        model = sd.SuperResolutionNet().eval()
        model.load_state_dict(state)
        return float(np.mean(list(real_psnr(model, photos).values())))

    averaged, last = validation_psnr(expected), validation_psnr(after_each_step[-1])
    recorded = result.history[-1][1]
    assert recorded == pytest.approx(averaged, abs=1e-4), f"validated {recorded}, average {averaged}, last {last}"
    assert abs(averaged - last) > 1e-3, f"the test cannot tell the two apart: average {averaged}, last {last}"
    assert result.best_step == 3, f"{result.history}"
    kept = torch.load(tmp_path / "w.pth", weights_only=True)
    for key, value in expected.items():
        torch.testing.assert_close(kept[key], value, msg=lambda m, k=key: f"{k}: {m}")
    averaged_run, after_each_step[:] = list(after_each_step), []
    train.train(steps=3, out=tmp_path / "plain.pth", recipe=dataclasses.replace(TINY, ema_decay=0.0),
                validation_photos=("microaneurysms",), validate_every=3, progress=False)
    for step, (with_average, plain) in enumerate(zip(averaged_run, after_each_step, strict=True), start=1):
        for key in plain:
            assert torch.equal(with_average[key], plain[key]), f"step {step}, {key}: the average changed the training"


def test_no_checkpoint_that_loses_too_much_on_the_soft_case_is_kept(tmp_path, monkeypatch) -> None:
    """The validation PSNR rises at every validation, but the one at step 4 loses 1.5 dB on the soft case: with
    the default limit (data.SOFT_LOSS_LIMIT) the step-2 checkpoint is kept; with no limit, step 4's."""
    sharp = iter([29.0, 29.2, 29.5, 29.6])  # steps 0, 2, 4 and 6 (the last)
    soft = iter([44.0, 43.5, 42.5, 41.0])  # losses of 0, 0.5, 1.5 and 3 dB

    def fake_psnr(model, photos, factors: tuple[str, ...]) -> dict[str, float]:  # the soft case is the one at x2 only
        value = next(soft if factors == ("2",) else sharp)
        return {tag: value for tag in factors}

    monkeypatch.setattr(train, "psnr_per_factor", fake_psnr)
    common = dict(steps=6, recipe=TINY, validation_photos=("microaneurysms",), validate_every=2, progress=False)
    result = train.train(out=tmp_path / "a.pth", **common)
    assert (result.best_step, result.best_psnr) == (2, 29.2), f"{result.history}, soft: {result.detail}"
    sharp, soft = iter([29.0, 29.2, 29.5, 29.6]), iter([44.0, 43.5, 42.5, 41.0])
    result = train.train(out=tmp_path / "b.pth", max_soft_loss=math.inf, **common)
    assert (result.best_step, result.best_psnr) == (6, 29.6), f"{result.history}"


def test_interrupted_training_writes_nothing(tmp_path, monkeypatch, capsys) -> None:
    """Ctrl-C during training: exit 130 and `--out` untouched (the best checkpoint is written only at the end)."""
    out = tmp_path / "weights.pth"
    out.write_bytes(b"previous weights")
    real_psnr = train.psnr_per_factor
    calls = []

    def validate_then_interrupt(*args, **kwargs):  # two calls a validation (sharp, soft): at step 0, then at step 2
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_psnr(*args, **kwargs)

    monkeypatch.setattr(train, "psnr_per_factor", validate_then_interrupt)
    monkeypatch.setattr(train, "RECIPE", TINY)
    monkeypatch.setattr(train.train, "__kwdefaults__", {**train.train.__kwdefaults__, "validate_every": 2, "progress": False})
    code = train.main(["--steps", "4", "--batch-size", "2", "--out", str(out)])
    assert code == sd.EXIT_INTERRUPTED, f"exit {code}"
    assert out.read_bytes() == b"previous weights", "an interrupted run must leave --out as it was"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["weights.pth"], "no temporary files"
    assert "interrupted" in capsys.readouterr().err


@pytest.mark.parametrize("device", ["cpu", "cuda"])
@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_training_runs_in_each_precision_and_device(device, precision, tmp_path) -> None:
    """bfloat16 is what `auto` picks on CPUs with AMX or AVX512-BF16 and on GPUs: it must train here too."""
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA GPU here")
    result = train.train(steps=3, out=tmp_path / "w.pth", recipe=TINY, device=device, precision=precision,
                         validation_photos=("microaneurysms",), validate_every=3, progress=False)
    assert result.precision == precision and np.isfinite(result.best_psnr), f"{result}"
    state = torch.load(tmp_path / "w.pth", weights_only=True)
    assert all(t.is_contiguous() and t.dtype == torch.float32 and t.device.type == "cpu" for t in state.values())


def test_history_records_the_run(tmp_path, monkeypatch) -> None:
    out, history = tmp_path / "w.pth", tmp_path / "run.json"
    monkeypatch.setattr(train, "RECIPE", TINY)
    monkeypatch.setattr(train.train, "__kwdefaults__", {**train.train.__kwdefaults__, "validate_every": 2,
                                                        "progress": False, "validation_photos": ("microaneurysms",)})
    assert train.main(["--steps", "4", "--batch-size", "2", "--ema-decay", "0.5", "--out", str(out),
                       "--history", str(history)]) == 0
    record = json.loads(history.read_text())
    assert record["recipe"]["ema_decay"] == 0.5, f"{record['recipe']}"
    assert record["learning_rate"] == train.LEARNING_RATE, f"{record['learning_rate']}"
    assert [s for s, _ in record["history"]] == [0, 2, 4] and record["steps"] == 4, f"{record}"
    assert record["recipe"]["batch_size"] == 2 and record["recipe"]["photos"] == ["coins"], f"{record['recipe']}"
    assert record["device"] and record["precision"] in ("float32", "bfloat16") and record["minutes"] >= 0
    steps = [row.pop("step") for row in record["detail"]]
    assert steps == [0, 2, 4] and all(row.keys() == {"x2", "x2.5", "x3", "x4", "soft x2"} for row in record["detail"])
    for (_, mean), row in zip(record["history"], record["detail"], strict=True):
        sharp = [row[f"x{tag}"] for tag in data.EVAL_FACTORS]
        assert mean == pytest.approx(np.mean(sharp)), f"the validation PSNR is the mean of the factors': {row}"
    assert record["detail"][0]["soft x2"] > record["detail"][0]["x2"], "bicubic does better on the soft photo"


@pytest.mark.parametrize("argv", [["--steps", "0"], ["--validate-every", "-1"], ["--variant", "no such recipe"]])
def test_recipe_study_refuses_bad_arguments_before_any_work(argv, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        recipe_study.main(argv)
    assert exit_info.value.code == 2, f"exit {exit_info.value.code}: {capsys.readouterr().err}"
    assert capsys.readouterr().err.count("\n") == 1, "one line of error"


@pytest.mark.parametrize("with_detail", [False, True], ids=["mean only", "each factor too"])
def test_plot_training_draws_a_record(tmp_path, with_detail: bool) -> None:
    record = tmp_path / "run.json"
    run = {"recipe": "tiny", "history": [[0, 29.0], [2, 29.2], [4, 29.3]]}
    if with_detail:  # as train.py writes it since the soft case is recorded
        run["detail"] = [{"step": s, "x2": 31 + s / 10, "soft x2": 44 - s / 10} for s in (0, 2, 4)]
    record.write_text(json.dumps(run))
    out = tmp_path / "figures" / "curve.png"  # a missing folder is made, as for every other output
    assert plot_training.main([str(record), "--out", str(out)]) == 0
    assert out.read_bytes().startswith(b"\x89PNG"), "a PNG"
    assert [p.name for p in out.parent.iterdir()] == ["curve.png"], "no temporary file left"


@pytest.mark.parametrize("case", ["missing", "not json", "no history", "bad pair", "bad detail", "out is the record",
                                  "out not png"])
def test_plot_training_refuses_bad_input_in_one_line(tmp_path, capsys, case: str) -> None:
    record, out = tmp_path / "run.json", tmp_path / "curve.png"
    contents = {"missing": None, "not json": "{", "no history": "{}", "bad pair": '{"history": [[0, 29.0], [2]]}',
                "bad detail": '{"history": [[0, 29.0]], "detail": [{"step": 0, "x2": 31.0}, {"step": 2}]}'}
    if contents.get(case, "{}") is not None:
        record.write_text(contents.get(case, '{"history": [[0, 29.0]]}'))
    out = {"out is the record": record, "out not png": tmp_path / "curve.jpg"}.get(case, out)
    before = record.read_bytes() if record.exists() else None
    code = plot_training.main([str(record), "--out", str(out)])
    error = capsys.readouterr().err
    assert code == sd.EXIT_USAGE and error.startswith("error: ") and error.count("\n") == 1, f"exit {code}: {error}"
    assert (record.read_bytes() if record.exists() else None) == before, "the record is left as it was"
    assert not any(p.suffix in (".png", ".jpg", ".tmp") for p in tmp_path.iterdir()), "nothing written"
