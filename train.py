"""Train one SuperResolutionNet for every upscale factor from 2 to 4, on photos bundled with scikit-image.

    python train.py                                  # writes outputs/srcnn_dynamic.pth, as the shipped weights were made
    python train.py --out weights/srcnn_dynamic.pth  # replaces the shipped weights (only when asked)
    python train.py --steps 2000 --out /tmp/quick.pth

Each batch draws one factor from 2, 2.25, ..., 4 (integers and non-integers), cuts high-resolution patches from
the training photos (redrawing flat ones), and degrades them with antialiased bicubic downsampling
(srcnn.data.make_pair). The network starts as the identity on its bicubic input (identity_init), so training begins
at bicubic quality and only learns the correction; the loss is log(MSE) (log_mse). The checkpoint with the best
mean Y-PSNR on the validation photos is kept.
"""

from __future__ import annotations

import argparse
import copy
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

import srcnn.startup  # noqa: F401, I001 - first: a signal while the libraries load exits quietly
import srcnn_dynamic as sd
from srcnn import data
from srcnn.errors import run_guarded
from srcnn.plan import check_output_file
from srcnn.weights import save_state_dict

log = logging.getLogger("train")

DEFAULT_OUT = Path("outputs") / "srcnn_dynamic.pth"  # a try never replaces the shipped weights unless asked to
MAX_BATCH_SIZE = 4096  # 64x64 patches: about 2 GB of activations at this size; beyond it, memory runs out
STEPS = 22_000  # about 45 minutes on a 2-core CPU (0.11 s a step, plus validation)
BATCH_SIZE = 32
HR_PATCH = 64  # high-resolution patch side; its low-resolution side is a multiple of 4 so x2.25 etc. fit exactly
FACTOR_CHOICES = tuple(q / 4 for q in range(8, 17))  # 2, 2.25, ..., 4: quarter steps keep k * factor whole
LEARNING_RATE = 3e-4  # Adam, cosine-decayed to LEARNING_RATE * FINAL_LR_FRACTION; 1e-3 was no better at 3,000 steps
FINAL_LR_FRACTION = 0.01
MIN_PATCH_STD = 0.03  # about 15% of random patches are flat (sky, background): they teach nothing, so redraw
MAX_DRAWS = 20  # tries for a patch with enough texture before taking whatever comes
VALIDATE_EVERY = 500  # steps between validations (each takes a few seconds)
PASS_THROUGH_OFFSET = 1.0  # identity_init: bias that keeps slightly negative bicubic overshoot above ReLU's 0


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


class PatchSampler:
    """Random high-resolution patches from the training photos, area-weighted, with flips and rotations."""

    def __init__(self, photos: list[torch.Tensor], seed: int = sd.SEED, min_std: float = MIN_PATCH_STD) -> None:
        self.photos = photos  # each (1, 3, H, W) in [0, 1]
        areas = np.array([p.shape[2] * p.shape[3] for p in photos], dtype=np.float64)
        self.weights = areas / areas.sum()
        self.rng = np.random.default_rng(seed)
        self.min_std = min_std

    def factor(self) -> sd.Factor:
        """A factor for the next batch, the same along both axes."""
        scale = float(self.rng.choice(FACTOR_CHOICES))
        return sd.Factor(scale, scale)

    def patches(self, batch_size: int, side: int) -> torch.Tensor:
        """(batch_size, 3, side, side) patches, each randomly rotated and flipped."""
        out = torch.empty(batch_size, 3, side, side)
        for i in range(batch_size):
            for _ in range(MAX_DRAWS):
                photo = self.photos[self.rng.choice(len(self.photos), p=self.weights)]
                top = self.rng.integers(0, photo.shape[2] - side + 1)
                left = self.rng.integers(0, photo.shape[3] - side + 1)
                patch = photo[0, :, top : top + side, left : left + side]
                if float(patch.std()) >= self.min_std:
                    break
            patch = torch.rot90(patch, k=int(self.rng.integers(4)), dims=(1, 2))
            out[i] = patch.flip(2) if self.rng.random() < 0.5 else patch
        return out


def patch_side(factor: sd.Factor) -> int:
    """High-resolution side near HR_PATCH whose low-resolution side, a multiple of 4, is side / factor."""
    lr = max(4, 4 * round(HR_PATCH / factor.height / 4))
    return round(lr * factor.height)


