"""The training losses, by name (Recipe.loss), and the one a recipe asks for: what a step minimises."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from srcnn import data

if TYPE_CHECKING:
    from srcnn.recipe import Recipe

PATCH_MSE_FLOOR = (0.5 / 255) ** 2  # log_mse_per_patch: half an 8-bit level, squared (docs/training.md: floor study)
CHARBONNIER_EPS = 1e-3  # a smooth L1: sqrt(d^2 + eps^2), differentiable at 0; eps well below one 8-bit level


def charbonnier(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean sqrt(d^2 + eps^2): L1's robustness to large errors, smooth near zero."""
    return torch.sqrt((output - target).square() + CHARBONNIER_EPS**2).mean()


def log_mse(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """log(MSE): minimising it maximises PSNR, and it weighs batches of every factor alike."""
    return torch.log(F.mse_loss(output, target))


def log_mse_per_patch(output: torch.Tensor, target: torch.Tensor, floor: float = PATCH_MSE_FLOOR) -> torch.Tensor:
    """The mean over patches of log(MSE + floor): every patch weighs alike, whatever its factor or texture.

    With a factor per patch, one log(MSE) over the batch is ruled by the large errors of the x4 patches; per
    patch, a soft patch that bicubic already gets right counts as much as a sharp x4 one, so the model learns to
    leave it alone. The floor keeps a perfect patch from ruling instead; the higher it is, the less the patches
    that bicubic gets nearly right weigh (Recipe.patch_mse_floor).
    """
    mse = (output - target).square().mean(dim=(1, 2, 3))  # (batch,)
    return torch.log(mse + floor).mean()


def log_mse_per_group(output: torch.Tensor, target: torch.Tensor, soft: torch.Tensor,
                      floor: float = PATCH_MSE_FLOOR) -> torch.Tensor:
    """log(MSE + floor) of the sharp patches pooled, and of the soft ones pooled, each weighed by its share.

    PSNR is a log of the error pooled over a whole photo, ruled by its edges and textures: pooled, the sharp patches
    weigh as the evaluation weighs them, where per patch a flat one that bicubic gets nearly right pulls as hard as
    a textured one. The soft patches, whose errors are much smaller, get their own log, so they still count as
    much per patch as in log_mse_per_patch. `soft` is a (batch,) bool tensor; an empty group adds nothing.
    """
    mse = (output - target).square().mean(dim=(1, 2, 3))  # (batch,)
    loss = mse.new_zeros(())
    for group in (soft, ~soft):  # masks, not indexing: no device sync for the group sizes
        count = group.sum()
        pooled = torch.where(count > 0, (mse * group).sum() / count.clamp(min=1), 1.0)  # empty: log(1) = 0
        loss = loss + count / len(mse) * torch.log(pooled + floor)
    return loss


Loss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # (output, target, soft mask) -> scalar
LOSSES: dict[str, Callable[..., torch.Tensor]] = {  # all but log_mse_per_group ignore which patches are soft
    "charbonnier": charbonnier, "l1": F.l1_loss, "log_mse": log_mse, "log_mse_per_patch": log_mse_per_patch,
    "log_mse_per_group": log_mse_per_group}


def loss_function(recipe: Recipe) -> Loss:
    """The recipe's loss as (output, target, soft) -> scalar; the log(MSE)-per-patch and -per-group ones with the
    recipe's floor; on BT.601 luma if recipe.luma_loss, else on the three channels."""
    if recipe.loss == "log_mse_per_group":
        on_channels: Loss = functools.partial(log_mse_per_group, floor=recipe.patch_mse_floor)
    else:
        plain = (functools.partial(log_mse_per_patch, floor=recipe.patch_mse_floor)
                 if recipe.loss == "log_mse_per_patch" else LOSSES[recipe.loss])

        def on_channels(output: torch.Tensor, target: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
            return plain(output, target)
    if not recipe.luma_loss:
        return on_channels

    def on_luma(output: torch.Tensor, target: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
        # divided by 255, so an 8-bit level of luma is 1/255 as in each channel and the patch floor means the same
        return on_channels(data.luma(output) / data.PIXEL_LEVELS, data.luma(target) / data.PIXEL_LEVELS, soft)
    return on_luma
