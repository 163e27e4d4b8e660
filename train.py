"""Train one SuperResolutionNet for every upscale factor from 2 to 4, on photos that ship inside Python packages.

    python train.py                                  # outputs/srcnn_dynamic.pth, as the shipped weights were made
    python train.py --out weights/srcnn_dynamic.pth  # replaces the shipped weights (only when asked)
    python train.py --steps 2000 --out /tmp/quick.pth
    python train.py --device cuda --steps 400000     # on a GPU (bfloat16 where the card has it)

Each batch draws one factor from 2, 2.25, ..., 4 and cuts patches from 19 photos that ship inside scikit-image,
scikit-learn, matplotlib and PyWavelets (redrawing flat ones), rotated and flipped; a quarter of them are blurred
first, so that the model also sees pictures that were never sharp. Each is degraded with antialiased bicubic
downsampling (srcnn.data.make_pair), upsampled by the model's own Resize, and cropped to RECIPE.patch pixels away
from its borders, so the three convolutions, where the weights and the time are, train on one (batch, 3, patch,
patch) tensor in channels_last. The network starts as the identity on its bicubic input (identity_init), so
training begins at bicubic quality and learns the correction. The loss is log(MSE) per patch with a floor of
half an 8-bit level, so a patch that bicubic already gets right (a soft one) still counts: the model learns to
leave soft pictures alone. Batches are small (8), for many steps. What is validated and kept is a moving average
of the weights, which smooths the noise of those small steps; of its checkpoints, the one with the best mean Y-PSNR
on the validation photos among those that lose at most 1 dB on their soft copies is kept. Recipe lists every
option; docs/training.md measures each.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
import json
import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

import srcnn.startup  # noqa: F401, I001 - first: a signal while the libraries load exits quietly
import srcnn_dynamic as sd
from srcnn import data
from srcnn.errors import run_guarded
from srcnn.images import atomic_path
from srcnn.models import MODELS, TUTORIAL_MODEL, ModelKind, model_kind
from srcnn.plan import check_output_file
from srcnn.pytorch import model_halo
from srcnn.weights import save_state_dict

log = logging.getLogger("train")

OUT_FOLDER = Path("outputs")  # --out's default is the model's weights file name here: a try never replaces the
# shipped weights unless asked to
WEIGHTS_SUFFIXES = (".pth", ".pt")  # --out must end in one: `--out train.py` would replace a source file
STEPS = 54_000  # the default run: 45 to 55 minutes on a 2-core CPU (docs/training.md names it)
# the factor-aware model's default run: it starts from the tutorial's trained network, and each step costs more
CONDITIONED_STEPS = 20_000
MAX_BATCH_SIZE = 4096  # 64x64 patches: about 2 GB of activations at this size; beyond it, memory runs out
LEARNING_RATE = 3e-4  # Adam, cosine-decayed to LEARNING_RATE * FINAL_LR_FRACTION; 1e-3: 0.19 dB less (docs/training.md)
FINAL_LR_FRACTION = 0.01
MAX_LEARNING_RATE = 0.1  # --learning-rate: far above any that trains this model; beyond it, a typo
FACTOR_CHOICES = tuple(q / 4 for q in range(8, 17))  # 2, 2.25, ..., 4: quarter steps keep 4k * factor whole
# a model that sees the factor can learn to leave a small factor's picture alone, so it trains from x1.25
CONDITIONED_FACTOR_CHOICES = tuple(q / 4 for q in range(5, 17))  # 1.25, 1.5, ..., 4
LOW_EVAL_FACTORS = ("1.5",)  # validated too when a recipe trains on it: where the tutorial's model over-sharpens
MARGIN = 8  # high-resolution pixels cut beyond the crop on each side, so no crop sees its patch's own border
MIN_PATCH_STD = 0.03  # a random patch this flat (sky, background) is redrawn, at most MAX_DRAWS times
MAX_DRAWS = 20
RESCALE_LEVELS = 6  # photos are kept at 6 sizes from min_rescale to 1 (the random rescale, precomputed once)
SOFT_SIGMAS = (0.5, 2.5)  # Gaussian blur (high-resolution pixels) of the soft patches: a slightly to a very soft photo
VALIDATE_EVERY = 2_000  # steps between validations (each takes a few seconds)
PASS_THROUGH_OFFSET = 1.0  # identity_init: bias that keeps slightly negative bicubic overshoot above ReLU's 0
PATCH_MSE_FLOOR = (0.5 / 255) ** 2  # log_mse_per_patch: half an 8-bit level, squared (docs/training.md: floor study)
CHARBONNIER_EPS = 1e-3  # a smooth L1: sqrt(d^2 + eps^2), differentiable at 0; eps well below one 8-bit level
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of CPUs that compute bfloat16 in hardware
MAX_SEED = 2**64 - 1  # torch.manual_seed takes seeds up to this (numpy's generators take any size)


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
    # (weights - average)); 0: the weights themselves. Steps of 8 patches are noisy: from step 20,000 of the default
    # run on, the weights' soft case swings by up to 1.8 dB between checkpoints, the average's by 0.2 at most
    # (docs/training.md, the seventh round). 0.999 averages about the last 1,000 steps: a lag that costs nothing once
    # the curve has flattened, but holds back a short run whose curve still rises steeply.
    ema_decay: float = 0.999
    # the loss on the BT.601 luma of output and target (what PSNR(Y) measures; the SRCNN paper's one-channel network
    # trains on Y), not on the three channels: colour then costs nothing and drifts until it clips (docs/training.md,
    # the ninth round), so off
    luma_loss: bool = False


RECIPE = Recipe()


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


def identity_init(model: sd.SuperResolutionNet, offset: float = PASS_THROUGH_OFFSET) -> None:
    """Make the network output its bicubic input exactly, keeping the other weights as initialised.

    conv1 copies the three input channels into its first three channels (plus `offset`, so values down to
    -offset survive the ReLU), conv2 copies those three on, and conv3 copies them back and subtracts `offset`.
    conv3's weights from the other 29 channels start at zero, so they add nothing until training moves them.
    """
    with torch.no_grad():
        model.conv3.weight.zero_()  # all of conv3, so the 29 other channels add nothing at first
        for conv in (model.conv1, model.conv2, model.conv3):
            centre_h, centre_w = conv.kernel_size[0] // 2, conv.kernel_size[1] // 2
            for c in range(3):
                conv.weight[c].zero_()
                conv.weight[c, c, centre_h, centre_w] = 1.0
        model.conv1.bias[:3] = offset
        model.conv2.bias[:3] = 0.0
        model.conv3.bias[:] = -offset


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


@torch.inference_mode()
def psnr_per_factor(model: sd.SuperResolutionNet, photos: list[torch.Tensor],
                    factors: tuple[str, ...] = data.EVAL_FACTORS) -> dict[str, float]:
    """Mean Y-PSNR (dB) of the model over `photos` at each of `factors`, keyed by factor tag."""
    result = {}
    for factor in map(sd.Factor.parse, factors):
        values = []
        for photo in photos:
            lr, hr = data.make_pair(photo, factor)
            values.append(data.psnr_y(hr, model(lr, factor.tensor()), factor))
        result[factor.tag] = float(np.mean(values))
    return result


def validation_factors(recipe: Recipe) -> tuple[str, ...]:
    """The evaluation factors within the range the recipe trains on (x2 to x4 for the tutorial's recipe, and x1.5
    too for the factor-aware model's)."""
    trained = tuple(f for f in LOW_EVAL_FACTORS + data.EVAL_FACTORS
                    if min(recipe.factors) <= float(f) <= max(recipe.factors))
    return trained or data.EVAL_FACTORS  # a recipe between two evaluation factors: judged on all of them


def cpu_computes_bfloat16() -> bool:
    """Whether this CPU has bfloat16 units (AMX or AVX512-BF16); without them bfloat16 is slower than float32."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:  # not Linux: assume not
        return False
    return any(flag in flags for flag in BF16_CPU_FLAGS)


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """bfloat16 for the forward pass where the hardware computes it ("auto"), else None (float32)."""
    if precision == "float32":
        return None
    if precision == "bfloat16":
        return torch.bfloat16
    has_bf16 = torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_computes_bfloat16()
    return torch.bfloat16 if has_bf16 else None


def make_optimizer(model: sd.SuperResolutionNet, recipe: Recipe, learning_rate: float) -> torch.optim.Adam:
    """Adam, conv3 (the reconstruction layer) at last_layer_lr_scale times the others' learning rate."""
    last = list(model.conv3.parameters())
    others = [p for p in model.parameters() if all(p is not q for q in last)]
    return torch.optim.Adam([{"params": others, "lr": learning_rate},
                             {"params": last, "lr": learning_rate * recipe.last_layer_lr_scale}])


def cpu_state(model: sd.SuperResolutionNet) -> dict[str, torch.Tensor]:
    """A float32, contiguous copy of the weights on the CPU: what save_state_dict writes, whatever trains."""
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}


