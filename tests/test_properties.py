"""Property-based tests: factor parsing over generated text, and ONNX Runtime vs PyTorch over random small shapes
and factors anywhere in [1, 6] (hypothesis draws them; a failure prints the smallest example it found)."""

from __future__ import annotations

import math
import os

import numpy as np
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import srcnn_dynamic as sd
from srcnn import graph, pytorch, runtime, tiling

# 40 draws keep the suite quick; PARITY_EXAMPLES=1500 python -m pytest tests/test_properties.py searches deeper
PARITY_EXAMPLES = int(os.environ.get("PARITY_EXAMPLES", "40"))
factors = st.floats(min_value=1.0, max_value=6.0, allow_nan=False, allow_infinity=False)


@given(st.text(max_size=12))
def test_any_text_parses_or_gives_a_one_line_error(text) -> None:
    try:
        factor = sd.Factor.parse(text)
    except sd.SrcnnError as exc:
        assert "\n" not in str(exc), f"multi-line message for {text!r}: {exc}"
        return
    for value in (factor.height, factor.width):
        assert math.isfinite(value) and value >= sd.MIN_FACTOR, f"{text!r} parsed to {factor}"


@given(factors, factors)
def test_valid_factors_round_trip(height, width) -> None:
    factor = sd.Factor.parse(f"{height!r}x{width!r}")
    assert factor == sd.Factor(height, width)
    assert sd.Factor.parse(factor.tag) == sd.Factor(float(f"{height:g}"), float(f"{width:g}")), factor.tag
    assert sd.Factor.parse(repr(height)) == sd.Factor(height, height)


@given(st.floats(allow_nan=True, allow_infinity=True).filter(lambda v: not (math.isfinite(v) and v >= 1.0)))
def test_out_of_range_factors_are_refused(value) -> None:
    try:
        sd.Factor.parse(repr(value))
    except sd.SrcnnError as exc:
        assert "finite number >= 1" in str(exc), str(exc)
    else:
        raise AssertionError(f"{value!r} was accepted")


@settings(max_examples=PARITY_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    height=st.integers(1, 24), width=st.integers(1, 24), batch=st.integers(1, 2),
    fh=factors, fw=factors, resize=st.sampled_from(list(graph.REWRITES)), seed=st.integers(0, 2**16),
)
def test_onnxruntime_matches_pytorch_anywhere(height, width, batch, fh, fw, resize, seed, model, session_for) -> None:
    factor = sd.Factor(fh, fw)
    # ONNX Runtime's own Resize returns its input as it is when the size does not change (e.g. 3x3 at x1.25 ->
    # 3x3); test_parity.py::test_onnxruntime_resize_copies_when_the_size_does_not_change pins that down. The
    # matmul rewrite (the default) follows the factor as PyTorch does, so it is tested on every draw.
    assume(resize != "resize" or not runtime.resize_keeps_the_size(height, width, factor))
    image = torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))
    expected = pytorch.run_torch(model, image, factor)
    actual = sd.run_session(session_for("torchscript", "cpu", resize), image.numpy(), factor)
    assert actual.shape == expected.shape == (batch, 3, *factor.output_size(height, width)), (
        f"{image.shape} x({fh!r}, {fw!r}): ORT {actual.shape}, PyTorch {expected.shape}"
    )
    diff = float(np.max(np.abs(expected - actual)))
    assert diff <= sd.PARITY_ATOL, f"{image.shape} x({fh!r}, {fw!r}), resize={resize}: max |ORT - PyTorch| = {diff:.3e}"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    height=st.integers(1, 20), width=st.integers(1, 20), fh=factors, fw=factors, tile=st.integers(7, 48),
    seed=st.integers(0, 2**16),
)
def test_tiles_anywhere_give_the_untiled_result(height, width, fh, fw, tile, seed, model, runner_for) -> None:
    factor = sd.Factor(fh, fw)
    image = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(seed))
    untiled = pytorch.run_torch(model, image, factor)
    tiled_runs = [  # PyTorch tiled against itself untiled; ONNX Runtime tiled against PyTorch, across runtimes
        ("PyTorch", pytorch.run_torch(model, image, factor, tile), tiling.TILE_ATOL),
        ("ONNX Runtime", runner_for("torchscript", "cpu")(image.numpy(), factor, tile), sd.PARITY_ATOL),
    ]
    for name, tiled, atol in tiled_runs:
        diff = float(np.max(np.abs(tiled - untiled)))
        assert diff <= atol, (
            f"{name}, {image.shape} x({fh!r}, {fw!r}), tiles of {tile}: max |tiled - untiled PyTorch| = {diff:.3e}"
        )
