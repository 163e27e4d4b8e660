"""What a training run learns from, and how (Recipe): the defaults are the shipped runs'. docs/training.md measures
each field, round by round; the comments here say what each one does."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from srcnn import data
from srcnn.losses import PATCH_MSE_FLOOR
from srcnn.models import ModelKind

FACTOR_CHOICES = tuple(q / 4 for q in range(8, 17))  # 2, 2.25, ..., 4: quarter steps keep 4k * factor whole
# a model that sees the factor can learn to leave a small factor's picture alone, so it trains from x1.25
CONDITIONED_FACTOR_CHOICES = tuple(q / 4 for q in range(5, 17))  # 1.25, 1.5, ..., 4
MIN_PATCH_STD = 0.03  # a random patch this flat (sky, background) is redrawn, at most sampler.MAX_DRAWS times
SOFT_SIGMAS = (0.5, 2.5)  # Gaussian blur (high-resolution pixels) of the soft patches: a slightly to a very soft photo


@dataclass(frozen=True)
class Recipe:
    """What a run learns from, and how. The defaults are the shipped run's; docs/training.md measures each field."""

    loss: str = "log_mse_per_patch"  # a LOSSES key
    # the floor of log_mse_per_patch and log_mse_per_group (a mean squared error, pixels in [0, 1]): the higher, the
    # less a patch that bicubic already gets right (a soft one) weighs against a sharp one, and the more the model
    # sharpens soft pictures
    patch_mse_floor: float = PATCH_MSE_FLOOR
    last_layer_lr_scale: float = 1.0  # conv3's learning rate relative to the others' (the SRCNN paper: 0.1)
    patch: int = 64  # side of the high-resolution crop trained on
    batch_size: int = 8  # small: more, noisier steps on the same pixels learn more (docs/training.md)
    factors: tuple[float, ...] = FACTOR_CHOICES  # drawn uniformly; validation uses the EVAL_FACTORS in their range
    mix_factors: bool = False  # a factor per patch; False: one per batch
    min_rescale: float = 1.0  # each patch comes from its photo rescaled by a random factor in [min_rescale, 1]
    soft_fraction: float = 0.25  # share of patches blurred before degradation (their target is the blurred patch)
    # soft patches only in batches of this factor or less: shrunk further, a blurred photo looks like a sharp one
    # (the downsampling's own blur is wider), so its blurred target only teaches the model to sharpen less
    soft_max_factor: float = FACTOR_CHOICES[-1]  # the largest: soft patches at every factor
    # the soft patches' blur is drawn uniformly from this range: the wider, the more a soft x2 patch looks like a
    # sharp x3 or x4 one, which the model must sharpen (tools/soft_conflict.py measures how alike they are)
    soft_sigmas: tuple[float, float] = SOFT_SIGMAS
    min_patch_std: float = MIN_PATCH_STD  # a patch flatter than this is redrawn: the higher, the more texture
    full_context: bool = False  # the input crop is `patch` plus the model's halo on each side, so every output
    # pixel in the loss sees real pixels only; False: a `patch` crop, whose outer 6 pixels see conv zero padding
    photos: tuple[str, ...] = field(default=data.TRAINING_PHOTOS + data.EXTRA_PHOTOS)
    # validate and keep an exponential moving average of the weights (each step: average += (1 - decay) *
    # (weights - average)); 0: the weights themselves. 0.999 averages about the last 1,000 steps, which steadies the
    # noisy soft case of small batches, at a lag that holds back a short run whose curve still rises steeply
    ema_decay: float = 0.999
    # the loss on the BT.601 luma of output and target (what PSNR(Y) measures) instead of the three channels: off,
    # since colour then costs nothing and drifts until it clips
    luma_loss: bool = False


RECIPE = Recipe()


def recipe_for(kind: ModelKind, base: Recipe = RECIPE) -> Recipe:
    """A model's recipe, from `base`: a factor-aware one trains from x1.25 (it can learn to leave x1.5 alone)."""
    return dataclasses.replace(base, factors=CONDITIONED_FACTOR_CHOICES) if kind.conditioned else base
