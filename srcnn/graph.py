"""The graph as the product deploys it: checked, its Resize in each form, cut before its convolutions (needs onnx).

Building these parts needs the `onnx` package (0.7 s to import); running them does not: srcnn.runtime takes the
parts as serialized models, and srcnn.cache keeps them on disk, so a cached run imports neither onnx nor torch.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import onnx
import onnx.external_data_helper
import onnx.numpy_helper
import onnx.utils
import onnxruntime as ort

from srcnn.core import INPUT_NAMES, OUTPUT_NAME, Device, SrcnnError
from srcnn.probe import probe_problems
from srcnn.rewrite import REWRITE_PREFIX, resize_as_gather, resize_as_matmul
from srcnn.ort_runtime import create_session
from srcnn.runtime import FACTOR_SENTINEL, FORMS, GraphParts

REWRITES: dict[str, Callable[[onnx.ModelProto], onnx.ModelProto]] = {
    "matmul": resize_as_matmul, "gather": resize_as_gather, "resize": lambda proto: proto,
}
# The tutorial's convolutions (SuperResolutionNet): conv1 9x9 3->64, conv2 1x1 64->32, conv3 5x5 32->3.
CONV_WEIGHT_SHAPES = ((64, 3, 9, 9), (32, 64, 1, 1), (3, 32, 5, 5))
MAX_ONNX_BYTES = 16 * 2**20  # the exported model is 80 KB: a larger file is not this project's
# Every operator of this project's graphs, of both models, as both exporters write them and in each Resize form (the
# --save-onnx file holds the matmul form): anything else (a Loop, a Tile, an If) is not this project's, and may never
# end. Clip, Concat, Log, ReduceMean, ReduceSum and Slice: the factor-aware model's blend of its weights.
OPERATORS = frozenset({"Add", "Cast", "Clip", "Concat", "Constant", "Conv", "Div", "Equal", "Floor", "Gather", "Log",
                       "MatMul", "Max", "Min", "Mul", "Range", "ReduceMean", "ReduceSum", "Relu", "Reshape", "Resize",
                       "Shape", "Slice", "Sub", "Transpose"})


def is_fast_form(proto: onnx.ModelProto) -> bool:
    """Whether the graph's Resize has already been rewritten (a file written by --save-onnx)."""
    return not any(n.op_type == "Resize" for n in proto.graph.node) and any(
        n.name.startswith(REWRITE_PREFIX) for n in proto.graph.node)


def graph_problems(proto: onnx.ModelProto) -> list[str]:
    """How the graph differs from the tutorial's: inputs `input` and `factor`, one Resize scaled by `factor` (or,
    in the fast form, the rewrite's nodes reading `factor` instead)."""
    inputs, outputs = [i.name for i in proto.graph.input], [o.name for o in proto.graph.output]
    problems = [f"inputs are {inputs}, expected {list(INPUT_NAMES)}"] if inputs != list(INPUT_NAMES) else []
    problems += [f"outputs are {outputs}, expected {[OUTPUT_NAME]}"] if outputs != [OUTPUT_NAME] else []
    if is_fast_form(proto):
        return problems
    resizes = [n for n in proto.graph.node if n.op_type == "Resize"]
    if len(resizes) != 1 or resizes[0].input[2:3] != [INPUT_NAMES[1]]:
        problems.append(f"expected one Resize whose scales input is {INPUT_NAMES[1]!r}")
    return problems


def _weight_problems(proto: onnx.ModelProto) -> list[str]:
    """How the graph's convolutions differ from the tutorial's: count, weights held in the file, shapes."""
    if any(onnx.external_data_helper.uses_external_data(t) for t in proto.graph.initializer):
        return ["its weights are stored in external data files"]
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    if len(convs) != len(CONV_WEIGHT_SHAPES):
        return [f"it has {len(convs)} Conv nodes, expected {len(CONV_WEIGHT_SHAPES)}"]
    constants = {name for n in proto.graph.node if n.op_type == "Constant" for name in n.output}
    if held := [n.name or n.output[0] for n in convs if n.input[1] in constants]:
        return [f"the weights of {', '.join(held)} are held in Constant nodes, not initializers"]
    shapes = conv_weight_shapes(proto)
    return [f"Conv {n.name or n.output[0]} has weights of shape {shapes.get(n.input[1], '(unknown)')}, the model needs"
            f" {want}" for n, want in zip(convs, CONV_WEIGHT_SHAPES, strict=True) if shapes.get(n.input[1]) != want]


