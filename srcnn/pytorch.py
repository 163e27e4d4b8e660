"""The product's PyTorch side: exporting the tutorial's model once, and the reference runs of --check and tests.

Only a run that must export (nothing cached yet), `--check`, training, evaluation and benchmarks import this
module, and with it torch and the tutorial (srcnn_dynamic.py).
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path

import numpy as np
import onnx
import torch

import srcnn_dynamic as sd
from srcnn.core import Factor
from srcnn.tiling import refine_in_tiles
from srcnn.weights import load_model

log = logging.getLogger("srcnn")


def tutorial_factor(factor: Factor | sd.Factor) -> sd.Factor:
    """The tutorial's Factor for the product's: the same height and width, with its torch tensor."""
    return sd.Factor(factor.height, factor.width)


def model_halo(model: sd.SuperResolutionNet) -> int:
    """How far an output pixel of refine() sees: the sum of the kernel radii (4 + 0 + 2 = 6 pixels)."""
    return sum(conv.kernel_size[0] // 2 for conv in (model.conv1, model.conv2, model.conv3))


def export(weights: Path | None, exporter: sd.Exporter = "torchscript", opset: int | None = None) -> onnx.ModelProto:
    """The tutorial's model with `weights` (None: the shipped ones), exported as the tutorial exports it, checked."""
    model = load_model(weights)
    chatter = io.StringIO()  # the dynamo exporter prints its steps on stdout, which holds the run's report alone
    with contextlib.redirect_stdout(chatter):
        proto = sd.export_onnx(model, None, exporter=exporter, opset=opset)  # kept in memory: the cache stores it
    if chatter.getvalue():
        log.debug("the exporter said:\n%s", chatter.getvalue().rstrip())
    return proto


def run_torch(model: sd.SuperResolutionNet, image: torch.Tensor | np.ndarray, factor: Factor | sd.Factor,
              tile: int | None = None) -> np.ndarray:
    """sd.run_torch, or with `tile` the convolutions tile by tile (refine_in_tiles): the same pixels, less memory."""
    image = torch.from_numpy(image) if isinstance(image, np.ndarray) else image
    factor = tutorial_factor(factor)
    if tile is None:
        return sd.run_torch(model, image, factor)
    device = model.conv1.weight.device
    with torch.inference_mode(), torch.backends.cudnn.flags(enabled=True, allow_tf32=sd.CUDA_ALLOW_TF32):
        upsampled = model.upsample(image.to(device), factor.tensor(device))  # (N, 3, H', W'): 3 channels, small
        out = refine_in_tiles(model.refine, upsampled, torch.empty_like(upsampled), tile, model_halo(model))
    return out.cpu().numpy()
