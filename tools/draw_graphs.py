"""Draw docs/graphs.png: the ONNX graph of the tutorial's factor.item() attempt beside this project's graph.

    python tools/draw_graphs.py [--out PATH]
    python tools/draw_graphs.py --model factor-aware   # one model's graph (dynamo): docs/graph_factor-aware.png

--out is checked (a folder that takes files, a .png name) before anything is exported, and written whole or not at
all. Exports both with the TorchScript exporter at opset 11 and draws each graph from the .onnx file itself. The
.item() export turns the factor into a Python number: its graph keeps x3 as constant scales and has no `factor`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import numpy_helper

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import srcnn.startup  # noqa: F401, E402, I001 - first: a signal while the libraries load exits quietly
import srcnn_dynamic as sd  # noqa: E402
from srcnn import models  # noqa: E402
from srcnn.errors import run_guarded  # noqa: E402
from srcnn.graph import conv_weight_shapes  # noqa: E402
from srcnn.images import write_image  # noqa: E402
from srcnn.plan import check_output_file  # noqa: E402

SUPERSAMPLE = 2  # drawn at twice the size then shrunk with INTER_AREA: smoother text and lines than LINE_AA alone
PANEL_WIDTH = 700 * SUPERSAMPLE  # two panels: a 1400 px wide figure
FONT, FONT_SCALE, TITLE_SCALE = cv2.FONT_HERSHEY_SIMPLEX, 0.56 * SUPERSAMPLE, 0.72 * SUPERSAMPLE
LINE_HEIGHT, PAD, GAP_X, GAP_Y = 22 * SUPERSAMPLE, 9 * SUPERSAMPLE, 18 * SUPERSAMPLE, 30 * SUPERSAMPLE
TOP = 110 * SUPERSAMPLE  # room for the title and the two summary lines
STROKE = SUPERSAMPLE
INK, EDGE, WHITE = (30, 30, 30), (90, 90, 90), (255, 255, 255)
FILL = {"input": (250, 222, 180), "const": (185, 236, 255), "op": (236, 236, 236), "output": (196, 236, 196)}
ELLIPSES = ("input", "output")  # graph inputs and outputs are ellipses, operators and constants boxes


class ItemInterpolateNet(nn.Module):
    """The tutorial's failing attempt: F.interpolate with scale_factor=factor.item(), then SRCNN's convolutions."""

    def __init__(self) -> None:
        super().__init__()
        self.refine = nn.Sequential(nn.Conv2d(3, 64, 9, padding=4), nn.ReLU(), nn.Conv2d(64, 32, 1), nn.ReLU(),
                                    nn.Conv2d(32, 3, 5, padding=2))  # SuperResolutionNet's conv1, conv2, conv3

    def forward(self, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=factor.item(), mode="bicubic", align_corners=False)
        return self.refine(x)


def export_item_model(path: Path) -> None:
    """Export ItemInterpolateNet at x3 as the tutorial does, with srcnn_dynamic's names and dynamic axes."""
    with warnings.catch_warnings():  # the tracer warns that .item() freezes the factor: that is what is shown
        warnings.simplefilter("ignore")
        torch.onnx.export(
            ItemInterpolateNet().eval(), (torch.rand(1, 3, 16, 16), torch.tensor(sd.EXPORT_FACTOR)), path,
            dynamo=False, opset_version=11, input_names=["input", "factor"], output_names=["output"],
            dynamic_axes={"input": {0: "batch", 2: "height", 3: "width"},
                          "output": {0: "batch", 2: "out_height", 3: "out_width"}},
        )


@dataclass
class Box:
    """One drawn node: its text lines, kind (a FILL key), layer, and rectangle (left, top, width, height)."""

    lines: list[str]
    kind: str
    layer: int = 0
    left: int = 0
    top: int = 0
    width: int = 0
    height: int = 0


def values_text(array: np.ndarray) -> str:
    """[1. 1. 3. 3.] -> '[1, 1, 3, 3]'."""
    return "[" + ", ".join(f"{v:g}" for v in array.ravel()) + "]"


def shape_text(value: onnx.ValueInfoProto) -> str:
    """A graph input's or output's shape from the file: '[batch, 3, height, width]'."""
    return "[" + ", ".join(d.dim_param or str(d.dim_value) for d in value.type.tensor_type.shape.dim) + "]"


def op_lines(node: onnx.NodeProto, dims: dict[str, list[int]], constants: dict[str, np.ndarray]) -> list[str]:
    """An operator's text: Conv with its kernel and channels, Resize with its mode and where its scales come from."""
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    if node.op_type == "Conv":
        (kh, kw), (out_channels, in_per_group) = attrs["kernel_shape"], dims[node.input[1]][:2]  # W: out, in/g, k, k
        return [f"Conv {kh}x{kw}, {in_per_group * attrs.get('group', 1)}->{out_channels}"]
    if node.op_type == "Resize":
        scales = node.input[2]  # Resize-11 inputs: X, roi, scales
        source = f"constant {values_text(constants[scales])}" if scales in constants else f"graph input '{scales}'"
        return [f"Resize ({attrs['mode'].decode()}, {attrs['coordinate_transformation_mode'].decode()})",
                f"scales = {source}"]
    return [node.op_type]


