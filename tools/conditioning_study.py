"""Ways for the factor to reach the filters, and the levers of their training, each trained alike and measured.

    python tools/conditioning_study.py              # the three ways, 20,000 steps each (15 to 30 minutes each)
    python tools/conditioning_study.py --models film film-from-identity film-log-only --steps 5000

Anchor blend (factor-aware: srcnn.factor_aware.FactorAwareNet, the shipped model): each convolution's weights are
blended from one set per anchor factor, linear in log f. FiLM (FiLMNet, here): a small network of the factor scales
and shifts conv1's and conv2's maps. Mixture (FactorMixtureNet, here): conv2 is two experts whose outputs the factor
weighs (a softmax of a small network of the factor), which is one 1x1 kernel per factor, mixed: ArbSR's scale-aware
kernels in their cheapest form. Two levers of FiLM's training: film-from-identity starts from bicubic
(train.identity_init) instead of the tutorial's trained network, film-log-only reads log fh and log fw alone instead
of six features. Transfer from a teacher (ArbSR's knowledge from scale-specific networks, in its cheapest form):
with --teacher-steps N, the anchor blend's x2 set starts as the tutorial's network trained further at x2 alone for N
steps (train.train_teachers, what train.py does by default; the plain blend by default here). All train with
train.py's recipe for a factor-aware model (the teacher at x2 alone); the table gives each one's validation gain over
bicubic per factor, and on the soft case at x2. docs/training.md has the figures.

    python tools/conditioning_study.py --models factor-aware --teacher-steps 12000
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import srcnn_dynamic as sd  # noqa: E402
import train  # noqa: E402
from srcnn import models  # noqa: E402

EXPERTS = 2  # conv2 twice: +2,048 multiply-adds per output pixel, a tenth of the network's
EXPERT_NOISE = 0.01  # the experts start as the tutorial's conv2 plus this much noise: identical ones never part


CONDITION_FEATURES = 6  # 1/fh, 1/fw, 1/fh^2, 1/fw^2, log fh, log fw: smooth in the factor, 0 to 1 and beyond
CONDITION_HIDDEN = 32  # the conditioning network's width: 6 -> 32 -> 192 values, 7 K weights
MODULATED = (64, 32)  # the channels of conv1 and conv2, each given a scale and a shift


def factor_features(factor: torch.Tensor) -> torch.Tensor:
    """The factor [1, 1, fh, fw] as the conditioning reads it: (1, 6) = 1/fh, 1/fw, 1/fh^2, 1/fw^2, log fh, log fw."""
    scales = factor[2:].reshape(1, 2)  # (1, 2): fh, fw
    inverse = 1.0 / scales
    return torch.cat([inverse, inverse * inverse, torch.log(scales)], dim=1)


class FiLMNet(nn.Module):
    """SRCNN 9-1-5 whose conv1 and conv2 maps a small network of the factor scales and shifts (FiLM, Perez et al.,
    AAAI 2018): constant convolution weights, a Mul and an Add per modulated layer."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=9, padding=4)  # the tutorial's layers, under its names: its
        self.conv2 = nn.Conv2d(64, 32, kernel_size=1, padding=0)  # weights load into them as they are
        self.conv3 = nn.Conv2d(32, 3, kernel_size=5, padding=2)
        self.relu = nn.ReLU()
        self.condition = nn.Sequential(nn.Linear(CONDITION_FEATURES, CONDITION_HIDDEN), nn.ReLU(),
                                       nn.Linear(CONDITION_HIDDEN, 2 * sum(MODULATED)))
        nn.init.zeros_(self.condition[2].weight)  # scale 1 + 0, shift 0: the tutorial's network at the start
        nn.init.zeros_(self.condition[2].bias)

    def forward(self, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
        return self.refine(self.upsample(x, factor), factor)

    def upsample(self, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
        return sd.NewInterpolate.apply(x, factor)

    def modulation(self, factor: torch.Tensor) -> list[torch.Tensor]:
        """[scale1, shift1, scale2, shift2] for the factor [1, 1, fh, fw]: (1, 64, 1, 1) twice, (1, 32, 1, 1) twice."""
        values = self.condition(factor_features(factor))  # (1, 192)
        sizes = [size for size in MODULATED for _ in range(2)]  # scale and shift of conv1, then of conv2
        return [v.reshape(1, -1, 1, 1) for v in torch.split(values, sizes, dim=1)]

    def refine(self, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
        scale1, shift1, scale2, shift2 = self.modulation(factor)
        x = self.relu(self.conv1(x) * (1.0 + scale1) + shift1)  # (N, 64, H', W')
        x = self.relu(self.conv2(x) * (1.0 + scale2) + shift2)  # (N, 32, H', W')
        return self.conv3(x)


class FactorMixtureNet(nn.Module):
    """SRCNN whose conv2 is EXPERTS kernels mixed by weights the factor gives."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=9, padding=4)
        self.conv2 = nn.Conv2d(64, 32 * EXPERTS, kernel_size=1, padding=0)  # the experts, one after the other
        self.conv3 = nn.Conv2d(32, 3, kernel_size=5, padding=2)
        self.relu = nn.ReLU()
        self.gate = nn.Sequential(nn.Linear(6, CONDITION_HIDDEN), nn.ReLU(), nn.Linear(CONDITION_HIDDEN, EXPERTS))
        nn.init.zeros_(self.gate[2].weight)  # equal weights at the start
        nn.init.zeros_(self.gate[2].bias)

    def forward(self, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
        return self.refine(self.upsample(x, factor), factor)

    def upsample(self, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
        return sd.NewInterpolate.apply(x, factor)

    def refine(self, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(self.gate(factor_features(factor)), dim=1).reshape(1, EXPERTS, 1, 1, 1)
        x = self.relu(self.conv1(x))  # (N, 64, H', W')
        experts = self.conv2(x)  # (N, 32 * EXPERTS, H', W')
        mixed = (experts.reshape(x.shape[0], EXPERTS, 32, *x.shape[2:]) * weights).sum(dim=1)  # (N, 32, H', W')
        return self.conv3(self.relu(mixed))

    def start_from_tutorial(self, state: dict[str, torch.Tensor]) -> None:
        """The tutorial's weights (train.start_from_tutorial), conv2 copied into each expert with a little noise."""
        generator = torch.Generator().manual_seed(sd.SEED)
        with torch.no_grad():
            for name in ("conv1", "conv3"):
                getattr(self, name).weight.copy_(state[f"{name}.weight"])
                getattr(self, name).bias.copy_(state[f"{name}.bias"])
            for expert in range(EXPERTS):
                rows = slice(32 * expert, 32 * (expert + 1))
                noise = 1 + EXPERT_NOISE * torch.randn(state["conv2.weight"].shape, generator=generator)
                self.conv2.weight[rows] = state["conv2.weight"] * noise
                self.conv2.bias[rows] = state["conv2.bias"]


class FiLMFromIdentity(FiLMNet):
    """FiLM, starting from bicubic (the identity) rather than from the tutorial's trained network."""

    def start_from_tutorial(self, state: dict[str, torch.Tensor]) -> None:
        train.identity_init(self)


class FiLMLogOnly(FiLMNet):
    """FiLM whose conditioning reads log fh and log fw alone."""

    def __init__(self) -> None:
        super().__init__()
        self.condition[0] = nn.Linear(2, CONDITION_HIDDEN)

    def modulation(self, factor: torch.Tensor) -> list[torch.Tensor]:
        values = self.condition(torch.log(factor[2:].reshape(1, 2)))
        sizes = [size for size in MODULATED for _ in range(2)]
        return [v.reshape(1, -1, 1, 1) for v in torch.split(values, sizes, dim=1)]


STUDY_DIR = Path("outputs") / "conditioning_study"
STUDY_MODELS = {  # the variants this study adds to the registry: name -> (class, what it is)
    "film": ("FiLMNet", "conv1's and conv2's maps scaled and shifted by a small network of the factor"),
    "factor-mixture": ("FactorMixtureNet", "conv2 as two experts mixed by the factor"),
    "film-from-identity": ("FiLMFromIdentity", "FiLM trained from bicubic, not from the tutorial's network"),
    "film-log-only": ("FiLMLogOnly", "FiLM reading log f alone"),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=train.CONDITIONED_STEPS)
    parser.add_argument("--teacher-steps", type=int, default=0,
                        help="train the x2 teacher for the anchor blend first, N steps (default: 0, none)")
    parser.add_argument("--out", type=Path, default=STUDY_DIR)
    parser.add_argument("--models", nargs="+", default=["factor-aware", "film", "factor-mixture"],
                        help="(default: the three ways; train.py --model factor-aware trains the first alike)")
    args = parser.parse_args()
    for name, (cls, about) in STUDY_MODELS.items():  # models for this study alone: one registry entry each
        models.MODELS[name] = models.ModelKind(name, "__main__", cls, f"{args.out}/{name}.pth", halo=6,
                                               tutorial=False, conditioned=True, about=about)
    recipe = train.recipe_for(models.MODELS["factor-aware"])
    rows = []

    def add_row(name: str, result: train.TrainResult) -> None:
        best = next(d for d in result.detail if d["step"] == result.best_step)
        rows.append((name, result.best_step, {k: best[k] - v for k, v in result.bicubic.items()}))

    for name in args.models:
        out, teachers = args.out / f"{name}.pth", {}
        if args.teacher_steps and hasattr(models.MODELS[name].build(), "start_anchor_from"):
            for factor, result in train.train_teachers(steps=args.teacher_steps, out=out, recipe=recipe,
                                                       progress=False).items():
                add_row(f"x{factor:g} teacher for {name}", result)
                teachers[factor] = train.teacher_path(out, factor)
        add_row(name, train.train(steps=args.steps, out=out, recipe=recipe, model_name=name, teachers=teachers,
                                  progress=False))
    columns = max((gains for *_, gains in rows), key=len)  # the teacher validates at x2 alone
    header = ["model", "best step", *(f"gain {k}" for k in columns)]
    print(sd.render_table(header, [[name, str(step)] + [f"{gains[k]:+.2f} dB" if k in gains else "-" for k in columns]
                                   for name, step, gains in rows]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