def log_mse(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """log(MSE): minimising it maximises PSNR, and it weighs every factor alike.

    Plain MSE is dominated by the large errors of x4 batches, so one model for all factors drifts to x3-x4 and
    gains little at x2 (measured: +0.2 dB at x2 with MSE, +0.4 dB with log-MSE, after 3,000 steps).
    """
    return torch.log(F.mse_loss(output, target))


@torch.inference_mode()
def validate(model: sd.SuperResolutionNet, photos: list[torch.Tensor]) -> float:
    """Mean Y-PSNR (dB) of the model over the validation photos at data.EVAL_FACTORS."""
    values = []
    for photo in photos:
        for factor in map(sd.Factor.parse, data.EVAL_FACTORS):
            lr, hr = data.make_pair(photo, factor)
            values.append(data.psnr_y(hr, model(lr, factor.tensor()), factor))
    return float(np.mean(values))


@dataclass
class TrainResult:
    """How a training run went: its best validation PSNR, where, from what start, and how long it took."""

    best_psnr: float
    best_step: int
    initial_psnr: float
    seconds: float
    history: list[tuple[int, float]]  # (step, validation Y-PSNR)


def train(
    *, steps: int, batch_size: int, out: Path, seed: int = sd.SEED, learning_rate: float = LEARNING_RATE,
    training_photos: tuple[str, ...] = data.TRAINING_PHOTOS,
    validation_photos: tuple[str, ...] = data.VALIDATION_PHOTOS,
    validate_every: int = VALIDATE_EVERY, progress: bool = True,
) -> TrainResult:
    """Train from the identity and write the best state dict (by validation PSNR) to `out` when done."""
    torch.manual_seed(seed)
    model = sd.SuperResolutionNet()
    identity_init(model)
    train_set = [data.load_photo_tensor(n) for n in training_photos]
    val_set = [data.load_photo_tensor(n) for n in validation_photos]
    sampler = PatchSampler(train_set, seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps, eta_min=learning_rate * FINAL_LR_FRACTION)

    model.eval()
    best_psnr = initial_psnr = validate(model, val_set)  # the identity: bicubic's PSNR
    best_step, start, history = 0, time.perf_counter(), [(0, initial_psnr)]
    best_state = copy.deepcopy(model.state_dict())  # kept in memory: `out` is written once, at the end
    log.info("validation Y-PSNR at the start (bicubic): %.3f dB", initial_psnr)
    bar = tqdm(range(1, steps + 1), desc="train", disable=not progress, dynamic_ncols=True, file=sys.stderr)
    for step in bar:
        model.train()
        factor = sampler.factor()
        lr, hr = data.make_pair(sampler.patches(batch_size, patch_side(factor)), factor)
        loss = log_mse(model(lr, factor.tensor()), hr)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % validate_every == 0 or step == steps:
            model.eval()
            psnr = validate(model, val_set)
            history.append((step, psnr))
            if psnr > best_psnr:
                best_psnr, best_step = psnr, step
                best_state = copy.deepcopy(model.state_dict())
            bar.set_postfix(loss=f"{loss.item():.2e}", val_psnr=f"{psnr:.3f}", best=f"{best_psnr:.3f}@{best_step}")
        elif step % 10 == 0:
            bar.set_postfix(loss=f"{loss.item():.2e}", best=f"{best_psnr:.3f}@{best_step}")
    save_state_dict(best_state, out)  # atomically: an interrupted run leaves `out` as it was
    return TrainResult(best_psnr, best_step, initial_psnr, time.perf_counter() - start, history)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line, every number and path checked (argparse's one-line errors, exit 2) before any work."""
    parser = sd.OneLineErrorParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=STEPS, metavar="N", help="Adam steps (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, metavar="N",
                        help=f"patches per step, 1 to {MAX_BATCH_SIZE} (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="PATH",
                        help="where the best state dict goes (default: %(default)s; the shipped weights are"
                        f" {sd.DEFAULT_WEIGHTS.relative_to(sd.DEFAULT_IMAGE.parent)}, replaced only if named here)")
    parser.add_argument("--seed", type=int, default=sd.SEED, help="0 or more (default: %(default)s)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging, with tracebacks")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps {args.steps}: must be at least 1")
    if not 1 <= args.batch_size <= MAX_BATCH_SIZE:
        parser.error(f"--batch-size {args.batch_size}: must be from 1 to {MAX_BATCH_SIZE}")
    if args.seed < 0:
        parser.error(f"--seed {args.seed}: must be 0 or more")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")

    def work() -> int:
        check_output_file(args.out, "--out")  # fail now, not after an hour of training
        log.info("training on %d photos, validating on %s; torch threads: %d", len(data.TRAINING_PHOTOS),
                 ", ".join(data.VALIDATION_PHOTOS), torch.get_num_threads())
        result = train(steps=args.steps, batch_size=args.batch_size, out=args.out, seed=args.seed)
        log.info("best validation Y-PSNR %.3f dB at step %d (bicubic %.3f dB, gain %+.3f dB); %.1f min; wrote %s",
                 result.best_psnr, result.best_step, result.initial_psnr, result.best_psnr - result.initial_psnr,
                 result.seconds / 60, args.out)
        return sd.EXIT_OK

    return run_guarded(work)


if __name__ == "__main__":
    sys.exit(main())
