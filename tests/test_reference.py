"""The ONNX specification as a third judge: onnx.reference.ReferenceEvaluator, the spec's own implementation of each
operator in NumPy, runs every model's graph from both exporters and in each Resize form. It must agree with PyTorch,
ONNX Runtime and OpenVINO within PARITY_ATOL, except where ONNX Runtime departs from the spec (the case asserted last;
OpenVINO departs alike there, tests/test_openvino.py)."""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import onnx
import pytest
import torch
from conftest import MODEL_NAMES, runtime_skip_reason
from onnx.reference import ReferenceEvaluator

import srcnn_dynamic as sd
from srcnn import graph, pytorch, runtime

FACTORS = ["2.5", "3.7", "1.25x3", "5x6"]  # none seen at export (x3); the last two steer height and width apart
SHAPES = [(1, 3, 11, 9), (2, 3, 7, 13)]  # small: the reference runs its convolutions in plain NumPy


@pytest.fixture(scope="module")
def spec_for(onnx_path: Callable[..., object]) -> Callable[[str, str, str], ReferenceEvaluator]:
    """spec_for(name, exporter, resize): the reference evaluator of that graph, made once."""
    return functools.cache(lambda name, exporter, resize: ReferenceEvaluator(
        graph.rewritten(onnx.load(onnx_path(exporter, name)), resize)))


def run_spec(evaluator: ReferenceEvaluator, image: np.ndarray, factor: sd.Factor) -> np.ndarray:
    (out,) = evaluator.run(None, {sd.INPUT_NAMES[0]: image, sd.INPUT_NAMES[1]: runtime.factor_input(factor)})
    return out


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("factor_text", FACTORS)
@pytest.mark.parametrize("resize", graph.REWRITES)  # the graph as exported, and both rewrites of its Resize
@pytest.mark.parametrize("exporter", sd.EXPORTERS)
@pytest.mark.parametrize("model_name", MODEL_NAMES)
def test_the_spec_agrees_with_pytorch_and_the_runtimes(model_name, exporter, resize, factor_text, shape, spec_for,
                                                       model_on, session_for, runner_for) -> None:
    factor = sd.Factor.parse(factor_text)
    image = np.random.default_rng(7).random(shape, dtype=np.float32)
    spec = run_spec(spec_for(model_name, exporter, resize), image, factor)
    torch_out = pytorch.run_torch(model_on("cpu", model_name), torch.from_numpy(image), factor)
    ort_out = sd.run_session(session_for(exporter, "cpu", resize, model_name), image, factor)
    assert spec.shape == torch_out.shape == ort_out.shape, (spec.shape, torch_out.shape, ort_out.shape)
    judged = [("PyTorch", torch_out), ("ONNX Runtime", ort_out)]
    if runtime_skip_reason("openvino") is None:  # the product's path in OpenVINO
        judged.append(("OpenVINO", runner_for(exporter, "cpu", resize, model_name, "openvino")(image, factor)))
    for name, out in judged:
        diff = float(np.max(np.abs(spec - out)))
        assert diff <= sd.PARITY_ATOL, (f"{model_name}/{exporter}/{resize} x{factor.tag} {shape}: max |spec -"
                                        f" {name}| = {diff:.3e}")


@pytest.mark.parametrize("model_name", MODEL_NAMES)
def test_onnxruntime_departs_from_the_spec_where_the_size_does_not_change(model_name, spec_for, model_on,
                                                                           session_for) -> None:
    """The one documented departure (test_parity.py): at 3x3 x1.25, where floor(3 * 1.25) = 3, the spec and PyTorch
    resample the picture; ONNX Runtime's Resize returns it as it is. Its rewrites follow the spec."""
    factor = sd.Factor.parse("1.25")
    image = np.random.default_rng(8).random((1, 3, 3, 3), dtype=np.float32)
    assert runtime.resize_keeps_the_size(3, 3, factor)
    spec = run_spec(spec_for(model_name, "torchscript", "resize"), image, factor)
    torch_out = pytorch.run_torch(model_on("cpu", model_name), torch.from_numpy(image), factor)
    ort_out = sd.run_session(session_for("torchscript", "cpu", "resize", model_name), image, factor)
    with_spec, ort_off = float(np.max(np.abs(spec - torch_out))), float(np.max(np.abs(spec - ort_out)))
    assert with_spec <= sd.PARITY_ATOL, f"the spec follows PyTorch: {with_spec:.3e}"
    assert ort_off > 10 * sd.PARITY_ATOL, f"ONNX Runtime's Resize now follows the spec ({ort_off:.3e}): see test_parity"
    for form in ("matmul", "gather"):
        rewritten = sd.run_session(session_for("torchscript", "cpu", form, model_name), image, factor)
        diff = float(np.max(np.abs(spec - rewritten)))
        assert diff <= sd.PARITY_ATOL, f"the {form} rewrite in ONNX Runtime vs the spec: {diff:.3e}"