def train_step(
    refine: Callable[[torch.Tensor], torch.Tensor], optimizer: torch.optim.Optimizer, inputs: torch.Tensor,
    targets: torch.Tensor, soft: torch.Tensor, loss_fn: Loss, half: torch.dtype | None,
) -> torch.Tensor:
    """One Adam step on a batch; the forward pass in `half` (None: float32), the loss and the weights in float32.

    The inputs may be larger than the targets (Recipe.full_context): the loss then sees the outputs' centre.
    """
    with torch.autocast(inputs.device.type, dtype=half or torch.float32, enabled=half is not None):
        outputs = refine(inputs)
    loss = loss_fn(centre_crop(outputs, targets.shape[3]).float(), targets, soft)  # the input's context cut off
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


@dataclass
class TrainResult:
    """How a training run went: its best validation PSNR, where, from what start, and how long it took."""

    best_psnr: float
    best_step: int
    initial_psnr: float
    seconds: float
    history: list[tuple[int, float]]  # (step, validation Y-PSNR)
    # at each validation: its step, the mean Y-PSNR at each validation factor ("x2", ...) and on the soft case at
    # x2 ("soft x2": evaluate.py's, the validation photos blurred by data.SOFT_SIGMA first), for the run's record
    detail: list[dict[str, float]]
    precision: str  # "float32" or "bfloat16" (the forward pass; weights and validation are float32)
    bicubic: dict[str, float] = field(default_factory=dict)  # bicubic's figures, keyed as in `detail`


