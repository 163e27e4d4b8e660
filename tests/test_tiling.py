"""Tiled inference gives the untiled result, in PyTorch and in ONNX Runtime, at integer and non-integer factors, for
every model (a conditioned one gives each tile the factor too)."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from conftest import DEVICES, MODEL_NAMES, RUNTIME_NAMES, runtime_skip_reason

import srcnn_dynamic as sd
from srcnn import graph, pytorch, runtimes, tiling, weights
from srcnn.models import TUTORIAL_MODEL

FACTORS = ["2", "3", "2.5", "5x6"]  # 2.5 and 5x6: output pixels that fall between input pixels
SHAPE = (1, 3, 29, 23)  # odd sizes: at x2.5 the output is 72x57, so every tile size below cuts it unevenly
TILES = [7, 16, 40]  # 7: barely more than the 6-pixel halo; 40: one cut through the middle


@pytest.fixture(scope="module")
def trained() -> Callable[[str], torch.nn.Module]:
    """trained(name): the model's shipped weights, whose pass-through channels make values (and rounding) larger than
    random weights."""
    return functools.cache(lambda name: weights.load_model(None, name))


@pytest.fixture(scope="module")
def trained_onnx(trained, tmp_path_factory) -> Callable[[str], Path]:
    """trained_onnx(name): the trained model exported once."""

    @functools.cache
    def get(name: str) -> Path:
        path = tmp_path_factory.mktemp(f"trained-{name}") / "srcnn3.onnx"
        sd.export_onnx(copy.deepcopy(trained(name)), path)
        return path

    return get


def image() -> torch.Tensor:
    return torch.rand(SHAPE, generator=torch.Generator().manual_seed(4))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("tile", TILES)
@pytest.mark.parametrize("factor_text", FACTORS)
@pytest.mark.parametrize("model_name", MODEL_NAMES)
def test_pytorch_tiled_equals_untiled(model_name, factor_text, tile, device, trained) -> None:
    factor = sd.Factor.parse(factor_text)
    model = copy.deepcopy(trained(model_name)).to(device)  # the cached one stays on the CPU
    untiled = pytorch.run_torch(model, image(), factor)
    tiled = pytorch.run_torch(model, image(), factor, tile)
    assert tiled.shape == untiled.shape, f"tiled {tiled.shape} vs untiled {untiled.shape}"
    diff = float(np.max(np.abs(tiled - untiled)))
    assert diff <= tiling.TILE_ATOL, f"x{factor.tag}, tiles of {tile} on {device}: max |tiled - untiled| = {diff:.3e}"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("runtime_name", RUNTIME_NAMES)
@pytest.mark.parametrize("resize", graph.REWRITES)
@pytest.mark.parametrize("tile", TILES)
@pytest.mark.parametrize("factor_text", FACTORS)
@pytest.mark.parametrize("model_name", MODEL_NAMES)
def test_runtime_tiled_equals_untiled(model_name, factor_text, tile, resize, runtime_name, device, trained,
                                      trained_onnx) -> None:
    if reason := runtime_skip_reason(runtime_name, device):
        pytest.skip(reason)
    factor = sd.Factor.parse(factor_text)
    parts = graph.graph_parts(onnx.load(trained_onnx(model_name)))
    runner = runtimes.create_runner(parts, runtime_name, device, resize=resize)
    untiled = runner(image().numpy(), factor)
    tiled = runner(image().numpy(), factor, tile)
    diff = float(np.max(np.abs(tiled - untiled)))
    assert diff <= tiling.TILE_ATOL, (f"{runtime_name} x{factor.tag}, tiles of {tile}, resize={resize}:"
                                      f" max |tiled - untiled| = {diff:.3e}")
    reference = pytorch.run_torch(trained(model_name), image(), factor)
    to_torch = float(np.max(np.abs(tiled - reference)))
    assert to_torch <= sd.PARITY_ATOL, (f"{runtime_name} x{factor.tag}, tiles of {tile}:"
                                        f" max |tiled - PyTorch| = {to_torch:.3e}")


def test_tiles_cover_the_output_once() -> None:
    height, width, tile, halo = 72, 57, 16, 6
    covered = np.zeros((height, width), dtype=int)
    for box in tiling.tile_boxes(height, width, tile, halo):
        covered[box.out_rows, box.out_cols] += 1
        assert box.rows.start <= box.out_rows.start and box.out_rows.stop <= box.rows.stop, f"{box}: tile outside its crop"
        rows_kept = range(box.rows.start, box.rows.stop)[box.keep_rows]
        assert (rows_kept.start, rows_kept.stop) == (box.out_rows.start, box.out_rows.stop), f"{box}: keep != out"
        inner_margin = min(box.out_rows.start - box.rows.start, box.rows.stop - box.out_rows.stop)
        at_edge = box.rows.start == 0 or box.rows.stop == height
        assert at_edge or inner_margin >= halo, f"{box}: interior tile with a halo under {halo}"
    assert covered.min() == covered.max() == 1, "every output pixel belongs to exactly one tile"


def test_tiling_would_be_wrong_without_the_halo(trained) -> None:
    """The equality tests can fail: with no halo, tile seams differ far beyond TILE_ATOL."""
    factor, x, network = sd.Factor.parse("3"), image(), trained(TUTORIAL_MODEL)
    with torch.inference_mode():
        upsampled = network.upsample(x, factor.tensor())
        untiled = network.refine(upsampled)
        seams = torch.empty_like(untiled)
        for box in tiling.tile_boxes(upsampled.shape[2], upsampled.shape[3], 16, halo=0):
            seams[..., box.out_rows, box.out_cols] = network.refine(upsampled[..., box.rows, box.cols])
    diff = float((seams - untiled).abs().max())
    assert diff > 100 * tiling.TILE_ATOL, f"halo 0 should break the seams, but max diff is {diff:.3e}"


@pytest.mark.parametrize(
    ("tile", "shape", "expected"),
    [
        (None, (256, 256), None),  # x3 -> 768x768: small enough to run whole
        (None, (540, 960), tiling.DEFAULT_TILE),  # x3 -> 1620x2880: tiled by default
        (0, (540, 960), None),  # --tile 0: never
        (100, (256, 256), 100),
        (1000, (256, 256), None),  # one tile would hold the whole output
    ],
)
def test_choose_tile(tile, shape, expected) -> None:
    assert tiling.choose_tile(*shape, sd.Factor.parse("3"), tile) == expected


def test_halo_matches_the_graph(trained, trained_onnx) -> None:
    """The one halo (from the model's kernels) is also the exported graph's: its Conv kernel radii add up to it."""
    network, path = trained(TUTORIAL_MODEL), trained_onnx(TUTORIAL_MODEL)
    assert pytorch.model_halo(network) == 6, f"kernel radii 4 + 0 + 2, got {pytorch.model_halo(network)}"
    proto = onnx.load(path)
    shapes = {t.name: tuple(t.dims) for t in proto.graph.initializer}
    radii = [shapes[n.input[1]][2] // 2 for n in proto.graph.node if n.op_type == "Conv"]
    assert sum(radii) == pytorch.model_halo(network), f"the graph's kernel radii are {radii}"