def slot_name(node: onnx.NodeProto, index: int, opset: int) -> str:
    """The schema's name for a node's input, such as 'scales' for Resize's third input."""
    slots = onnx.defs.get_schema(node.op_type, opset, node.domain).inputs
    return slots[min(index, len(slots) - 1)].name  # a variadic last input names all the inputs after it


def graph_boxes(model: onnx.ModelProto) -> tuple[list[Box], list[tuple[int, int]]]:
    """The boxes, in topological order, and the edges (source index, target index) of an ONNX graph."""
    graph, opset = model.graph, next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    dims = {i.name: list(i.dims) for i in graph.initializer}
    weight_shapes = {name: list(shape) for name, shape in conv_weight_shapes(model).items()}  # blended ones too
    constants = {n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in graph.node if n.op_type == "Constant"}
    # a constant is named after the operator input it feeds: 'scales = [1, 1, 3, 3]'
    feeds = {name: slot_name(node, k, opset) for node in graph.node for k, name in enumerate(node.input)}
    # the inputs a caller feeds: older IR versions list the initializers among the graph inputs too
    boxes = [Box([i.name, shape_text(i)], "input") for i in graph.input if i.name not in dims]
    producer = {box.lines[0]: k for k, box in enumerate(boxes)}
    edges = []
    for node in graph.node:
        if node.op_type == "Constant":
            name = node.output[0]
            boxes.append(Box([f"{feeds[name]} = {values_text(constants[name])}", "(constant)"], "const"))
        else:
            boxes.append(Box(op_lines(node, weight_shapes, constants), "op"))
        edges += [(producer[name], len(boxes) - 1) for name in node.input if name in producer]
        producer.update({name: len(boxes) - 1 for name in node.output})
    for output in graph.output:
        boxes.append(Box([output.name, shape_text(output)], "output"))
        edges.append((producer[output.name], len(boxes) - 1))
    return boxes, edges


def layout(boxes: list[Box], edges: list[tuple[int, int]]) -> tuple[int, int]:
    """Size the boxes, layer them by longest path from the inputs, centre each layer; return the panel's width (at
    least PANEL_WIDTH, wider for a wide layer) and height."""
    for index, box in enumerate(boxes):
        box.layer = max((boxes[s].layer + 1 for s, t in edges if t == index), default=0)
        text_width = max(cv2.getTextSize(line, FONT, FONT_SCALE, STROKE)[0][0] for line in box.lines)
        stretch = 1.3 if box.kind in ELLIPSES else 1.0  # an ellipse needs more room around the same text
        box.width = int((text_width + 2 * PAD) * stretch)
        box.height = int((len(box.lines) * LINE_HEIGHT + PAD) * stretch)
    rows = [[box for box in boxes if box.layer == layer] for layer in range(max(box.layer for box in boxes) + 1)]
    widths = [sum(box.width for box in row) + GAP_X * (len(row) - 1) for row in rows]
    panel_width, y = max(PANEL_WIDTH, max(widths) + 2 * GAP_X), TOP
    for row, width in zip(rows, widths, strict=True):
        x = (panel_width - width) // 2
        for box in row:
            box.left, box.top, x = x, y, x + box.width + GAP_X
        y += max(box.height for box in row) + GAP_Y
    return panel_width, y


