"""Both exporters produce the tutorial's graph for every model: inputs (input, factor), one Resize fed by factor, one
output; a conditioned model's factor feeds its convolutions too."""

from __future__ import annotations

import onnx
import pytest
from conftest import MODEL_NAMES

import srcnn_dynamic as sd
from srcnn import core, graph, rewrite, runtime

EXPECTED_ATTRIBUTES = {
    "mode": sd.RESIZE_MODE,
    "coordinate_transformation_mode": sd.COORDINATE_TRANSFORMATION_MODE,
    "cubic_coeff_a": sd.CUBIC_COEFF_A,
    "nearest_mode": sd.NEAREST_MODE,
}


def dims(value_info: onnx.ValueInfoProto) -> list[str | int]:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


@pytest.fixture(params=[(name, exporter) for name in MODEL_NAMES for exporter in sd.EXPORTERS], ids="/".join)
def exported(request, onnx_path) -> tuple[str, onnx.ModelProto]:
    """(exporter, graph) of each model (seeded) by each exporter."""
    name, exporter = request.param
    return exporter, onnx.load(onnx_path(exporter, name))


def test_model_is_valid(exported) -> None:
    exporter, proto = exported
    onnx.checker.check_model(proto, full_check=True)
    opset = {o.domain: o.version for o in proto.opset_import}[""]
    assert opset == sd.MIN_OPSET[exporter], f"{exporter}: default opset is {opset}, expected {sd.MIN_OPSET[exporter]}"


def test_inputs_and_output(exported) -> None:
    exporter, proto = exported
    inputs = {i.name: i for i in proto.graph.input}
    assert list(inputs) == ["input", "factor"], f"{exporter}: graph inputs are {list(inputs)}"
    image_dims = dims(inputs["input"])
    assert image_dims[1] == 3, f"{exporter}: input channels {image_dims}"
    for axis in (0, 2, 3):
        assert isinstance(image_dims[axis], str), f"{exporter}: input axis {axis} is fixed: {image_dims}"
    assert dims(inputs["factor"]) == [4], f"{exporter}: factor shape is {dims(inputs['factor'])}, expected [4]"
    assert inputs["factor"].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    outputs = [o.name for o in proto.graph.output]
    assert outputs == ["output"], f"{exporter}: graph outputs are {outputs}"
    out_dims = dims(proto.graph.output[0])
    assert out_dims[1] == 3 and all(isinstance(d, str) for d in out_dims[2:]), f"{exporter}: output dims {out_dims}"


def test_one_resize_fed_by_factor(exported) -> None:
    exporter, proto = exported
    ops = [n.op_type for n in proto.graph.node if n.op_type != "Constant"]
    if graph.conditioned(proto):  # the factor also feeds the conditioning, and the convolutions take it
        chain = [op for op in ops if op in ("Resize", "Conv")]
        assert chain == ["Resize", "Conv", "Conv", "Conv"], f"{exporter}: the chain is {chain}"
        readers = [n.op_type for n in proto.graph.node if "factor" in n.input and n.op_type != "Resize"]
        assert readers, f"{exporter}: the factor feeds the Resize alone: {ops}"
        _, refine_part = graph.split_before_convs(proto)
        assert [i.name for i in refine_part.graph.input][1:] == ["factor"], "the convolutions' part takes the factor"
    else:
        assert ops == ["Resize", "Conv", "Relu", "Conv", "Relu", "Conv"], f"{exporter}: ops are {ops}"
    (resize,) = [n for n in proto.graph.node if n.op_type == "Resize"]
    assert resize.input[0] == "input", f"{exporter}: Resize reads {resize.input[0]!r}"
    assert resize.input[2] == "factor", f"{exporter}: Resize scales come from {resize.input[2]!r}, not the graph input"
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in resize.attribute}
    for name, want in EXPECTED_ATTRIBUTES.items():
        got = attributes.get(name)
        got = got.decode() if isinstance(got, bytes) else got
        assert got == pytest.approx(want) if isinstance(want, float) else got == want, (
            f"{exporter}: Resize {name} = {got!r}, expected {want!r}"
        )
    initializer_names = {i.name for i in proto.graph.initializer}
    assert "factor" not in initializer_names, f"{exporter}: factor must not be baked into the file"


