"""The deployment rewrite for ONNX Runtime: the graph's cubic Resize as two matrix products built from `factor`."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx

from srcnn.core import COORDINATE_TRANSFORMATION_MODE, CUBIC_COEFF_A, RESIZE_MODE, SrcnnError

# ONNX Runtime's cubic Resize is a scalar loop, as slow as conv1 (docs/speed.md), while PyTorch's bicubic is
# quick. Bicubic interpolation is separable and linear, so it is also
# output = Mh @ image @ Mw^T with Mh (H', H) and Mw (W', W) holding each output row's (column's) four cubic weights
# at clamped source indices; MatMul runs at matrix speed. The exported file keeps the tutorial's Resize; this
# rewrite builds the matrices from `factor` and the input's shape *inside the graph*, so the rewritten model is
# just as dynamic, and is applied when the product builds its graph (srcnn.graph); --save-onnx writes it.
REWRITE_PREFIX = "resize_as_matmul/"


class _GraphBuilder:
    """Appends ONNX nodes with generated names; constants become initializers, each value stored once."""

    def __init__(self, prefix: str) -> None:
        self.prefix, self.nodes, self.initializers = prefix, [], {}
        self._count = 0

    def const(self, value: float | list[int], dtype: type = np.float32) -> str:
        array = np.array(value, dtype=dtype)
        name = f"{self.prefix}const_{array.dtype}_{'_'.join(str(v) for v in array.ravel().tolist())}"
        self.initializers.setdefault(name, onnx.numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, *inputs: str, output: str | None = None, **attributes: object) -> str:
        self._count += 1
        name = f"{self.prefix}{op_type}_{self._count}"
        self.nodes.append(onnx.helper.make_node(op_type, list(inputs), [output or name], name=name, **attributes))
        return output or name


def _keys_weight(b: _GraphBuilder, distance: str, near: bool) -> str:
    """Keys' cubic kernel at `distance` (Horner form): near for |d| <= 1, far for 1 < |d| < 2 (A = CUBIC_COEFF_A)."""
    a = CUBIC_COEFF_A
    coefficients = (a + 2, -(a + 3), 0.0, 1.0) if near else (a, -5 * a, 8 * a, -4 * a)  # d^3, d^2, d, 1
    value = b.const(coefficients[0])
    for c in coefficients[1:]:
        value = b.op("Add", b.op("Mul", value, distance), b.const(c))
    return value


def _taps(b: _GraphBuilder, shape: str, factor: str, axis: int) -> list[tuple[str, str]]:
    """The four (source index, weight) pairs of bicubic interpolation along `axis` (2: height, 3: width), each (out,).

    Every step mirrors PyTorch's upsample_bicubic2d: out = floor(in * f) in float32 (as Resize does),
    src = (dst + 0.5) / f - 0.5, taps at floor(src) - 1 ... floor(src) + 2 clamped to the image, weights
    Keys(1 + t), Keys(t), Keys(1 - t), Keys(2 - t) with t = src - floor(src). Indices stay float: opset 11's Max,
    Min and Equal take no integers, and every index here is a small whole number, exact in float32.
    """
    one, zero = b.const(1.0), b.const(0.0)
    in_length = b.op("Cast", b.op("Gather", shape, b.const(axis, np.int64)), to=onnx.TensorProto.FLOAT)  # ()
    scale = b.op("Gather", factor, b.const(axis, np.int64))  # ()
    out_length = b.op("Floor", b.op("Mul", in_length, scale))  # ()
    dst = b.op("Range", zero, out_length, one)  # (out,)
    src = b.op("Sub", b.op("Mul", b.op("Add", dst, b.const(0.5)), b.op("Div", one, scale)), b.const(0.5))
    base = b.op("Floor", src)
    t = b.op("Sub", src, base)  # (out,) in [0, 1)
    last = b.op("Sub", in_length, one)
    distances = [(b.op("Add", t, one), False), (t, True), (b.op("Sub", one, t), True),
                 (b.op("Sub", b.const(2.0), t), False)]
    return [(b.op("Min", b.op("Max", b.op("Add", base, b.const(tap - 1.0)), zero), last),  # clamped to the image
             _keys_weight(b, distance, near)) for tap, (distance, near) in enumerate(distances)]


def _interpolation_matrix(b: _GraphBuilder, shape: str, factor: str, axis: int) -> str:
    """(out_length, in_length) float matrix of the bicubic weights along `axis`: each row holds its four taps."""
    columns = b.op("Reshape", b.op("Range", b.const(0.0), b.op("Cast", b.op("Gather", shape, b.const(axis, np.int64)),
                                                                  to=onnx.TensorProto.FLOAT), b.const(1.0)),
                   b.const([1, -1], np.int64))  # (1, in)
    matrix = None
    for index, weight in _taps(b, shape, factor, axis):
        hits = b.op("Equal", b.op("Reshape", index, b.const([-1, 1], np.int64)), columns)  # (out, in) one-hot
        column_weight = b.op("Reshape", weight, b.const([-1, 1], np.int64))  # (out, 1)
        term = b.op("Mul", b.op("Cast", hits, to=onnx.TensorProto.FLOAT), column_weight)
        matrix = term if matrix is None else b.op("Add", matrix, term)  # clamped taps on one pixel add up
    assert matrix is not None
    return matrix


