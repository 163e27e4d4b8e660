"""Executable documentation: why the tutorial needs NewInterpolate, and why today's PyTorch needs a custom op.

Each test asserts what the installed torch does (measured on torch 2.13). If a future release changes one of
these behaviours, the test fails and the README's account of the failure modes must be updated with it.
"""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import srcnn_dynamic as sd

IMAGE = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))


class IntFactorNet(nn.Module):
    """The tutorial's first try: the factor as a plain Python number."""

    def forward(self, x: torch.Tensor, factor: int) -> torch.Tensor:
        return F.interpolate(x, scale_factor=factor, mode="bicubic", align_corners=False)


class ItemFactorNet(nn.Module):
    """The tutorial's second try: the factor as a tensor, read back with .item()."""

    def forward(self, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=factor.item(), mode="bicubic", align_corners=False)


class TutorialInterpolate(torch.autograd.Function):
    """The tutorial's NewInterpolate verbatim: symbolic for the TorchScript exporter, tolist() in forward."""

    @staticmethod
    def symbolic(g, x, scales):  # noqa: ANN001, ANN205
        empty = g.op("Constant", value_t=torch.tensor([], dtype=torch.float32))
        return g.op("Resize", x, empty, scales, coordinate_transformation_mode_s="pytorch_half_pixel",
                    cubic_coeff_a_f=-0.75, mode_s="cubic", nearest_mode_s="floor")

    @staticmethod
    def forward(ctx, x, scales):  # noqa: ANN001, ANN205
        return F.interpolate(x, scale_factor=scales.tolist()[-2:], mode="bicubic", align_corners=False)


class TutorialNet(nn.Module):
    def forward(self, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
        return TutorialInterpolate.apply(x, factor)


def export(model: nn.Module, args: tuple, path, *, dynamo: bool) -> onnx.ModelProto:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporters' deprecation and tracer warnings are not under test
        torch.onnx.export(model, args, path, dynamo=dynamo, opset_version=18 if dynamo else 11,
                          input_names=["input", "factor"], output_names=["output"], verbose=False)
    return onnx.load(path)


def resize_scales(proto: onnx.ModelProto) -> np.ndarray:
    """The constant the Resize node uses as scales (from an initializer or a Constant node)."""
    (resize,) = [n for n in proto.graph.node if n.op_type == "Resize"]
    name = resize.input[2]
    for init in proto.graph.initializer:
        if init.name == name:
            return onnx.numpy_helper.to_array(init)
    for node in proto.graph.node:
        if node.op_type == "Constant" and name in node.output:
            return onnx.numpy_helper.to_array(node.attribute[0].t)
    raise AssertionError(f"Resize scales {name!r} is not a constant")


def test_torchscript_with_python_int_factor_fails(tmp_path) -> None:
    with pytest.raises(TypeError, match="upsample_bicubic2d") as info:
        export(IntFactorNet(), (IMAGE, 3), tmp_path / "int.onnx", dynamo=False)
    assert "invalid combination of arguments" in str(info.value), f"unexpected TypeError: {info.value}"


def test_torchscript_with_item_bakes_the_factor_in(tmp_path) -> None:
    proto = export(ItemFactorNet(), (IMAGE, torch.tensor(3.0)), tmp_path / "item.onnx", dynamo=False)
    inputs = [i.name for i in proto.graph.input]
    assert inputs == ["input"], f"the factor input should have vanished, inputs are {inputs}"
    scales = resize_scales(proto)
    # The scale is a constant, so asking for x4 is impossible: the graph has no factor to feed and returns x3.
    session = ort.InferenceSession(str(tmp_path / "item.onnx"), providers=[sd.CPU_PROVIDER])
    out = session.run(None, {"input": IMAGE.numpy()})[0]
    assert out.shape[2:] == (48, 48), f"baked-in x3 expected, got {out.shape} (scales {scales})"


def test_dynamo_with_python_int_bakes_the_factor_in(tmp_path) -> None:
    proto = export(IntFactorNet(), (IMAGE, 3), tmp_path / "int.onnx", dynamo=True)
    inputs = [i.name for i in proto.graph.input]
    assert inputs == ["input"], f"torch.export specialises Python ints: inputs are {inputs}"
    np.testing.assert_array_equal(resize_scales(proto), [1, 1, 3, 3], err_msg="the x3 scale should be a constant")


def test_dynamo_with_item_fails(tmp_path) -> None:
    with pytest.raises(torch.onnx.OnnxExporterError, match="scale_factors"):
        export(ItemFactorNet(), (IMAGE, torch.tensor(3.0)), tmp_path / "item.onnx", dynamo=True)


def test_tutorial_new_interpolate_works_with_torchscript_exporter(tmp_path) -> None:
    proto = export(TutorialNet(), (IMAGE, torch.tensor([1, 1, 3, 3.0])), tmp_path / "tut.onnx", dynamo=False)
    assert [i.name for i in proto.graph.input] == ["input", "factor"], "symbolic keeps factor a graph input"


def test_tutorial_new_interpolate_fails_with_default_exporter(tmp_path) -> None:
    """torch.onnx.export's default is dynamo=True since 2.9: symbolic is ignored and forward is traced."""
    with pytest.raises(torch.onnx.OnnxExporterError, match="SymFloat"):
        export(TutorialNet(), (IMAGE, torch.tensor([1, 1, 3, 3.0])), tmp_path / "tut.onnx", dynamo=True)
