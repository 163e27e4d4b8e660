"""The product states the tutorial's facts again without torch (srcnn.core, srcnn.ort_runtime, srcnn.graph): each one
must equal the tutorial's, so that neither can drift from the other."""

from __future__ import annotations

import math

import cv2
import numpy as np
import onnx
import pytest
from hypothesis import given
from hypothesis import strategies as st

import srcnn_dynamic as sd
from srcnn import core, graph, images, ort_runtime

SHARED = ("RESIZE_MODE", "CUBIC_COEFF_A", "COORDINATE_TRANSFORMATION_MODE", "INPUT_NAMES", "OUTPUT_NAME", "EXPORTERS",
          "MIN_OPSET", "EXPORT_FACTOR", "DEFAULT_IMAGE", "DEFAULT_WEIGHTS", "DEFAULT_FACTORS", "MIN_FACTOR",
          "MAX_FACTOR", "MAX_INPUT_PIXELS", "MAX_OUTPUT_PIXELS", "MAX_OUTPUT_SIDE", "TIMING_RUNS", "PARITY_ATOL",
          "EXIT_OK", "EXIT_MISMATCH", "EXIT_USAGE", "EXIT_CRASH", "EXIT_INTERRUPTED")
SHARED_BY_ORT_RUNTIME = ("CUDA_ALLOW_TF32", "CUDA_PROVIDER", "CPU_PROVIDER", "GPU_INSTALL_HINT")


@pytest.mark.parametrize("name", SHARED)
def test_core_states_the_tutorials_constant(name) -> None:
    assert getattr(core, name) == getattr(sd, name), f"{name}: {getattr(core, name)!r}, tutorial {getattr(sd, name)!r}"


@pytest.mark.parametrize("name", SHARED_BY_ORT_RUNTIME)
def test_runtime_states_the_tutorials_constant(name) -> None:
    assert getattr(ort_runtime, name) == getattr(sd, name), f"{name}: {getattr(ort_runtime, name)!r} vs {getattr(sd, name)!r}"


def test_the_graph_checks_expect_the_tutorials_convolutions() -> None:
    model = sd.SuperResolutionNet()
    shapes = tuple(tuple(conv.weight.shape) for conv in (model.conv1, model.conv2, model.conv3))
    assert graph.CONV_WEIGHT_SHAPES == shapes, f"{graph.CONV_WEIGHT_SHAPES} vs the model's {shapes}"


@given(st.text(max_size=12))
def test_factors_parse_alike(text) -> None:
    outcomes = []
    for module in (core, sd):
        try:
            factor = module.Factor.parse(text)
            outcomes.append((factor.height, factor.width, factor.tag))
        except module.SrcnnError as exc:
            outcomes.append(str(exc))
    assert outcomes[0] == outcomes[1], f"{text!r}: core {outcomes[0]!r}, tutorial {outcomes[1]!r}"


@given(st.integers(1, 100_000), st.floats(1.0, 1e4, allow_nan=False) | st.sampled_from([1.3, 2.5, 3.0000001, 1e30]))
def test_output_sizes_round_alike(length, scale) -> None:
    """core computes float32 rounding without numpy (struct); the tutorial with np.float32."""
    assert core.resized_length(length, scale) == sd.resized_length(length, scale), f"{length} x {scale!r}"


def test_float32_rounding_overflows_to_infinity() -> None:
    rounded = core.float32(1e39), core.float32(-1e39), core.float32(0.1)
    assert rounded == (math.inf, -math.inf, float(np.float32(0.1))), rounded


@pytest.mark.parametrize("exporter", sd.EXPORTERS)
@pytest.mark.parametrize("opset", [None, 9, 11, 17, 18, 21])
def test_opsets_are_checked_alike(exporter, opset) -> None:
    outcomes = []
    for module in (core, sd):
        try:
            outcomes.append(module.check_opset(exporter, opset))
        except module.SrcnnError as exc:
            outcomes.append(str(exc))
    assert outcomes[0] == outcomes[1], f"{exporter} {opset}: {outcomes}"


@pytest.mark.parametrize("exporter", sd.EXPORTERS)
def test_graphs_are_judged_alike(onnx_path, exporter) -> None:
    exported = onnx.load(onnx_path(exporter))
    renamed = onnx.ModelProto()
    renamed.CopyFrom(exported)
    renamed.graph.input[1].name = "scale"
    for proto in (exported, renamed):
        assert graph.graph_problems(proto) == sd.graph_problems(proto), graph.graph_problems(proto)
    assert graph.graph_problems(renamed), "a graph without a `factor` input must be refused"


@pytest.mark.parametrize(("size", "factor"), [((256, 256), "20"), ((100, 100), "2"), ((1, 4096), "1x2048")])
def test_output_sizes_are_refused_alike(size, factor) -> None:
    """The product's check at the tutorial's limit, with the tutorial's advice, says what the tutorial says."""
    outcomes = []
    for check in (lambda: core.check_output_size(size, core.Factor.parse(factor), core.MAX_OUTPUT_PIXELS,
                                                 "; use a smaller factor or image, or python -m srcnn"),
                  lambda: sd.check_output_size(size, sd.Factor.parse(factor))):
        try:
            check()
            outcomes.append(None)
        except (core.SrcnnError, sd.SrcnnError) as exc:
            outcomes.append(str(exc))
    assert outcomes[0] == outcomes[1], outcomes


def test_the_products_output_limit_is_its_own() -> None:
    with pytest.raises(core.SrcnnError, match="turns 20x2000 into 180x18000, over the limit of 1,000,000 output"):
        core.check_output_size((20, 2000), core.Factor.parse("9"), 10**6)


def test_output_folders_are_refused_alike(tmp_path) -> None:
    (tmp_path / "file").write_text("a file")
    for folder in (tmp_path / "new" / "deeper", tmp_path / "file" / "out", tmp_path):
        outcomes = []
        for make in (core.make_output_dir, lambda folder: sd.check_outputs([folder / "result.png"], [])):
            try:
                outcomes.append(make(folder))
            except (core.SrcnnError, sd.SrcnnError) as exc:
                outcomes.append(str(exc))
        assert outcomes[0] == outcomes[1], f"{folder}: {outcomes}"


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_pixels_convert_alike(dtype) -> None:
    pixels = np.random.default_rng(0).integers(0, np.iinfo(dtype).max, (5, 7, 3), dtype=dtype)
    product, tutorial = images.to_model_input(pixels), sd.pixels_to_tensor(pixels).numpy()
    assert np.array_equal(product, tutorial), "to the model's float input"
    values = np.random.default_rng(1).normal(0.5, 0.4, (1, 3, 5, 7)).astype(np.float32)  # outside [0, 1] too
    assert np.array_equal(images.to_pixels(values, dtype), sd.tensor_to_pixels(values, dtype)), "back to pixels"


def test_images_decode_alike() -> None:
    flags = cv2.IMREAD_COLOR
    assert np.array_equal(images.decode_image(sd.DEFAULT_IMAGE, flags), sd.decode_image(sd.DEFAULT_IMAGE, flags))


@pytest.mark.parametrize("exporter", sd.EXPORTERS)
def test_the_graphs_halo_is_the_models(onnx_path, exporter) -> None:
    from srcnn import pytorch

    read, counted = graph.halo(onnx.load(onnx_path(exporter))), pytorch.model_halo(sd.SuperResolutionNet())
    assert read == counted == 6, f"the graph's kernel radii give {read}, the model's {counted}"