def _gathered(b: _GraphBuilder, image: str, shape: str, factor: str, axis: int, output: str | None = None) -> str:
    """`image` resampled along `axis` as the sum of its four taps: Gather the source rows (columns), weigh, add."""
    taps = _taps(b, shape, factor, axis)
    total = None
    for tap, (index, weight) in enumerate(taps):
        rows = b.op("Gather", image, b.op("Cast", index, to=onnx.TensorProto.INT64), axis=axis)  # (N, C, out, .)
        term = b.op("Mul", rows, b.op("Reshape", weight, b.const([-1, 1], np.int64)) if axis == 2 else weight)
        # A running Add, not one Sum of four: each term can be freed once added, so at most two are alive.
        last = tap == len(taps) - 1
        total = term if total is None else b.op("Add", total, term, output=output if last else None)
    assert total is not None
    return total


def _as_matmul(b: _GraphBuilder, image: str, factor: str, output: str) -> None:
    """Mh @ image @ Mw^T: (H', H) @ (N, C, H, W) @ (W, W') -> (N, C, H', W')."""
    shape = b.op("Shape", image)
    rows = _interpolation_matrix(b, shape, factor, axis=2)  # (H', H)
    columns_t = b.op("Transpose", _interpolation_matrix(b, shape, factor, axis=3), perm=[1, 0])  # (W, W')
    b.op("MatMul", b.op("MatMul", rows, image), columns_t, output=output)


def _as_gather(b: _GraphBuilder, image: str, factor: str, output: str) -> None:
    """Four gathered taps along H, then along W: memory grows with the output only, never with H' x H."""
    shape = b.op("Shape", image)
    _gathered(b, _gathered(b, image, shape, factor, axis=2), shape, factor, axis=3, output=output)


def resize_as_matmul(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of `proto` with its one cubic Resize replaced by Mh @ x @ Mw^T built from the Resize's scales."""
    return _replace_resize(proto, _as_matmul)


def resize_as_gather(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of `proto` with its one cubic Resize replaced by four weighted Gathers per axis."""
    return _replace_resize(proto, _as_gather)


def _replace_resize(proto: onnx.ModelProto, build: Callable[[_GraphBuilder, str, str, str], None]) -> onnx.ModelProto:
    """A copy of `proto` whose one cubic Resize is replaced by the nodes `build` appends (same input and output)."""
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    graph = model.graph
    resizes = [(i, n) for i, n in enumerate(graph.node) if n.op_type == "Resize"]
    if len(resizes) != 1:
        raise SrcnnError(f"cannot rewrite the resize: the graph has {len(resizes)} Resize nodes, not 1")
    position, resize = resizes[0]
    _check_resize_attributes(resize)
    b = _GraphBuilder(REWRITE_PREFIX)
    build(b, resize.input[0], resize.input[2], resize.output[0])  # image, factor (the scales), output
    nodes = [*graph.node[:position], *b.nodes, *graph.node[position + 1 :]]
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(b.initializers.values())
    _drop_unused(graph)  # Resize's roi constant
    onnx.checker.check_model(model, full_check=True)
    return model


def _check_resize_attributes(resize: onnx.NodeProto) -> None:
    """The rewrite computes exactly this project's bicubic; refuse any other Resize rather than change its meaning."""
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in resize.attribute}
    expected = {
        "mode": RESIZE_MODE.encode(),
        "coordinate_transformation_mode": COORDINATE_TRANSFORMATION_MODE.encode(),
        "cubic_coeff_a": np.float32(CUBIC_COEFF_A),
        "exclude_outside": 0,  # ONNX defaults, for the attributes an exporter may leave out
        "antialias": 0,
    }
    defaults = {"cubic_coeff_a": np.float32(-0.75), "exclude_outside": 0, "antialias": 0}
    actual = {name: attributes.get(name, defaults.get(name)) for name in expected}
    if wrong := {name: value for name, value in actual.items() if value != expected[name]}:
        raise SrcnnError(f"cannot rewrite this Resize: it has {wrong}, not this project's bicubic")


def _drop_unused(graph: onnx.GraphProto) -> None:
    """Remove nodes and initializers whose outputs nothing reads (ONNX Runtime warns about them otherwise)."""
    while True:
        used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
        dead = [n for n in graph.node if not any(out in used for out in n.output)]
        for node in dead:
            graph.node.remove(node)
        if not dead:
            break
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
