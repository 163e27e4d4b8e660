"""benchmark.py: cases parse, the FLOP count is the model's, each configuration gives PyTorch's output, the CLI prints a table.

No timing is asserted here: speed is what benchmark.py reports, not what a test on a shared machine can check.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

import benchmark
import srcnn_dynamic as sd
from srcnn import core, models, pytorch, weights


def test_case_parsing() -> None:
    case = benchmark.Case.parse("540x960x4")
    assert (case.height, case.width, case.factor) == (540, 960, sd.Factor(4.0, 4.0))
    assert case.output_size == (2160, 3840)
    assert benchmark.Case.parse("64x48x5x6").factor == sd.Factor(5.0, 6.0)
    for bad in ("540x960", "ax960x4", "0x10x2", "10x10x0.5"):
        with pytest.raises(sd.SrcnnError):
            benchmark.Case.parse(bad)


@pytest.mark.parametrize("name", models.MODELS)
def test_flops_count_the_three_convolutions_and_the_resize(name) -> None:
    """As run: the factor-aware model's convolutions, once blended, are the tutorial's."""
    case = benchmark.Case.parse("256x256x3")
    model = models.MODELS[name].build()
    macs_per_pixel = 9 * 9 * 3 * 64 + 1 * 1 * 64 * 32 + 5 * 5 * 32 * 3  # conv1 + conv2 + conv3 = 20,000
    resize = 3 * (768 * 256 * 4 + 768 * 768 * 4)
    assert case.flops(model) == 2 * (768 * 768 * macs_per_pixel + resize)


BF16_SKIP = benchmark.bf16_skip_reason("cpu")


@pytest.mark.parametrize("config", [*benchmark.CPU_CONFIGS, *(
    pytest.param(c, marks=pytest.mark.skipif(BF16_SKIP is not None, reason=str(BF16_SKIP)))
    for c in benchmark.BF16_CONFIGS)])
def test_each_configuration_matches_pytorch(config, tmp_path) -> None:
    case = benchmark.Case.parse("40x30x2.5")
    onnx_path = tmp_path / "m.onnx"
    sd.export_onnx(weights.load_model(sd.DEFAULT_WEIGHTS), onnx_path)
    m = benchmark.measure(config, case, device="cpu", onnx_path=onnx_path, weights=sd.DEFAULT_WEIGHTS,
                          model="tutorial", threads=torch.get_num_threads(), runs=1, output=tmp_path / "out.npy")
    out = np.load(m.output)
    reference = pytorch.run_torch(weights.load_model(sd.DEFAULT_WEIGHTS), torch.from_numpy(case.image()), case.factor)
    diff, psnr_db = float(np.max(np.abs(out - reference))), sd.psnr(reference, out)
    assert out.shape == (1, 3, 100, 75), f"{config}: output {out.shape}"
    precision = benchmark.config_precision(config)
    assert core.within_budget(precision, diff, psnr_db), (f"{config}: max |output - PyTorch| = {diff:.2e}, PSNR"
                                                          f" {psnr_db:.1f} dB; budget {core.budget_text(precision)}")
    assert m.median_ms > 0 and m.peak_mb >= m.idle_mb > 0, f"{config}: {m}"


def test_cli_prints_the_table() -> None:
    done = subprocess.run(
        [sys.executable, "benchmark.py", "--case", "24x20x2.5", "--runs", "1", "--matmul-side", "256"],  # every model
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    lines = done.stdout.splitlines()
    assert "GFLOP/s" in lines[0] and "threads" in lines[0], f"machine line: {lines[0]!r}"
    for model in models.MODELS:
        table = [line for line in lines if line.startswith(f"{model} ") and "24x20 x2.5" in line
                 and not line.startswith(f"{model} on ")]  # the table's rows, not the ratio lines under it
        found = [label for label in benchmark.CONFIG_LABELS.values() if any(f"  {label}  " in row for row in table)]
        bf16 = ["PyTorch bf16", "OpenVINO bf16"] if BF16_SKIP is None else []
        assert sorted(found) == sorted(["PyTorch eager", "ORT as exported", "ORT", "OpenVINO as exported", "OpenVINO",
                                        *bf16]), f"{model} rows: {table}"  # a small case is not tiled
        assert all(row.rstrip().endswith("ok") for row in table), f"{model}: parity {table}"
    costs = [line for line in lines if "the tutorial model's time" in line]
    assert len(costs) == len(models.MODELS) - 1, f"each other model's ONNX Runtime time against the tutorial's: {lines}"
    speeds = [line for line in lines if "ORT's speed" in line]
    assert len(speeds) == len(models.MODELS) * (2 + len(bf16) // 2), f"each runtime's speed against ORT's: {lines}"
    assert BF16_SKIP is None or f"no bf16 rows: {BF16_SKIP}" in lines, f"the bf16 rows' absence, said: {lines}"


def test_cli_rejects_a_bad_case() -> None:
    done = subprocess.run([sys.executable, "benchmark.py", "--case", "big"], capture_output=True, text=True, timeout=120)
    assert done.returncode == sd.EXIT_USAGE and done.stderr.count("\n") == 1, f"{done.returncode}: {done.stderr!r}"
    assert "HEIGHTxWIDTHxFACTOR" in done.stderr, done.stderr