def start_from_tutorial(model: torch.nn.Module) -> None:
    """Load the tutorial's shipped weights into a model that has its three convolutions (and more, at rest); a model
    whose layers differ says how with a method of this name."""
    state = sd.load_state_dict(sd.DEFAULT_WEIGHTS)
    if hasattr(model, "start_from_tutorial"):
        model.start_from_tutorial(state)
        return
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all(not name.startswith("conv") for name in missing), (missing, unexpected)


def recipe_for(kind: ModelKind) -> Recipe:
    """The default recipe of a model: a factor-aware one trains from x1.25 (it can learn to leave x1.5 alone)."""
    return dataclasses.replace(RECIPE, factors=CONDITIONED_FACTOR_CHOICES) if kind.conditioned else RECIPE


def train(
    *, steps: int, out: Path, recipe: Recipe = RECIPE, seed: int = sd.SEED, learning_rate: float = LEARNING_RATE,
    model_name: str = "tutorial",
    device: str = "cpu", precision: str = "auto", compile_model: bool = False,
    validation_photos: tuple[str, ...] = data.VALIDATION_PHOTOS, validate_every: int = VALIDATE_EVERY,
    max_soft_loss: float = data.SOFT_LOSS_LIMIT, progress: bool = True,
) -> TrainResult:
    """Train from the identity and write the best state dict to `out` when done: the best validation PSNR among
    the checkpoints that lose at most `max_soft_loss` dB on the soft case at x2 (the identity, at step 0, loses none).

    Validated and kept are the weights' moving average (recipe.ema_decay) or, with 0, the weights themselves. The
    weights' soft case swings by a decibel or more between checkpoints a few thousand steps apart, where the sharp gain
    moves by hundredths (docs/training.md, the sixth round), and even the average's moves by tenths, so the choice
    keeps the project's soft target at little cost; math.inf chooses by the sharp gain alone.
    """
    torch.manual_seed(seed)
    where = torch.device(device)
    kind = model_kind(model_name)
    if kind.conditioned and recipe.mix_factors:
        raise sd.SrcnnError(f"the {kind.name} model takes one factor per batch: mix_factors must be False")
    model = kind.build()
    if kind.tutorial:
        identity_init(model)  # bicubic at the start: training learns the correction
    else:
        start_from_tutorial(model)  # the tutorial's shipped network at the start: training learns what the factor adds
    context = model_halo(model) if recipe.full_context else 0
    sampler = PatchSampler([data.load_photo_tensor(n) for n in recipe.photos], recipe, seed, context)
    val_set = [data.load_photo_tensor(n) for n in validation_photos]
    soft_set = [data.gaussian_blur(photo, data.SOFT_SIGMA) for photo in val_set]  # evaluate.py's soft case
    val_factors = validation_factors(recipe)
    optimizer = make_optimizer(model, recipe, learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps,
                                                          eta_min=learning_rate * FINAL_LR_FRACTION)
    half = autocast_dtype(where, precision)
    loss_fn = loss_function(recipe)
    # channels_last: oneDNN's and cuDNN's fast layout for these convolutions (docs/training.md: 1.7x on the CPU)
    model.to(where, memory_format=torch.channels_last)
    compiled = torch.compile(model.refine) if compile_model else model.refine  # one input shape: compiled once
    # what is validated and kept: the model, or the average of its weights (a copy, updated after each step)
    average = (AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(recipe.ema_decay)) if recipe.ema_decay
               else None)
    kept = model if average is None else average.module

    def evaluate_now(step: int, network: torch.nn.Module | None = None) -> tuple[float, float]:
        """(validation PSNR, soft x2 PSNR) of the kept weights, or of another `network`; each factor's figure
        recorded in `detail` (or, for another network, in `reference`). In float32 on the CPU, whatever trains:
        comparable figures."""
        cpu_model = copy.deepcopy(kept if network is None else network).float()
        cpu_model = cpu_model.to("cpu", memory_format=torch.contiguous_format).eval()
        sharp = psnr_per_factor(cpu_model, val_set, val_factors)
        soft = psnr_per_factor(cpu_model, soft_set, ("2",))["2"]
        entry = {f"x{tag}": v for tag, v in sharp.items()} | {"soft x2": soft}
        if network is None:
            detail.append({"step": step} | entry)
        else:
            reference.update(entry)
        return float(np.mean(list(sharp.values()))), soft  # the validation PSNR: the mean over factors and photos

    detail: list[dict[str, float]] = []
    reference: dict[str, float] = {}  # bicubic's figures, per factor and soft
    if kind.tutorial:
        initial_psnr, initial_soft = evaluate_now(0)  # the identity: bicubic's PSNRs
        reference.update({k: v for k, v in detail[0].items() if k != "step"})
        start_psnr = initial_psnr
    else:
        bicubic = sd.SuperResolutionNet()
        identity_init(bicubic)
        initial_psnr, initial_soft = evaluate_now(0, bicubic)  # bicubic's PSNRs: what every gain is measured from
        start_psnr, _ = evaluate_now(0)  # the tutorial's network, where this one starts
    best_psnr = start_psnr
    best_step, start, history = 0, time.perf_counter(), [(0, start_psnr)]
    best_state = cpu_state(kept)
    log.info("validation Y-PSNR at the start (bicubic): %.3f dB; forward pass in %s on %s", initial_psnr,
             "float32" if half is None else "bfloat16", where)
    bar = tqdm(range(1, steps + 1), desc="train", disable=not progress, dynamic_ncols=True, file=sys.stderr)
    model.train()
    for step in bar:
        inputs, targets, soft, factors = sampler.batch()
        inputs, targets = (t.to(where, memory_format=torch.channels_last) for t in (inputs, targets))
        if kind.conditioned:  # one factor per batch (mix_factors is refused above)
            factor = sd.Factor(float(factors[0]), float(factors[0])).tensor(where)
            refine: Callable[[torch.Tensor], torch.Tensor] = functools.partial(compiled, factor=factor)
        else:
            refine = compiled
        loss = train_step(refine, optimizer, inputs, targets, soft.to(where), loss_fn, half)
        schedule.step()
        if average is not None:
            average.update_parameters(model)
        if step % validate_every == 0 or step == steps:
            psnr, soft_psnr = evaluate_now(step)
            history.append((step, psnr))
            if psnr > best_psnr and initial_soft - soft_psnr <= max_soft_loss:
                best_psnr, best_step = psnr, step
                best_state = cpu_state(kept)
            bar.set_postfix(loss=f"{loss.item():.2e}", val_psnr=f"{psnr:.3f}", best=f"{best_psnr:.3f}@{best_step}")
            log.debug("step %d: validation Y-PSNR %.3f dB", step, psnr)
    save_state_dict(best_state, out)  # atomically: an interrupted run leaves `out` as it was
    return TrainResult(best_psnr, best_step, initial_psnr, time.perf_counter() - start, history, detail,
                       "float32" if half is None else "bfloat16", reference)


