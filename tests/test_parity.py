"""ONNX Runtime equals PyTorch at factors and sizes never seen at export (export: x3, 1x3x64x64)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import DEVICES, MODEL_NAMES

import srcnn_dynamic as sd
from srcnn import graph, pytorch, runtime

# 3 was seen at export; the rest were not; 5x6 is the seed's [1, 1, 5, 6], the factor-aware model's axes steered apart
FACTORS = ["3", "4", "2", "2.5", "1.25", "3.7", "5x6"]
SHAPES = [(1, 3, 64, 64), (2, 3, 37, 53)]  # the export shape, and a batch of odd, non-square images


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("factor_text", FACTORS)
@pytest.mark.parametrize("resize", graph.REWRITES)  # the graph as exported, and both rewrites of its Resize
@pytest.mark.parametrize("exporter", sd.EXPORTERS)
@pytest.mark.parametrize("model_name", MODEL_NAMES)
def test_onnxruntime_matches_pytorch(model_name, exporter, resize, factor_text, shape, device, model_on,
                                     session_for) -> None:
    factor = sd.Factor.parse(factor_text)
    image = torch.rand(shape, generator=torch.Generator().manual_seed(1))

    expected = pytorch.run_torch(model_on(device, model_name), image, factor)
    actual = sd.run_session(session_for(exporter, device, resize, model_name), image.numpy(), factor)

    n, _, h, w = shape
    want = (n, 3, *factor.output_size(h, w))
    assert expected.shape == want, f"PyTorch gave {expected.shape}, expected floor(H*fh), floor(W*fw) = {want}"
    assert actual.shape == want, f"ONNX Runtime gave {actual.shape}, expected {want}"
    diff = float(np.max(np.abs(expected - actual)))
    assert diff <= sd.PARITY_ATOL, (
        f"{model_name} x{factor.tag} {shape} on {device}, ORT resize={resize}: max |ORT - PyTorch| = {diff:.3e} >"
        f" {sd.PARITY_ATOL}"
    )


def test_output_size_floors_non_integer_products() -> None:
    # 37 * 2.5 = 92.5 and 53 * 2.5 = 132.5: both runtimes floor, as ONNX Resize and F.interpolate specify
    assert sd.Factor.parse("2.5").output_size(37, 53) == (92, 132)
    assert sd.Factor.parse("5x6").output_size(37, 53) == (185, 318)


# Sizes where floor(H * f) in float64 (F.interpolate) and in float32 (ONNX Runtime) differ by one pixel.
ROUNDING_CASES = [("1.3", 10, 13), ("1.01", 100, 101), ("1.02", 50, 51)]


@pytest.mark.parametrize("resize", graph.REWRITES)
@pytest.mark.parametrize(("factor_text", "size", "expected"), ROUNDING_CASES)
def test_output_size_follows_onnxruntime_rounding(factor_text, size, expected, resize, model, session_for) -> None:
    factor = sd.Factor.parse(factor_text)
    image = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(3))
    scale = float(factor.tensor()[2])  # the float32 value the model receives, e.g. 1.2999999523
    plain = torch.nn.functional.interpolate(image, scale_factor=scale, mode="bicubic", align_corners=False)
    assert plain.shape[2] == expected - 1, f"F.interpolate rounds {size} x {scale!r} in float64: {plain.shape}"

    expected_out = pytorch.run_torch(model, image, factor)
    actual = sd.run_session(session_for("torchscript", "cpu", resize), image.numpy(), factor)
    assert actual.shape[2:] == (expected, expected), f"ONNX Runtime (resize={resize}) gave {actual.shape}"
    assert expected_out.shape == actual.shape, f"PyTorch {expected_out.shape} vs ONNX Runtime {actual.shape}"
    diff = float(np.max(np.abs(expected_out - actual)))
    assert diff <= sd.PARITY_ATOL, f"x{factor_text} on {size}px: max |ORT - PyTorch| = {diff:.3e}"


def test_parity_check_can_fail(model, session_for) -> None:
    """The comparison would catch a wrong model: a re-initialised network differs far beyond the tolerance."""
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    factor = sd.Factor.parse("3")
    other = sd.SuperResolutionNet().eval()  # different random weights from those exported
    diff = float(np.max(np.abs(pytorch.run_torch(other, image, factor) - sd.run_session(session_for("torchscript", "cpu"), image.numpy(), factor))))
    assert diff > 100 * sd.PARITY_ATOL, f"a different model should not match: max diff {diff:.3e}"


# (height, width, factor): a factor other than 1x1 under which floor(L * f) == L on both axes
KEPT_SIZE_CASES = [(3, 3, "1.25x1"), (4, 4, "1.1"), (2, 1, "1.25x1.5"), (9, 9, "1.1")]


@pytest.mark.parametrize(("height", "width", "factor_text"), KEPT_SIZE_CASES)
def test_onnxruntime_resize_copies_when_the_size_does_not_change(height, width, factor_text, model, session_for) -> None:
    """ONNX Runtime 1.32's Resize returns its input unchanged when the output size equals the input size.

    The ONNX spec (and PyTorch) sample at (x + 0.5) / scale - 0.5 whatever the sizes, so a 3x3 image at x1.25
    is still resampled. It needs f < 1 + 1/L on both axes: tiny images or factors near 1. The exported graph then
    differs from PyTorch, and the rewrites (the default sessions) do not. If this test fails, ONNX
    Runtime has changed: drop the exception in test_properties.py and the warning in srcnn.cli.upscale().
    """
    factor = sd.Factor.parse(factor_text)
    assert runtime.resize_keeps_the_size(height, width, factor), "the case must keep the size"
    image = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(5))
    expected = pytorch.run_torch(model, image, factor)
    as_onnxruntime_does = pytorch.run_torch(model, image, sd.Factor(1.0, 1.0))  # no resampling at all
    exported = sd.run_session(session_for("torchscript", "cpu", "resize"), image.numpy(), factor)
    rewritten = [sd.run_session(session_for("torchscript", "cpu", form), image.numpy(), factor)
                 for form in ("matmul", "gather")]
    copied = float(np.max(np.abs(exported - as_onnxruntime_does)))
    assert copied <= sd.PARITY_ATOL, f"ONNX Runtime's Resize no longer copies its input ({copied:.3e})"
    followed = float(np.max(np.abs(exported - expected)))
    assert followed > 10 * sd.PARITY_ATOL, f"ONNX Runtime's Resize now follows the factor ({followed:.3e})"
    for form, out in zip(("matmul", "gather"), rewritten, strict=True):
        diff = float(np.max(np.abs(out - expected)))
        assert diff <= sd.PARITY_ATOL, f"{form} rewrite: max |ORT - PyTorch| = {diff:.3e}"