def conv_weight_shapes(proto: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """The shapes of the Conv weights: initializers' (the tutorial's), or what shape inference gives for weights the
    graph computes from the factor (the factor-aware model blends them)."""
    inferred = onnx.shape_inference.infer_shapes(proto).graph.value_info
    computed = {v.name: tuple(d.dim_value for d in v.type.tensor_type.shape.dim) for v in inferred}
    return computed | {t.name: tuple(t.dims) for t in proto.graph.initializer}


def halo(proto: onnx.ModelProto) -> int:
    """How far an output pixel of the convolutions sees: the sum of their kernel radii (4 + 0 + 2 = 6 pixels)."""
    shapes = conv_weight_shapes(proto)
    return sum(shapes[n.input[1]][2] // 2 for n in proto.graph.node if n.op_type == "Conv")


def load_onnx(path: Path) -> onnx.ModelProto:
    """Read a model given with --onnx, refusing in one line a file that is missing, too large, not ours or not
    runnable here (opset, IR version, weights in Constant nodes, other channels or output shape)."""
    if not path.is_file():  # a FIFO or a device would block onnx.load
        raise SrcnnError(f"--onnx {path} is not a file" if path.exists() else f"ONNX model not found: {path}")
    if (size := path.stat().st_size) > MAX_ONNX_BYTES:
        raise SrcnnError(f"--onnx {path} has {size:,} bytes, over the limit of {MAX_ONNX_BYTES:,}")
    try:
        proto = onnx.load(path, load_external_data=False)  # external data is refused below, never read
    except Exception as exc:  # protobuf's DecodeError and friends: the file is not an ONNX model
        message = f"{path} is not a readable ONNX model ({type(exc).__name__}: {exc})"
        raise SrcnnError(message.splitlines()[0]) from None
    if problems := graph_problems(proto) + _weight_problems(proto) + _foreign_parts(proto):
        raise SrcnnError(f"--onnx {path} is not this project's dynamic-factor model: {'; '.join(problems)} (write"
                         " one with srcnn --save-onnx PATH)")
    if problems := probe_problems(proto.SerializeToString()):  # bounded in time and memory: a child process
        raise SrcnnError(f"--onnx {path} cannot run in ONNX Runtime {ort.__version__}: {'; '.join(problems)}")
    return proto


def _foreign_parts(proto: onnx.ModelProto) -> list[str]:
    """What no graph of this project has: other operators (in subgraphs too), other domains, fixed input sizes."""
    nodes = list(proto.graph.node)
    for node in nodes:  # a Loop's or an If's body holds nodes of its own
        nodes += [n for attribute in node.attribute for g in (attribute.g, *attribute.graphs) for n in g.node]
    foreign = sorted({n.op_type if not n.domain else f"{n.domain}.{n.op_type}" for n in nodes
                      if n.domain not in ("", "ai.onnx") or n.op_type not in OPERATORS})
    problems = [f"it uses {', '.join(foreign)}, which this project's graphs never do"] if foreign else []
    if proto.functions:
        problems.append(f"it defines functions ({', '.join(f.name for f in proto.functions)})")
    image = next((i for i in proto.graph.input if i.name == INPUT_NAMES[0]), None)
    dims = list(image.type.tensor_type.shape.dim) if image is not None else []
    if fixed := [f"{axis} {dims[i].dim_value}" for i, axis in ((0, "batch"), (2, "height"), (3, "width"))
                 if i < len(dims) and dims[i].HasField("dim_value")]:
        problems.append(f"its input has a fixed {', '.join(fixed)} (this project's model takes any size)")
    return problems


def rewritten(proto: onnx.ModelProto, form: str) -> onnx.ModelProto:
    """The graph with its Resize in `form`: "matmul", "gather" or "resize" (as exported)."""
    if form not in REWRITES:
        raise SrcnnError(f"resize {form!r}: expected one of {', '.join(REWRITES)}")
    return REWRITES[form](proto)


def form_session(proto: onnx.ModelProto, device: Device = "cpu", *, resize: str = "matmul",
                 threads: int = 0) -> ort.InferenceSession:
    """A session on the whole graph with its Resize in form `resize` (the tests and the benchmark run whole graphs)."""
    return create_session(rewritten(proto, resize).SerializeToString(), device, threads)


def conditioned(proto: onnx.ModelProto) -> bool:
    """Whether the factor reaches the convolutions: nodes besides the Resize (or the rewrite's nodes that replace
    it) read `factor`, as the factor-aware model's blend of its weights does."""
    return any(INPUT_NAMES[1] in n.input for n in proto.graph.node
               if n.op_type != "Resize" and not n.name.startswith(REWRITE_PREFIX))


def split_before_convs(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """(input, factor) -> upsampled, and upsampled (with factor, when it reaches the convolutions) -> output: the
    checked graph cut at its first Conv's input."""
    upsampled = next(n.input[0] for n in proto.graph.node if n.op_type == "Conv")
    extractor = onnx.utils.Extractor(onnx.shape_inference.infer_shapes(proto))
    refine_inputs = [upsampled, INPUT_NAMES[1]] if conditioned(proto) else [upsampled]
    return (extractor.extract_model(list(INPUT_NAMES), [upsampled]),
            extractor.extract_model(refine_inputs, [OUTPUT_NAME]))


def factor_as_constant(refine: onnx.ModelProto) -> onnx.ModelProto:
    """The convolutions' part with its `factor` input turned into a constant holding runtime.FACTOR_SENTINEL,
    which runtime.specialise() overwrites for each factor (why: see there)."""
    constant = onnx.ModelProto()
    constant.CopyFrom(refine)
    factor = next(i for i in constant.graph.input if i.name == INPUT_NAMES[1])
    constant.graph.input.remove(factor)
    constant.graph.initializer.append(onnx.numpy_helper.from_array(FACTOR_SENTINEL, INPUT_NAMES[1]))
    return constant


def graph_parts(proto: onnx.ModelProto) -> GraphParts:
    """Everything srcnn.runtime needs to run `proto` in each form its Resize can take, serialized.

    A graph as exported gives every form; a fast-form file (--save-onnx) has only its matrix products.
    """
    forms = ("matmul",) if is_fast_form(proto) else FORMS
    upsample, refine, steered = {}, b"", conditioned(proto)
    for form in forms:
        form_proto = proto if is_fast_form(proto) else rewritten(proto, form)
        upsample_part, refine_part = split_before_convs(form_proto)
        upsample[form] = upsample_part.SerializeToString()
        if not refine:  # the convolutions are the same in every form
            refine = (factor_as_constant(refine_part) if steered else refine_part).SerializeToString()
    fast = proto if is_fast_form(proto) else rewritten(proto, "matmul")
    return GraphParts(upsample=upsample, refine=refine, fast=fast.SerializeToString(), halo=halo(proto),
                      steered=steered)
