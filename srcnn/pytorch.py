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
from srcnn.models import MODELS, TUTORIAL_MODEL
from srcnn.tiling import refine_in_tiles
from srcnn.weights import load_model

log = logging.getLogger("srcnn")


def tutorial_factor(factor: Factor | sd.Factor) -> sd.Factor:
    """The tutorial's Factor for the product's: the same height and width, with its torch tensor."""
    return sd.Factor(factor.height, factor.width)


def model_halo(model: torch.nn.Module) -> int:
    """How far an output pixel of refine() sees: the sum of the kernel radii (4 + 0 + 2 = 6 pixels)."""
    return sum(conv.kernel_size[0] // 2 for conv in (model.conv1, model.conv2, model.conv3))


def export(weights: Path | None, exporter: sd.Exporter = "torchscript", opset: int | None = None,
           model_name: str = TUTORIAL_MODEL) -> onnx.ModelProto:
    """A model (srcnn.models) with `weights` (None: its shipped ones), exported as the tutorial exports its own,
    checked."""
    model = load_model(weights, model_name)
    chatter = io.StringIO()  # the dynamo exporter prints its steps on stdout, which holds the run's report alone
    with contextlib.redirect_stdout(chatter):
        proto = sd.export_onnx(model, None, exporter=exporter, opset=opset)  # kept in memory: the cache stores it
    if chatter.getvalue():
        log.debug("the exporter said:\n%s", chatter.getvalue().rstrip())
    return proto


def refine(model: torch.nn.Module, upsampled: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """The model's convolutions on an upsampled image; a model whose convolutions see the factor is given it."""
    return model.refine(upsampled, factor) if is_conditioned(model) else model.refine(upsampled)


def is_conditioned(model: torch.nn.Module) -> bool:
    """Whether the model's refine() takes the factor (srcnn.models.ModelKind.conditioned, read from the instance)."""
    return any(kind.conditioned and type(model).__name__ == kind.cls for kind in MODELS.values())


def run_torch(model: torch.nn.Module, image: torch.Tensor | np.ndarray, factor: Factor | sd.Factor,
              tile: int | None = None) -> np.ndarray:
    """sd.run_torch, or with `tile` the convolutions tile by tile (refine_in_tiles): the same pixels, less memory."""
    image = torch.from_numpy(image) if isinstance(image, np.ndarray) else image
    factor = tutorial_factor(factor)
    if tile is None:
        return sd.run_torch(model, image, factor)
    device = model.conv1.weight.device
    with torch.inference_mode(), torch.backends.cudnn.flags(enabled=True, allow_tf32=sd.CUDA_ALLOW_TF32):
        upsampled = model.upsample(image.to(device), factor.tensor(device))  # (N, 3, H', W'): 3 channels, small
        factor_tensor = factor.tensor(device)
        out = refine_in_tiles(lambda crop: refine(model, crop, factor_tensor), upsampled, torch.empty_like(upsampled),
                              tile, model_halo(model))
    return out.cpu().numpy()
