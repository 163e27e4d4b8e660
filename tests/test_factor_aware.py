"""The factor-aware model deployed as the tutorial's is: the graph's contract, ONNX Runtime equal to PyTorch at
factors and shapes never seen at export, tiles, the Resize rewrites, --save-onnx, and the registry's facts."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from conftest import DEVICES, run_cli

import srcnn_dynamic as sd
from srcnn import graph, models, pytorch, runtime, tiling, weights
from srcnn.core import SrcnnError

FACTORS = ["1.25", "2.5", "3.7", "5x6"]  # none seen at export (x3); 5x6: height and width steered apart
SHAPES = [(1, 3, 23, 31), (2, 3, 37, 53)]  # odd sizes, and a batch of two


@pytest.fixture(scope="module")
def network() -> torch.nn.Module:
    """The factor-aware network, seeded, with a conditioning far from zero: the factor must move its filters in
    both runtimes alike (untrained, its last layer is zero and the network is the tutorial's)."""
    torch.manual_seed(sd.SEED)
    model = models.MODELS["factor-aware"].build()
    with torch.no_grad():
        for parameter in model.condition.parameters():
            parameter.normal_(0.0, 0.2)
    return model.eval()


@pytest.fixture(scope="module")
def exported(network: torch.nn.Module) -> Callable[[str], onnx.ModelProto]:
    """exported(exporter): the network exported once with that exporter (traced at x3 on 64x64)."""
    return functools.cache(lambda exporter: sd.export_onnx(network, None, exporter=exporter))


@pytest.mark.parametrize("exporter", sd.EXPORTERS)
def test_the_graph_keeps_the_tutorials_contract(exporter, exported) -> None:
    proto = exported(exporter)
    onnx.checker.check_model(proto, full_check=True)
    assert [i.name for i in proto.graph.input] == list(sd.INPUT_NAMES), "inputs: exactly input and factor"
    assert graph.graph_problems(proto) == [], graph.graph_problems(proto)  # one Resize, scaled by `factor`
    readers = [n.op_type for n in proto.graph.node if sd.INPUT_NAMES[1] in n.input and n.op_type != "Resize"]
    assert graph.conditioned(proto) and readers, "the factor must feed the conditioning as well as the Resize"
    _, refine_part = graph.split_before_convs(proto)
    assert [i.name for i in refine_part.graph.input][1:] == [sd.INPUT_NAMES[1]], "the convolutions take the factor"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("factor_text", FACTORS)
@pytest.mark.parametrize("resize", graph.REWRITES)  # the graph as exported, and both rewrites of its Resize
@pytest.mark.parametrize("exporter", sd.EXPORTERS)
def test_onnxruntime_matches_pytorch(exporter, resize, factor_text, shape, device, network, exported) -> None:
    factor = sd.Factor.parse(factor_text)
    image = torch.rand(shape, generator=torch.Generator().manual_seed(1))
    expected = pytorch.run_torch(copy.deepcopy(network).to(device), image, factor)
    actual = sd.run_session(graph.form_session(exported(exporter), device, resize=resize), image.numpy(), factor)
    assert actual.shape == expected.shape == (shape[0], 3, *factor.output_size(*shape[2:])), actual.shape
    diff = float(np.max(np.abs(expected - actual)))
    assert diff <= sd.PARITY_ATOL, f"x{factor.tag} {shape} on {device}, {resize}: max |ORT - PyTorch| = {diff:.3e}"


@pytest.mark.parametrize("factor_text", FACTORS)
@pytest.mark.parametrize("exporter", sd.EXPORTERS)
def test_tiled_equals_untiled_in_both_runtimes(exporter, factor_text, network, exported) -> None:
    """Each tile's convolutions get the factor too: tiles of 16 pixels give the untiled result."""
    factor = sd.Factor.parse(factor_text)
    image = np.random.default_rng(2).random((1, 3, 29, 23), dtype=np.float32)
    runner = runtime.OrtRunner(graph.graph_parts(exported(exporter)), progress=False)
    whole, tiled = runner(image, factor), runner(image, factor, tile=16)
    diff = float(np.max(np.abs(whole - tiled)))
    assert diff <= tiling.TILE_ATOL, f"ONNX Runtime x{factor.tag}: max |tiled - untiled| = {diff:.3e}"
    torch_diff = float(np.max(np.abs(pytorch.run_torch(network, image, factor, tile=16) - whole)))
    assert torch_diff <= sd.PARITY_ATOL, f"PyTorch tiled vs ONNX Runtime x{factor.tag}: {torch_diff:.3e}"


def test_the_factor_reaches_the_filters(network) -> None:
    """The same upsampled picture refined at two factors gives two results: the convolutions see the factor."""
    upsampled = torch.rand(1, 3, 20, 20, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        at_2 = network.refine(upsampled, sd.Factor(2.0, 2.0).tensor())
        at_4 = network.refine(upsampled, sd.Factor(4.0, 4.0).tensor())
    assert float((at_2 - at_4).abs().max()) > 1e-3


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
