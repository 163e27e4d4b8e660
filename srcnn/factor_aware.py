"""A factor-aware SRCNN: the tutorial's network, whose filters the factor chooses.

The tutorial's filters never see the factor, yet a soft photo shrunk by 2 looks like a sharp one shrunk by 3: one
set of filters must settle between sharpening and leaving alone (docs/training.md). Here each of the three
convolutions holds one set of weights per anchor factor (x1.25, x2, x3 and x4), and at a factor f its weights are
the blend of the two anchors around f, linear in log f: at x2 the network is the x2 anchor's exactly, at x2.5 it is
nearly half x2's and half x3's. Height and width each give half of the blend, so 5x6 runs too. The anchors train
together, every batch moving the two around its factor, so neighbours agree where they meet (ArbSR, Wang et al.,
ICCV 2021, mixes scale-aware kernels the same way; here the mixture is fixed, not learnt, which measured better than
the learnt ones: docs/training.md).

The exported graph keeps the tutorial's contract: inputs `input` and `factor`, one `Resize` scaled by `factor`; the
factor also feeds a few dozen operations that blend each convolution's weights. With the factor a constant (the
product's runtime specialises the convolutions per factor, srcnn.runtime), ONNX Runtime folds them into constant
weights and runs the tutorial's fast convolutions at the tutorial's speed.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

import srcnn_dynamic as sd

ANCHORS = (1.25, 2.0, 3.0, 4.0)  # the trained range's ends and the factors between, one weight set each
LOG_ANCHORS = tuple(math.log(a) for a in ANCHORS)  # the blend is linear in log f: x2 is as far from x1 as x4 from x2


def anchor_blend(factor: torch.Tensor) -> torch.Tensor:
    """The anchors' weights at the factor [1, 1, fh, fw]: (K,), summing to 1. Per axis, 1 at an anchor, linear in log f
    between two (the end anchor's alone beyond the ends); height and width each give half."""
    log_f = torch.log(factor[2:]).reshape(2, 1)  # (2, 1): log fh, log fw
    lower, upper = torch.tensor(LOG_ANCHORS[:-1]), torch.tensor(LOG_ANCHORS[1:])  # (K - 1,): the intervals
    past = ((log_f - lower) / (upper - lower)).clamp(0.0, 1.0)  # (2, K - 1): 0 below an interval, 1 beyond it
    ones = torch.ones_like(log_f)
    rising, falling = torch.cat([ones, past], dim=1), torch.cat([1.0 - past, ones], dim=1)  # (2, K) each
    return (rising * falling).mean(dim=0)  # anchor k rises over the interval before it and falls over the one after


class BlendedConv2d(nn.Module):
    """A convolution whose weights and bias are the anchors' sets, blended by anchor_blend's weights; it states its
    channels and kernel as nn.Conv2d does."""

    def __init__(self, inputs: int, outputs: int, kernel: int) -> None:
        super().__init__()
        self.in_channels, self.out_channels = inputs, outputs
        self.kernel_size, self.padding = (kernel, kernel), kernel // 2
        anchors = [nn.Conv2d(inputs, outputs, kernel) for _ in ANCHORS]  # PyTorch's initialisation, one per anchor
        # (K * outputs, inputs, k, k): 4-D, so that training's channels_last layout applies to it
        self.weight = nn.Parameter(torch.cat([conv.weight.detach() for conv in anchors]))
        self.bias = nn.Parameter(torch.stack([conv.bias.detach() for conv in anchors]))  # (K, outputs)

    def forward(self, x: torch.Tensor, blend: torch.Tensor) -> torch.Tensor:
        sets = self.weight.reshape(len(ANCHORS), self.out_channels, *self.weight.shape[1:])  # (K, out, in, k, k)
        weight = (sets * blend.reshape(-1, 1, 1, 1, 1)).sum(dim=0)  # (out, in, k, k)
        bias = (self.bias * blend.reshape(-1, 1)).sum(dim=0)  # (out,)
        return nn.functional.conv2d(x, weight, bias, padding=self.padding)

    def load_tutorial(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        """Every anchor set made the tutorial's layer: the blend is then the tutorial's layer at every factor."""
        with torch.no_grad():
            self.weight.copy_(weight.repeat(len(ANCHORS), 1, 1, 1))
            self.bias.copy_(bias.expand_as(self.bias))

    def load_anchor(self, k: int, weight: torch.Tensor, bias: torch.Tensor) -> None:
        """Anchor k's set made a single-factor network's layer (weight (out, in, k, k), bias (out,))."""
        with torch.no_grad():
            self.weight[k * self.out_channels:(k + 1) * self.out_channels] = weight
            self.bias[k] = bias


class FactorAwareNet(nn.Module):
    """SRCNN 9-1-5 after bicubic upsampling, each convolution's weights blended by the factor; RGB in [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = BlendedConv2d(3, 64, kernel=9)  # the tutorial's layers, under its names and with its shapes
        self.conv2 = BlendedConv2d(64, 32, kernel=1)  # once blended
        self.conv3 = BlendedConv2d(32, 3, kernel=5)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
        return self.refine(self.upsample(x, factor), factor)

    def upsample(self, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
        """The tutorial's bicubic Resize, the factor a tensor: (N, 3, H, W) -> (N, 3, H', W')."""
        return sd.NewInterpolate.apply(x, factor)

    def refine(self, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
        """The three convolutions at the upsampled size, their weights the factor's: (N, 3, H', W') -> same."""
        blend = anchor_blend(factor)  # (K,)
        x = self.relu(self.conv1(x, blend))  # (N, 64, H', W')
        x = self.relu(self.conv2(x, blend))  # (N, 32, H', W')
        return self.conv3(x, blend)

    def start_from_tutorial(self, state: dict[str, torch.Tensor]) -> None:
        """The tutorial's trained network at every anchor (train.start_from_tutorial): training learns what each
        factor adds."""
        for name in ("conv1", "conv2", "conv3"):
            getattr(self, name).load_tutorial(state[f"{name}.weight"], state[f"{name}.bias"])

    def start_anchor_from(self, factor: float, state: dict[str, torch.Tensor]) -> None:
        """The anchor at `factor` made a teacher: the tutorial's network trained at that factor alone (train.py's
        teacher stage), so the blend there starts as the specialist and its neighbours start between the two."""
        if factor not in ANCHORS:
            raise ValueError(f"x{factor:g} is not an anchor: the anchors are {', '.join(f'x{a:g}' for a in ANCHORS)}")
        for name in ("conv1", "conv2", "conv3"):
            getattr(self, name).load_anchor(ANCHORS.index(factor), state[f"{name}.weight"], state[f"{name}.bias"])
