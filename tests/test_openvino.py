"""OpenVINO runs the exported graph as ONNX Runtime does: equal to PyTorch at unseen factors and sizes, in float32.

The same parametrization as test_parity.py: every model, both exporters, the graph as exported and both rewrites of
its Resize, factors and shapes never seen at export. The product's path (the graph's parts: the upsampling in a
form, then the convolutions at the factor) and the exported graph whole, as one compiled model, are both judged.
bf16 needs a CPU with AVX512-BF16 or AMX: here it is refused in one line, and its budget is tested where it runs.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from conftest import MODEL_NAMES, bf16_skip_reason, runtime_skip_reason

import srcnn_dynamic as sd
from srcnn import app, core, graph, pytorch, report, runtimes
from test_parity import FACTORS, KEPT_SIZE_CASES, SHAPES

pytestmark = pytest.mark.skipif(runtime_skip_reason("openvino") is not None,
                                reason=str(runtime_skip_reason("openvino")))


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("factor_text", FACTORS)
@pytest.mark.parametrize("resize", graph.REWRITES)
@pytest.mark.parametrize("exporter", sd.EXPORTERS)
@pytest.mark.parametrize("model_name", MODEL_NAMES)
def test_openvino_matches_pytorch(model_name, exporter, resize, factor_text, shape, model_on, runner_for) -> None:
    factor = sd.Factor.parse(factor_text)
    image = torch.rand(shape, generator=torch.Generator().manual_seed(1))
    expected = pytorch.run_torch(model_on("cpu", model_name), image, factor)
    actual = runner_for(exporter, "cpu", resize, model_name, "openvino")(image.numpy(), factor)
    assert actual.shape == expected.shape, f"OpenVINO gave {actual.shape}, PyTorch {expected.shape}"
    diff = float(np.max(np.abs(expected - actual)))
    assert diff <= sd.PARITY_ATOL, (f"{model_name} x{factor.tag} {shape}, resize={resize}: max |OpenVINO - PyTorch| ="
                                    f" {diff:.3e} > {sd.PARITY_ATOL}")


@pytest.mark.parametrize("factor_text", ["4", "2.5", "5x6"])
@pytest.mark.parametrize("resize", graph.REWRITES)
@pytest.mark.parametrize("exporter", sd.EXPORTERS)
@pytest.mark.parametrize("model_name", MODEL_NAMES)
def test_openvino_runs_the_whole_graph(model_name, exporter, resize, factor_text, model_on, onnx_path) -> None:
    """The exported graph in one compiled model, `factor` fed as an input: it converts as it is, in each form."""
    factor = sd.Factor.parse(factor_text)
    image = torch.rand(2, 3, 37, 53, generator=torch.Generator().manual_seed(4))
    proto = graph.rewritten(onnx.load(onnx_path(exporter, model_name)), resize)
    run_whole = runtimes.runtime_class("openvino").whole(proto.SerializeToString(), "cpu")
    actual = run_whole(image.numpy(), factor)
    expected = pytorch.run_torch(model_on("cpu", model_name), image, factor)
    diff = float(np.max(np.abs(expected - actual)))
    assert diff <= sd.PARITY_ATOL, f"{model_name} x{factor.tag}, whole graph ({resize}): max diff {diff:.3e}"


@pytest.mark.parametrize(("height", "width", "factor_text"), KEPT_SIZE_CASES)
def test_openvino_resize_copies_where_onnxruntime_does(height, width, factor_text, model, runner_for) -> None:
    """OpenVINO 2026.4's Resize departs from the ONNX spec where ONNX Runtime's does (test_parity.py): when the
    output size equals the input size it returns its input unchanged. The rewrites follow the spec in OpenVINO too.
    If this test fails, OpenVINO has changed: say so beside ONNX Runtime's case in srcnn.app.upscale's warning."""
    factor = sd.Factor.parse(factor_text)
    image = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(5))
    expected = pytorch.run_torch(model, image, factor)
    as_it_does = pytorch.run_torch(model, image, sd.Factor(1.0, 1.0))  # no resampling at all
    exported = runner_for("torchscript", "cpu", "resize", "tutorial", "openvino")(image.numpy(), factor)
    copied = float(np.max(np.abs(exported - as_it_does)))
    assert copied <= sd.PARITY_ATOL, f"OpenVINO's Resize no longer copies its input ({copied:.3e})"
    followed = float(np.max(np.abs(exported - expected)))
    assert followed > 10 * sd.PARITY_ATOL, f"OpenVINO's Resize now follows the factor ({followed:.3e})"
    for form in ("matmul", "gather"):
        out = runner_for("torchscript", "cpu", form, "tutorial", "openvino")(image.numpy(), factor)
        diff = float(np.max(np.abs(out - expected)))
        assert diff <= sd.PARITY_ATOL, f"{form} rewrite: max |OpenVINO - PyTorch| = {diff:.3e}"


def test_check_in_openvino_names_its_results_and_table(tmp_path, capsys) -> None:
    """python -m srcnn --runtime openvino --check: PyTorch's result beside OpenVINO's, named and tabled as such."""
    from test_upscaler import files_under, photo

    photo(tmp_path / "a.png")
    checked = app.run(tmp_path / "a.png", [core.Factor.parse("2.5")], output_dir=tmp_path / "out", check=True, runs=1,
                      runtime="openvino", model="factor-aware")
    assert files_under(tmp_path / "out") == ["a_openvino_2.5.png", "a_torch_2.5.png"]
    code, out = report.finish(checked), capsys.readouterr().out
    assert code == core.EXIT_OK and "max |OpenVINO-PyTorch|" in out and "ok" in out, f"exit {code}:\n{out}"


def test_openvino_runs_on_the_cpu_alone() -> None:
    with pytest.raises(core.SrcnnError, match="--device cuda: this project runs OpenVINO on the CPU"):
        runtimes.runtime_class("openvino").check("cuda", "fp32")


@pytest.mark.skipif(bf16_skip_reason() is None, reason="this CPU computes bf16: the refusal does not apply")
def test_bf16_is_refused_in_one_line_where_the_cpu_lacks_it() -> None:
    with pytest.raises(core.SrcnnError, match="--precision bf16: this CPU .* has neither AVX512-BF16 nor AMX") as info:
        runtimes.runtime_class("openvino").check("cpu", "bf16")
    assert "\n" not in str(info.value)


@pytest.mark.skipif(bf16_skip_reason() is not None, reason=str(bf16_skip_reason()))
@pytest.mark.parametrize("factor_text", ["2", "3", "4", "2.5"])
@pytest.mark.parametrize("model_name", MODEL_NAMES)
def test_bf16_stays_within_its_budget(model_name, factor_text, onnx_path, model_on) -> None:
    """bf16 convolutions against PyTorch in float32: the PSNR budget srcnn.core derives (core.BF16_MIN_PSNR_DB)."""
    factor = sd.Factor.parse(factor_text)
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(6))
    runner = runtimes.create_runner(graph.graph_parts(onnx.load(onnx_path("torchscript", model_name))), "openvino",
                                    precision="bf16")
    expected = pytorch.run_torch(model_on("cpu", model_name), image, factor)
    psnr_db = sd.psnr(expected, runner(image.numpy(), factor))
    assert psnr_db >= core.BF16_MIN_PSNR_DB, f"{model_name} x{factor.tag}: bf16 at {psnr_db:.1f} dB from float32"
