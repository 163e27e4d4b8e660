"""Measure training recipes against the previous one, each on the same number of pixels.

    python tools/recipe_study.py --steps 1200                       # every variant (about 5 minutes each)
    python tools/recipe_study.py --steps 1200 --variant baseline --variant "mixed factors"

Every variant trains for --steps steps on the same number of pixels per step (batch x patch^2), except the
smaller batches, which take proportionally more steps (STEP_SCALE) to see as many patches; the seconds column
says how long each took. For each, the best checkpoint's mean Y-PSNR gain over bicubic on
the validation photos at each factor of data.EVAL_FACTORS, and at x2 on the soft case (the same photos blurred by
data.SOFT_SIGMA first), as a markdown table for docs/training.md. The runs' files go to outputs/study/.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import re
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere: the project's modules

import srcnn.startup  # noqa: F401, E402, I001 - first: a signal while the libraries load exits quietly
import evaluate  # noqa: E402
import srcnn_dynamic as sd  # noqa: E402
import train  # noqa: E402
from srcnn import data  # noqa: E402
from srcnn.errors import run_guarded  # noqa: E402
from srcnn.weights import load_model  # noqa: E402

log = logging.getLogger("recipe_study")

OUT = Path("outputs") / "study"
HALF_LEVEL = 0.5 / 255  # the per-patch floor of the first studies (the square root of a mean squared error)
PREVIOUS = train.Recipe(loss="log_mse", patch_mse_floor=HALF_LEVEL**2, last_layer_lr_scale=1.0, patch=64,
                        batch_size=32, mix_factors=False, min_rescale=1.0, soft_fraction=0.0,
                        photos=data.TRAINING_PHOTOS, ema_decay=0.0)  # the recipe before; its weights validated
SHIPPED_BEFORE = dataclasses.replace(PREVIOUS, soft_fraction=0.25, photos=data.TRAINING_PHOTOS + data.EXTRA_PHOTOS)
BEFORE_AVERAGE = dataclasses.replace(train.RECIPE, ema_decay=0.0)  # the weights themselves validated and kept
VARIANTS = {
    "baseline": PREVIOUS,
    "last-layer lr x0.1": dataclasses.replace(PREVIOUS, last_layer_lr_scale=0.1),
    "charbonnier loss": dataclasses.replace(PREVIOUS, loss="charbonnier"),
    "L1 loss": dataclasses.replace(PREVIOUS, loss="l1"),
    "128-px patches, batch 8": dataclasses.replace(PREVIOUS, patch=128, batch_size=8),
    "mixed factors": dataclasses.replace(PREVIOUS, mix_factors=True),
    "mixed factors, log(MSE) per patch": dataclasses.replace(PREVIOUS, mix_factors=True, loss="log_mse_per_patch"),
    "rescale 0.5-1": dataclasses.replace(PREVIOUS, min_rescale=0.5),
    "4 packaged photos more": dataclasses.replace(PREVIOUS, photos=data.TRAINING_PHOTOS + data.EXTRA_PHOTOS),
    "soft 25%": dataclasses.replace(PREVIOUS, soft_fraction=0.25),
    "log(MSE) per patch, soft 25%": dataclasses.replace(PREVIOUS, loss="log_mse_per_patch", soft_fraction=0.25),
    "mixed, per patch, soft 25%": dataclasses.replace(PREVIOUS, mix_factors=True, loss="log_mse_per_patch",
                                                      soft_fraction=0.25),
    # From the recipe of the previous shipped weights (the four photos and soft 25% added to the baseline):
    "previous shipped recipe": SHIPPED_BEFORE,
    "full context (76 px in, 64 px loss)": dataclasses.replace(SHIPPED_BEFORE, full_context=True),
    "full context (64 px in, 52 px loss)": dataclasses.replace(SHIPPED_BEFORE, full_context=True, patch=52),
    "log(MSE) per patch, floor half a level": dataclasses.replace(SHIPPED_BEFORE, loss="log_mse_per_patch"),
    "log(MSE) per patch, floor 2 levels": dataclasses.replace(SHIPPED_BEFORE, loss="log_mse_per_patch",
                                                             patch_mse_floor=(2 / 255) ** 2),
    "log(MSE) per patch, floor 4 levels": dataclasses.replace(SHIPPED_BEFORE, loss="log_mse_per_patch",
                                                             patch_mse_floor=(4 / 255) ** 2),
    "batch 16, 2x the steps": dataclasses.replace(SHIPPED_BEFORE, batch_size=16),
    "batch 8, 4x the steps": dataclasses.replace(SHIPPED_BEFORE, batch_size=8),
    "batch 8, 4x the steps, log(MSE) per patch, floor 2 levels": dataclasses.replace(
        SHIPPED_BEFORE, batch_size=8, loss="log_mse_per_patch", patch_mse_floor=(2 / 255) ** 2),
    "batch 8, 4x the steps, log(MSE) per patch, floor 1 level": dataclasses.replace(
        SHIPPED_BEFORE, batch_size=8, loss="log_mse_per_patch", patch_mse_floor=(1 / 255) ** 2),
    # batch 8, 4x the steps, log(MSE) per patch, floor half a level: the "shipped recipe" of rounds three to six
    "recipe before the weight average": BEFORE_AVERAGE,
    "soft patches up to x2.5 only": dataclasses.replace(BEFORE_AVERAGE, soft_max_factor=2.5),
    "soft blur 0.5-1.25 px": dataclasses.replace(BEFORE_AVERAGE, soft_sigmas=(0.5, 1.25)),
    "textured patches (std 0.06)": dataclasses.replace(BEFORE_AVERAGE, min_patch_std=0.06),
    "batch 4, 8x the steps": dataclasses.replace(BEFORE_AVERAGE, batch_size=4),
    "x4 only": dataclasses.replace(BEFORE_AVERAGE, factors=(4.0,)),  # what one model shared by all factors costs x4
    "x3 only": dataclasses.replace(BEFORE_AVERAGE, factors=(3.0,)),
    "x2 only": dataclasses.replace(BEFORE_AVERAGE, factors=(2.0,)),
    "no soft patches": dataclasses.replace(BEFORE_AVERAGE, soft_fraction=0.0),  # what the soft case costs
    "log(MSE) per group": dataclasses.replace(BEFORE_AVERAGE, loss="log_mse_per_group"),
    "shipped recipe (weight average, EMA 0.999)": train.RECIPE,
    "loss on luma": dataclasses.replace(BEFORE_AVERAGE, luma_loss=True),
}
# Batches of fewer 64-px patches (16, 8 or 4) take 2, 4 or 8 times --steps, so as to see as many patches
STEP_SCALE = {name: PREVIOUS.batch_size // recipe.batch_size for name, recipe in VARIANTS.items()
              if recipe.patch == PREVIOUS.patch}


@torch.inference_mode()
def gains(model: sd.SuperResolutionNet, sigma: float | None = None, factors: tuple[str, ...] = data.EVAL_FACTORS
          ) -> dict[str, float]:
    """Mean Y-PSNR gain over bicubic (dB) on the validation photos per factor; blurred by `sigma` first if given."""
    photos = [data.load_photo_tensor(n) for n in data.VALIDATION_PHOTOS]
    if sigma is not None:
        photos = [data.gaussian_blur(p, sigma) for p in photos]
    result = {}
    for factor in map(sd.Factor.parse, factors):
        values = []
        for photo in photos:
            lr, hr = data.make_pair(photo, factor)
            baseline = evaluate.bicubic(lr, factor)  # the same baseline as evaluate.py's table
            values.append(data.psnr_y(hr, model(lr, factor.tensor()), factor) - data.psnr_y(hr, baseline, factor))
        result[factor.tag] = float(np.mean(values))
    return result


def study(names: list[str], steps: int, validate_every: int) -> list[str]:
    """Train each variant, measure it, write its history; return the table's rows."""
    OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in names:
        slug = re.sub(r"[^a-z0-9]+", "_", name.replace("%", "pct").lower()).strip("_")  # a safe file name
        scale = STEP_SCALE.get(name, 1)  # more steps, validated as often per patch seen
        result = train.train(steps=steps * scale, out=OUT / f"{slug}.pth", recipe=VARIANTS[name],
                             validate_every=validate_every * scale, progress=False,
                             max_soft_loss=math.inf)  # the study's tables were measured by the sharp gain alone
        model = load_model(OUT / f"{slug}.pth")
        sharp, soft = gains(model), gains(model, data.SOFT_SIGMA, ("2",))
        (OUT / f"{slug}.json").write_text(json.dumps({"recipe": name, "steps": steps * scale, "seconds": result.seconds,
                                                      "history": result.history, "detail": result.detail, "gains": sharp,
                                                      "soft_x2": soft["2"]}))
        rows.append(f"| {name} | {result.seconds:.0f} | {result.best_psnr - result.initial_psnr:+.3f} | "
                    + " | ".join(f"{v:+.2f}" for v in sharp.values()) + f" | {soft['2']:+.2f} |")
        log.info("%s", rows[-1])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = sd.OneLineErrorParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1200, metavar="N", help="steps per variant (default: %(default)s)")
    parser.add_argument("--validate-every", type=int, default=300, metavar="N", help="(default: %(default)s)")
    parser.add_argument("--variant", action="append", choices=list(VARIANTS), help="repeatable (default: all)")
    args = parser.parse_args(argv)
    for flag, value in (("--steps", args.steps), ("--validate-every", args.validate_every)):
        if value < 1:
            parser.error(f"{flag} {value}: must be at least 1")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    header = ("| recipe | seconds | validation gain | " + " | ".join(f"x{f}" for f in data.EVAL_FACTORS)
              + " | soft x2 |\n|" + "---|" * (4 + len(data.EVAL_FACTORS)))

    def work() -> int:
        rows = study(args.variant or list(VARIANTS), args.steps, args.validate_every)
        print(header, *rows, sep="\n")
        return sd.EXIT_OK

    return run_guarded(work)


if __name__ == "__main__":
    sys.exit(main())
