"""A factor-aware SRCNN: the tutorial's network, whose hidden maps the factor scales and shifts channel by channel.

The tutorial's filters never see the factor, yet a soft photo shrunk by 2 looks like a sharp one shrunk by 3: one
set of filters must settle between sharpening and leaving alone (docs/training.md). Here a small network reads the
factor, height and width apart, and gives each of conv1's 64 and conv2's 32 maps a scale and a shift (FiLM, Perez
et al., AAAI 2018), so the same filters sharpen more at x4 and less at x1.5. The convolutions keep constant
weights (ONNX Runtime's fast convolutions need them); the factor reaches them through a Mul and an Add per layer.
Its last layer starts at zero: untrained, the network is the tutorial's exactly, and the tutorial's weights are
its starting point.

The exported graph keeps the tutorial's contract: inputs `input` and `factor`, one `Resize` scaled by `factor`; the
factor also feeds the conditioning, a few dozen operations on a 6-vector.
"""

from __future__ import annotations

import torch
import torch.nn as nn

import srcnn_dynamic as sd

CONDITION_FEATURES = 6  # 1/fh, 1/fw, 1/fh^2, 1/fw^2, log fh, log fw: smooth in the factor, 0 to 1 and beyond
CONDITION_HIDDEN = 32  # the conditioning network's width: 6 -> 32 -> 192 values, 7 K weights
MODULATED = (64, 32)  # the channels of conv1 and conv2, each given a scale and a shift


def factor_features(factor: torch.Tensor) -> torch.Tensor:
    """The factor [1, 1, fh, fw] as the conditioning reads it: (1, 6) = 1/fh, 1/fw, 1/fh^2, 1/fw^2, log fh, log fw."""
    scales = factor[2:].reshape(1, 2)  # (1, 2): fh, fw
    inverse = 1.0 / scales
    return torch.cat([inverse, inverse * inverse, torch.log(scales)], dim=1)


class FactorAwareNet(nn.Module):
    """SRCNN 9-1-5 after bicubic upsampling, conv1's and conv2's maps modulated by the factor; RGB in [0, 1]."""

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
        """The tutorial's bicubic Resize, the factor a tensor: (N, 3, H, W) -> (N, 3, H', W')."""
        return sd.NewInterpolate.apply(x, factor)

    def modulation(self, factor: torch.Tensor) -> list[torch.Tensor]:
        """[scale1, shift1, scale2, shift2] for the factor [1, 1, fh, fw]: (1, 64, 1, 1) twice, (1, 32, 1, 1) twice."""
        values = self.condition(factor_features(factor))  # (1, 192)
        sizes = [size for size in MODULATED for _ in range(2)]  # scale and shift of conv1, then of conv2
        return [v.reshape(1, -1, 1, 1) for v in torch.split(values, sizes, dim=1)]

    def refine(self, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
        """The three convolutions at the upsampled size, steered by the factor: (N, 3, H', W') -> (N, 3, H', W')."""
        scale1, shift1, scale2, shift2 = self.modulation(factor)
        x = self.relu(self.conv1(x) * (1.0 + scale1) + shift1)  # (N, 64, H', W')
        x = self.relu(self.conv2(x) * (1.0 + scale2) + shift2)  # (N, 32, H', W')
        return self.conv3(x)