def put_centred(image: np.ndarray, text: str, centre_x: int, baseline: int, scale: float = FONT_SCALE,
                colour: tuple[int, int, int] = INK, thickness: int = STROKE) -> None:
    """Anti-aliased text centred on centre_x."""
    width = cv2.getTextSize(text, FONT, scale, thickness)[0][0]
    cv2.putText(image, text, (centre_x - width // 2, baseline), FONT, scale, colour, thickness, cv2.LINE_AA)


def draw_box(image: np.ndarray, box: Box) -> None:
    """A filled ellipse or rectangle with a border and centred lines of text."""
    centre, axes = (box.left + box.width // 2, box.top + box.height // 2), (box.width // 2, box.height // 2)
    for colour, thickness in ((FILL[box.kind], -1), (INK, STROKE)):
        if box.kind in ELLIPSES:
            cv2.ellipse(image, centre, axes, 0, 0, 360, colour, thickness, cv2.LINE_AA)
        else:
            cv2.rectangle(image, (box.left, box.top), (box.left + box.width, box.top + box.height), colour, thickness,
                          cv2.LINE_AA)
    first_baseline = centre[1] - (len(box.lines) - 1) * LINE_HEIGHT // 2 + LINE_HEIGHT // 3
    for k, line in enumerate(box.lines):
        put_centred(image, line, centre[0], first_baseline + k * LINE_HEIGHT)


def draw_edges(image: np.ndarray, boxes: list[Box], edges: list[tuple[int, int]]) -> None:
    """Arrows from each box's bottom centre to its target's top, several arrivals spread along the top edge."""
    for index, target in enumerate(boxes):
        sources = sorted((boxes[s] for s, t in edges if t == index), key=lambda box: box.left)
        for k, source in enumerate(sources):
            start = (source.left + source.width // 2, source.top + source.height)
            end = (target.left + target.width * (k + 1) // (len(sources) + 1), target.top)
            length = max(np.hypot(end[0] - start[0], end[1] - start[1]), 1.0)
            cv2.arrowedLine(image, start, end, EDGE, STROKE, cv2.LINE_AA, tipLength=10 * SUPERSAMPLE / length)


def draw_panel(model: onnx.ModelProto, title: str) -> np.ndarray:
    """One graph drawn under its title and a summary of its graph inputs and initializers."""
    boxes, edges = graph_boxes(model)
    width, height = layout(boxes, edges)
    image = np.full((height, width, 3), WHITE, np.uint8)
    weights = model.graph.initializer
    put_centred(image, title, width // 2, 34 * SUPERSAMPLE, TITLE_SCALE, INK, 2 * STROKE)
    inputs = ", ".join(box.lines[0] for box in boxes if box.kind == "input")
    put_centred(image, f"graph inputs: {inputs}", width // 2, 62 * SUPERSAMPLE, colour=EDGE)
    put_centred(image, f"{len(weights)} initializers, {sum(int(np.prod(w.dims)) for w in weights):,} weights"
                " (in the Conv boxes)", width // 2, 84 * SUPERSAMPLE, colour=EDGE)
    draw_edges(image, boxes, edges)
    for box in boxes:
        draw_box(image, box)
    return image


def draw_model_figure(out: Path, name: str) -> int:
    """Export one model (srcnn.models; its structure, so its initial weights do) and draw its graph to `out`."""
    check_output_file(out, "--out", suffixes=(".png",))  # a mistake costs no export
    kind = models.model_kind(name)
    with contextlib.redirect_stdout(io.StringIO()):  # the dynamo exporter reports its steps on stdout
        # dynamo: its constants are initializers, not Constant nodes, so the drawing holds the operators alone
        proto = sd.export_onnx(kind.build().eval(), None, exporter="dynamo")
    readers = sorted({n.op_type for n in proto.graph.node if sd.INPUT_NAMES[1] in n.input})
    panel = draw_panel(proto, f"{name}: factor feeds {', '.join(readers)}")
    figure = cv2.resize(panel, None, fx=1 / SUPERSAMPLE, fy=1 / SUPERSAMPLE, interpolation=cv2.INTER_AREA)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_image(out, figure)
    print(f"wrote {out}")
    return sd.EXIT_OK


def draw_figure(out: Path) -> int:
    """Export both models, draw their graphs side by side and write the PNG to `out`; return the exit code."""
    check_output_file(out, "--out", suffixes=(".png",))  # a mistake costs no export
    with tempfile.TemporaryDirectory() as tmp:
        item_path, project_path = Path(tmp) / "item.onnx", Path(tmp) / "srcnn3.onnx"
        export_item_model(item_path)
        sd.export_onnx(sd.SuperResolutionNet().eval(), project_path)
        panels = [draw_panel(onnx.load(item_path), "factor.item(): x3 baked in, one input"),
                  draw_panel(onnx.load(project_path), "NewInterpolate: factor is a graph input")]
    height = max(panel.shape[0] for panel in panels)
    panels = [cv2.copyMakeBorder(p, 0, height - p.shape[0], 0, 0, cv2.BORDER_CONSTANT, value=WHITE) for p in panels]
    panels[1][:, :STROKE] = EDGE  # a thin rule between the two graphs
    figure = cv2.resize(np.concatenate(panels, axis=1), None, fx=1 / SUPERSAMPLE, fy=1 / SUPERSAMPLE,
                        interpolation=cv2.INTER_AREA)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_image(out, figure)  # whole or not at all; PNG encodes any uint8 BGR image
    print(f"wrote {out}")
    return sd.EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = sd.OneLineErrorParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, metavar="PATH",
                        help="the PNG to write (default: docs/graphs.png, or with --model docs/graph_MODEL.png)")
    parser.add_argument("--model", choices=models.MODELS,
                        help="draw this model's exported graph alone (default: the tutorial's figure of two graphs)")
    args = parser.parse_args(argv)
    if args.model:
        return run_guarded(lambda: draw_model_figure(args.out or ROOT / "docs" / f"graph_{args.model}.png",
                                                     args.model))
    return run_guarded(lambda: draw_figure(args.out or ROOT / "docs" / "graphs.png"))


if __name__ == "__main__":
    sys.exit(main())