def test_checker_rejects_a_constant_scale(exported) -> None:
    """graph_problems() names it when the Resize scales no longer come from the factor input."""
    _, proto = exported
    (resize,) = [n for n in proto.graph.node if n.op_type == "Resize"]
    resize.input[2] = "constant_scales"
    problems = sd.graph_problems(proto)
    assert problems == ["expected one Resize whose scales input is 'factor'"], problems


def test_matmul_rewrite_replaces_only_the_resize(exported) -> None:
    """resize_as_matmul: no Resize left, two MatMuls fed by the image, the convolutions and I/O untouched."""
    exporter, proto = exported
    fast = rewrite.resize_as_matmul(proto)
    ops = [n.op_type for n in fast.graph.node]
    assert "Resize" not in ops, f"{exporter}: a Resize is left after the rewrite"
    assert ops.count("MatMul") == 2, f"{exporter}: expected Mh @ x @ Mw^T, got {ops.count('MatMul')} MatMuls"
    assert [n.op_type for n in fast.graph.node if n.op_type == "Conv"] == ["Conv"] * 3
    assert [i.name for i in fast.graph.input] == ["input", "factor"], f"{exporter}: inputs changed"
    assert [o.name for o in fast.graph.output] == ["output"], f"{exporter}: outputs changed"
    assert any(n.op_type == "Resize" for n in proto.graph.node), "the rewrite must not modify its argument"
    conditioning = sum("factor" in n.input for n in proto.graph.node if n.op_type != "Resize")  # untouched
    reads_factor = sum("factor" in n.input for n in fast.graph.node) - conditioning
    assert reads_factor == 2, f"{exporter}: the matrices must be built from the factor, read by {reads_factor} nodes"


def test_gather_rewrite_replaces_only_the_resize(exported) -> None:
    """resize_as_gather: no Resize and no matrix, four Gathers of the image along each axis, I/O untouched."""
    exporter, proto = exported
    banded = rewrite.resize_as_gather(proto)
    ops = [n.op_type for n in banded.graph.node]
    assert "Resize" not in ops and "MatMul" not in ops and "Equal" not in ops, f"{exporter}: {sorted(set(ops))}"
    image_gathers = [n for n in banded.graph.node if n.op_type == "Gather" and n.input[0] == "input"]
    assert len(image_gathers) == 4, f"{exporter}: expected four taps along H, got {len(image_gathers)}"
    assert ops.count("Add") >= 6, f"{exporter}: expected three additions of taps per axis"
    assert [n.op_type for n in banded.graph.node if n.op_type == "Conv"] == ["Conv"] * 3
    assert [i.name for i in banded.graph.input] == ["input", "factor"], f"{exporter}: inputs changed"


def test_auto_chooses_the_gathers_for_long_sides() -> None:
    """The matrices grow with output side x input side: a 4000x20 image at x4 needs 64 M weights for Mh alone."""
    x4 = sd.Factor.parse("4")
    assert runtime.resize_form("auto", 256, 256, x4) == "matmul"
    assert runtime.resize_form("auto", 4000, 20, x4) == "gather"
    assert runtime.resize_form("auto", 20, 4000, x4) == "gather"
    assert runtime.resize_form("resize", 4000, 20, x4) == "resize"


def test_matmul_rewrite_refuses_another_resize(exported) -> None:
    """The rewrite computes this project's bicubic only: a Resize with other attributes is refused, not changed."""
    _, proto = exported
    (resize,) = [n for n in proto.graph.node if n.op_type == "Resize"]
    for attribute in resize.attribute:
        if attribute.name == "mode":
            attribute.s = b"linear"
    with pytest.raises(core.SrcnnError, match="not this project's bicubic"):
        rewrite.resize_as_matmul(proto)


def test_the_operator_allowlist_is_exactly_the_projects(onnx_path) -> None:
    """graph.OPERATORS (what --onnx accepts) holds every operator of every model's graph, by both exporters and in
    each Resize form, and nothing else: a model that adds one must say so there."""
    used = {n.op_type for name in MODEL_NAMES for exporter in sd.EXPORTERS for form in graph.REWRITES
            for n in graph.rewritten(onnx.load(onnx_path(exporter, name)), form).graph.node}
    assert used == graph.OPERATORS, f"missing {sorted(used - graph.OPERATORS)}, unused {sorted(graph.OPERATORS - used)}"