def machine_name(device: str) -> str:
    """The processor that trained: the GPU's name, or the CPU's model name from /proc/cpuinfo."""
    if device == "cuda":
        return torch.cuda.get_device_name()
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return "unknown CPU"
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown CPU")


def write_history(path: Path, args: argparse.Namespace, recipe: Recipe, result: TrainResult) -> None:
    """The run's record: what trained, on what, for how long, and its validation PSNR per step."""
    record = {
        "command": "python train.py " + " ".join(sys.argv[1:]), "model": args.model, "steps": args.steps,
        "seed": args.seed,
        "learning_rate": args.learning_rate,
        "recipe": dataclasses.asdict(recipe), "device": machine_name(args.device), "threads": torch.get_num_threads(),
        "precision": result.precision, "torch": torch.__version__, "minutes": round(result.seconds / 60, 1),
        "best_step": result.best_step, "best_psnr": result.best_psnr, "initial_psnr": result.initial_psnr,
        "history": result.history, "detail": result.detail, "bicubic": result.bicubic,
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(record, indent=1) + "\n")
    except OSError as exc:  # a full disk, or a folder removed since the check: one line, as save_state_dict says it
        raise sd.SrcnnError(f"cannot write {path}: {exc.strerror or exc}; nothing was left half-written") from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line, every number and path checked (argparse's one-line errors, exit 2) before any work."""
    parser = sd.OneLineErrorParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, metavar="N",
                        help=f"Adam steps (default: {STEPS} for the tutorial's model, {CONDITIONED_STEPS} for the"
                        " factor-aware one)")
    parser.add_argument("--batch-size", type=int, default=RECIPE.batch_size, metavar="N",
                        help=f"patches per step, 1 to {MAX_BATCH_SIZE} (default: %(default)s)")
    parser.add_argument("--model", choices=MODELS, default=TUTORIAL_MODEL,
                        help="; ".join(f"{kind.name}: {kind.about}" for kind in MODELS.values())
                        + " (default: %(default)s)")
    parser.add_argument("--out", type=Path, metavar="PATH",
                        help=f"where the best state dict goes (default: {OUT_FOLDER}/ and the model's weights file"
                        " name; the shipped weights are " + ", ".join(kind.weights for kind in MODELS.values())
                        + ", replaced only if named here)")
    parser.add_argument("--seed", type=int, default=sd.SEED, help="0 to 2**64 - 1 (default: %(default)s)")
    parser.add_argument("--learning-rate", type=float, default=LEARNING_RATE, metavar="LR",
                        help="Adam's at the start, cosine-decayed to a hundredth; above 0, at most 0.1 (default:"
                        " %(default)s)")
    parser.add_argument("--ema-decay", type=float, default=RECIPE.ema_decay, metavar="D",
                        help="validate and keep a moving average of the weights, from 0 (the weights themselves: better"
                        " for a short run, which the average lags) to below 1 (default: %(default)s)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="(default: %(default)s)")
    parser.add_argument("--precision", choices=("auto", "float32", "bfloat16"), default="auto",
                        help="of the forward pass; auto: bfloat16 where the CPU (AMX, AVX512-BF16) or GPU computes it"
                        " (default: %(default)s)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the convolutions (docs/training.md)")
    parser.add_argument("--history", type=Path, metavar="PATH",
                        help="also write the run's record (validation PSNR per step, also per factor and on the soft"
                        " case; recipe, machine) as JSON, for tools/plot_training.py")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging, with tracebacks")
    args = parser.parse_args(argv)
    args.out = args.out or OUT_FOLDER / model_kind(args.model).weights_path.name
    if args.steps is None:
        args.steps = CONDITIONED_STEPS if model_kind(args.model).conditioned else STEPS
    if args.steps < 1:
        parser.error(f"--steps {args.steps}: must be at least 1")
    if not 1 <= args.batch_size <= MAX_BATCH_SIZE:
        parser.error(f"--batch-size {args.batch_size}: must be from 1 to {MAX_BATCH_SIZE}")
    if not 0 <= args.seed <= MAX_SEED:  # torch.manual_seed refuses the rest, after the data has loaded
        parser.error(f"--seed {args.seed}: must be 0 or more, and at most 2**64 - 1 ({MAX_SEED})")
    if not 0 < args.learning_rate <= MAX_LEARNING_RATE:  # also refuses nan
        parser.error(f"--learning-rate {args.learning_rate}: must be above 0 and at most {MAX_LEARNING_RATE}")
    if not 0 <= args.ema_decay < 1:  # also refuses nan
        parser.error(f"--ema-decay {args.ema_decay}: must be from 0 to below 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device cuda: PyTorch {torch.__version__} sees no CUDA GPU")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")

    def work() -> int:
        check_output_file(args.out, "--out", suffixes=WEIGHTS_SUFFIXES)  # fail now, not after an hour of training
        if args.history:
            check_output_file(args.history, "--history", [args.out], suffixes=(".json",))
        recipe = dataclasses.replace(recipe_for(model_kind(args.model)), batch_size=args.batch_size,
                                     ema_decay=args.ema_decay)
        log.info("training on %d photos, validating on %s; torch threads: %d", len(recipe.photos),
                 ", ".join(data.VALIDATION_PHOTOS), torch.get_num_threads())
        result = train(steps=args.steps, out=args.out, recipe=recipe, seed=args.seed, model_name=args.model,
                       learning_rate=args.learning_rate, device=args.device,
                       precision=args.precision, compile_model=args.compile)
        log.info("best validation Y-PSNR %.3f dB at step %d (bicubic %.3f dB, gain %+.3f dB); %.1f min; wrote %s",
                 result.best_psnr, result.best_step, result.initial_psnr, result.best_psnr - result.initial_psnr,
                 result.seconds / 60, args.out)
        if args.history:
            write_history(args.history, args, recipe, result)
        return sd.EXIT_OK

    return run_guarded(work)


if __name__ == "__main__":
    sys.exit(main())
