"""Training batches: random patches of the training photos, rotated, flipped, some blurred, degraded, upsampled."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

import srcnn_dynamic as sd
from srcnn import data
from srcnn.recipe import Recipe

MARGIN = 8  # high-resolution pixels cut beyond the crop on each side, so no crop sees its patch's own border
MAX_DRAWS = 20
RESCALE_LEVELS = 6  # photos are kept at 6 sizes from min_rescale to 1 (the random rescale, precomputed once)


def centre_crop(images: torch.Tensor, side: int) -> torch.Tensor:
    """The central side x side pixels of (N, C, H, W) images."""
    top, left = (images.shape[2] - side) // 2, (images.shape[3] - side) // 2
    return images[:, :, top : top + side, left : left + side]


def lr_length(factor: float, patch: int) -> int:
    """Low-resolution side, a multiple of 4, whose upsampled side covers the crop and its MARGIN on both sides."""
    return 4 * math.ceil((patch + 2 * MARGIN) / factor / 4)


class PatchSampler:
    """Training batches: random patches of the rescaled photos, rotated, flipped, some blurred, then degraded."""

    def __init__(self, photos: list[torch.Tensor], recipe: Recipe, seed: int = sd.SEED, context: int = 0) -> None:
        assert 0 <= context <= MARGIN, f"a context of {context} pixels does not fit in the {MARGIN}-pixel margin"
        self.recipe, self.context = recipe, context
        self.rng = np.random.default_rng(seed)
        scales = np.linspace(recipe.min_rescale, 1.0, RESCALE_LEVELS) if recipe.min_rescale < 1 else [1.0]
        largest = max(round(lr_length(f, recipe.patch) * f) for f in recipe.factors)  # the largest patch side
        rescaled = (F.interpolate(p, scale_factor=s, mode="bicubic", antialias=True).clamp(0, 1) if s < 1 else p
                    for p in photos for s in scales)
        # (1, 3, H, W) in [0, 1]: every photo at every scale that still holds the largest patch
        self.images = [image for image in rescaled if min(image.shape[2:]) >= largest]
        areas = np.array([p.shape[2] * p.shape[3] for p in self.images], dtype=np.float64)
        self.weights = areas / areas.sum()  # area-weighted: every pixel is as likely as any other

    def factors(self, count: int) -> list[float]:
        """A factor per patch (or one for the whole batch), drawn from the recipe's factors."""
        if self.recipe.mix_factors:
            return [float(f) for f in self.rng.choice(self.recipe.factors, size=count)]
        return [float(self.rng.choice(self.recipe.factors))] * count

    def patch(self, side: int) -> torch.Tensor:
        """A (3, side, side) patch, randomly rotated and flipped; flat draws are redrawn up to MAX_DRAWS times."""
        for _ in range(MAX_DRAWS):
            image = self.images[self.rng.choice(len(self.images), p=self.weights)]
            top = self.rng.integers(0, image.shape[2] - side + 1)
            left = self.rng.integers(0, image.shape[3] - side + 1)
            patch = image[0, :, top : top + side, left : left + side]
            if float(patch.std()) >= self.recipe.min_patch_std:
                break
        patch = torch.rot90(patch, k=int(self.rng.integers(4)), dims=(1, 2))
        return patch.flip(2) if self.rng.random() < 0.5 else patch

    def soften(self, patch: torch.Tensor, scale: float) -> tuple[torch.Tensor, bool]:
        """(patch, whether blurred): a soft_fraction of the patches of a batch of factor `scale` up to
        soft_max_factor come out blurred, as an out-of-focus or already-upscaled photo is; beyond it none (and no
        random number is drawn)."""
        if scale > self.recipe.soft_max_factor or self.rng.random() >= self.recipe.soft_fraction:
            return patch, False
        return data.gaussian_blur(patch[None], float(self.rng.uniform(*self.recipe.soft_sigmas)))[0], True

    def batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(upsampled input, target, soft, factors): (batch_size, 3, patch + 2 * context, same), (batch_size, 3,
        patch, patch), which patches were blurred, a (batch_size,) bool tensor, and each patch's factor, float32."""
        size, inputs, targets, soft = self.recipe.patch, [], [], []
        factors = self.factors(self.recipe.batch_size)
        for scale in dict.fromkeys(factors):  # one degradation and one Resize per distinct factor
            factor, count = sd.Factor(scale, scale), factors.count(scale)
            side = round(lr_length(scale, size) * scale)
            patches, blurred = zip(*(self.soften(self.patch(side), scale) for _ in range(count)))
            hr = torch.stack(patches)
            soft.extend(blurred)
            lr, hr = data.make_pair(hr, factor)
            assert hr.shape[2] == side, f"x{scale}: {side}-pixel patches must not be cropped ({tuple(hr.shape)})"
            upsampled = sd.bicubic_resize(lr, factor.tensor())  # the model's first stage: no weights to train
            inputs.append(centre_crop(upsampled, size + 2 * self.context))  # MARGIN or more from every border
            targets.append(centre_crop(hr, size))
        batch_factors = torch.tensor([scale for scale in dict.fromkeys(factors) for _ in range(factors.count(scale))])
        return torch.cat(inputs), torch.cat(targets), torch.tensor(soft), batch_factors
