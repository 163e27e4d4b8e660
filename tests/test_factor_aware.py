"""What the factor-aware model adds: its filters move with the factor, --save-onnx, and the registry's facts. Its
graph, parity and tiles are tested with the tutorial's model's (test_graph, test_parity and test_tiling run over
every model)."""

from __future__ import annotations

import math

import numpy as np
import onnxruntime as ort
import pytest
import torch
from conftest import run_cli, seeded_network

import srcnn_dynamic as sd
from srcnn import factor_aware, graph, models, pytorch, weights
from srcnn.core import SrcnnError


@pytest.fixture(scope="module")
def network() -> torch.nn.Module:
    """The factor-aware network, seeded: each anchor set initialised apart, so the factor moves its filters."""
    return seeded_network("factor-aware")


def test_the_factor_reaches_the_filters(network) -> None:
    """The same upsampled picture refined at two factors gives two results: the convolutions see the factor."""
    upsampled = torch.rand(1, 3, 20, 20, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        at_2 = network.refine(upsampled, sd.Factor(2.0, 2.0).tensor())
        at_4 = network.refine(upsampled, sd.Factor(4.0, 4.0).tensor())
    assert float((at_2 - at_4).abs().max()) > 1e-3


@pytest.mark.parametrize(("factor_text", "expected"), [
    ("1", [1, 0, 0, 0]), ("1.25", [1, 0, 0, 0]), ("2", [0, 1, 0, 0]), ("3", [0, 0, 1, 0]), ("4", [0, 0, 0, 1]),
    ("9", [0, 0, 0, 1]),  # beyond the anchors: the end's set alone
    ("2.5", [0, math.log(3 / 2.5) / math.log(1.5), math.log(2.5 / 2) / math.log(1.5), 0]),  # linear in log f
    ("2x3", [0, 0.5, 0.5, 0]),  # height and width each give half
])
def test_the_anchor_blend(factor_text, expected) -> None:
    assert factor_aware.ANCHORS == (1.25, 2.0, 3.0, 4.0), "the expected weights below are for these anchors"
    blend = factor_aware.anchor_blend(sd.Factor.parse(factor_text).tensor()).tolist()
    assert blend == pytest.approx(expected, abs=1e-6), f"x{factor_text}: {blend}"


def test_save_onnx_runs_in_plain_onnxruntime(tmp_path, network) -> None:
    """--model factor-aware --save-onnx: the fast graph, inputs exactly input and factor, equal to PyTorch."""
    torch.save(network.state_dict(), tmp_path / "fa.pth")
    done = run_cli("--model", "factor-aware", "--weights", "fa.pth", "--save-onnx", "fa.onnx", cwd=tmp_path,
                   cache=tmp_path / "cache")
    assert done.returncode == 0, done.stderr
    session = ort.InferenceSession(str(tmp_path / "fa.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == list(sd.INPUT_NAMES)
    image = np.random.default_rng(5).random((1, 3, 17, 19), dtype=np.float32)
    factor = sd.Factor.parse("3.7")
    out = session.run(None, {"input": image, "factor": np.array([1, 1, 3.7, 3.7], np.float32)})[0]
    diff = float(np.max(np.abs(out - pytorch.run_torch(network, image, factor))))
    assert diff <= sd.PARITY_ATOL, f"the saved graph differs from PyTorch by {diff:.3e}"


@pytest.mark.parametrize("name", models.MODELS)
def test_the_registry_states_each_models_facts(name) -> None:
    kind = models.model_kind(name)
    network = kind.build().eval()
    proto = sd.export_onnx(network, None)
    assert pytorch.model_halo(network) == graph.halo(proto) == kind.halo, "the halo, three ways"
    assert pytorch.is_conditioned(network) == graph.conditioned(proto) == kind.conditioned
    assert isinstance(network, sd.SuperResolutionNet) == kind.tutorial
    assert kind.weights_path.is_file(), f"{kind.weights} is shipped"
    loaded = weights.load_model(None, name)  # the shipped weights, through every check the commands make
    assert type(loaded) is type(network)


def test_an_unknown_model_is_refused_in_one_line(tmp_path) -> None:
    done = run_cli("--model", "esrgan", cwd=tmp_path)
    assert done.returncode == sd.EXIT_USAGE and "invalid choice: 'esrgan'" in done.stderr, done.stderr
    with pytest.raises(SrcnnError, match="expected one of"):
        models.model_kind("esrgan")
