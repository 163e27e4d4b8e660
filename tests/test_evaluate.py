"""The shipped weights really super-resolve, and evaluate.py reports the same numbers through ONNX Runtime."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from conftest import bf16_skip_reason

import evaluate
import srcnn_dynamic as sd
from srcnn import data, graph, runtimes, weights

SWEEP = [f"{2 + q / 4:g}" for q in range(9)] + ["2.1", "3.3"]  # [2, 4] in quarter steps, and two off the grid

# Mean Y-PSNR gains over bicubic on the validation photos that the shipped weights must keep (dB). They were set at
# the measured gains less 0.05 dB for the weights before these (python evaluate.py: x2 +0.61, x3 +0.66, x4 +0.29), so
# retrained or edited weights that lose quality fail here; they are kept, not lowered, for the shipped weights
# (+0.62, +0.64, +0.27: the same training, a moving average of its weights, docs/training.md's seventh round). They
# are below the targets of docs/training.md (+1.0 / +1.1 / +0.8), which these weights do not reach: docs/training.md
# says where the gains stopped.
GAIN_FLOORS = {"2": 0.56, "3": 0.61, "4": 0.24}
# The soft case at x2. The mean's floor is the project's target, a loss of at most data.SOFT_LOSS_LIMIT (1 dB), which
# train.py's checkpoint choice also holds to (measured: -0.81 dB). The worst image's floor is its measured gain
# (-1.72 dB, astronaut) less 0.05 dB; it was -1.98 for the weights before these, which lost 1.93 dB there.
SOFT_MEAN_FLOOR = -data.SOFT_LOSS_LIMIT
SOFT_FLOOR = -1.77


@pytest.fixture(scope="module")
def trained() -> sd.SuperResolutionNet:
    if not sd.DEFAULT_WEIGHTS.is_file():
        pytest.fail(f"{sd.DEFAULT_WEIGHTS} is missing: the project ships trained weights (python train.py)")
    return weights.load_model(sd.DEFAULT_WEIGHTS)


def test_never_worse_than_bicubic_from_x2_to_x4(trained) -> None:
    images = evaluate.load_images(None)
    factors = [sd.Factor.parse(f) for f in SWEEP]
    gains = {}
    for factor in factors:
        values = []
        for _, image in images:
            lr, hr = data.make_pair(image, factor)
            with torch.inference_mode():
                sr = trained(lr, factor.tensor())
            values.append(data.psnr_y(hr, sr, factor) - data.psnr_y(hr, evaluate.bicubic(lr, factor), factor))
        gains[factor.tag] = float(np.mean(values))
    summary = ", ".join(f"x{k}: {v:+.2f} dB" for k, v in gains.items())
    assert min(gains.values()) > 0, f"SRCNN must beat bicubic at every factor in [2, 4]: {summary}"
    for tag, floor in GAIN_FLOORS.items():
        assert gains[tag] >= floor, f"x{tag} gain fell below the shipped {floor:+.2f} dB: {summary}"


def test_soft_photos_lose_little(trained) -> None:
    """The soft case (photos blurred before degradation), where bicubic is already near the truth: the model may
    sharpen a little, but on average it may lose no more than SOFT_MEAN_FLOOR at x2, nor any image SOFT_FLOOR."""
    factor, gains = sd.Factor.parse("2"), {}
    for name, image in evaluate.soft_images():
        lr, hr = data.make_pair(image, factor)
        with torch.inference_mode():
            sr = trained(lr, factor.tensor())
        gains[name] = data.psnr_y(hr, sr, factor) - data.psnr_y(hr, evaluate.bicubic(lr, factor), factor)
    summary = ", ".join(f"{k}: {v:+.2f} dB" for k, v in gains.items())
    mean = float(np.mean(list(gains.values())))
    assert mean >= SOFT_MEAN_FLOOR, (
        f"soft photos lost {-mean:.2f} dB at x2 on average, more than {-SOFT_MEAN_FLOOR:.2f}: {summary}")
    assert min(gains.values()) >= SOFT_FLOOR, f"a soft photo lost more than {-SOFT_FLOOR:.2f} dB at x2: {summary}"


def test_evaluate_cli_on_a_folder(tmp_path, capsys) -> None:
    face = cv2.imread(str(sd.DEFAULT_IMAGE))
    cv2.imwrite(str(tmp_path / "a.png"), face[:120, :100])
    cv2.imwrite(str(tmp_path / "b.jpg"), face[100:, 50:])
    (tmp_path / "notes.txt").write_text("ignored: not an image suffix")
    assert evaluate.main(["--images", str(tmp_path), "--factor", "3", "--factor", "2.5", "--per-image"]) == 0
    table = capsys.readouterr().out
    for needle in ("a.png", "b.jpg", "x3", "x2.5", "mean of 2"):
        assert needle in table, f"{needle!r} missing from:\n{table}"


def test_onnxruntime_reproduces_the_psnr(trained, tmp_path) -> None:
    images = [(n, i[:, :, :96, :96]) for n, i in evaluate.load_images(None)]
    runner = runtimes.create_runner(graph.graph_parts(sd.export_onnx(trained, tmp_path / "m.onnx")))
    rows = evaluate.evaluate(trained, runner, images, [sd.Factor.parse("3")])  # as evaluate.py runs it
    for row in rows:
        assert abs(row.runtime_psnr - row.srcnn.psnr) <= evaluate.RUNTIME_PSNR_TOLERANCE["fp32"], f"{row}"


def test_evaluate_rejects_a_folder_without_images(tmp_path, capsys) -> None:
    assert evaluate.main(["--images", str(tmp_path)]) == sd.EXIT_USAGE
    assert "no images" in capsys.readouterr().err


# The factor-aware model's shipped weights (python evaluate.py): +0.55, +0.88, +0.92, +0.91, +0.76 dB at x1.5, x2,
# x2.5, x3, x4, and +0.32 / +1.75 dB on the soft case at x1.5 / x2 (the no-harm target: at least 0). The floors
# are those less 0.05 dB, so retrained or edited weights that lose quality fail here.
FACTOR_AWARE_GAIN_FLOORS = {"1.5": 0.50, "2": 0.83, "2.5": 0.87, "3": 0.86, "4": 0.71}
FACTOR_AWARE_SOFT_FLOORS = {"1.5": 0.27, "2": 1.70}


def mean_gains(network: torch.nn.Module, images: list[tuple[str, torch.Tensor]], tags: list[str]) -> dict[str, float]:
    """Mean Y-PSNR gain over bicubic of `network` on `images` at each factor tag."""
    gains = {}
    for tag in tags:
        factor, values = sd.Factor.parse(tag), []
        for _, image in images:
            lr, hr = data.make_pair(image, factor)
            with torch.inference_mode():
                sr = network(lr, factor.tensor())
            values.append(data.psnr_y(hr, sr, factor) - data.psnr_y(hr, evaluate.bicubic(lr, factor), factor))
        gains[tag] = float(np.mean(values))
    return gains


def test_the_factor_aware_model_beats_the_tutorials_at_every_factor(trained) -> None:
    """Why it is the default: sharper than the tutorial's model at every factor of the table, x1.5 included, where
    the tutorial's over-sharpens, and it leaves soft photos at x1.5 and x2 better than bicubic, where the tutorial's
    loses."""
    factor_aware = weights.load_model(None, "factor-aware")
    images, tags = evaluate.load_images(None), list(FACTOR_AWARE_GAIN_FLOORS)
    ours, tutorial = mean_gains(factor_aware, images, tags), mean_gains(trained, images, tags)
    summary = ", ".join(f"x{tag}: {ours[tag]:+.2f} (tutorial {tutorial[tag]:+.2f}) dB" for tag in tags)
    for tag, floor in FACTOR_AWARE_GAIN_FLOORS.items():
        assert ours[tag] >= floor, f"x{tag} gain fell below the shipped {floor:+.2f} dB: {summary}"
        assert ours[tag] > tutorial[tag], f"x{tag}: the factor-aware model must beat the tutorial's: {summary}"
    soft = mean_gains(factor_aware, evaluate.soft_images(), list(FACTOR_AWARE_SOFT_FLOORS))
    for tag, floor in FACTOR_AWARE_SOFT_FLOORS.items():
        assert soft[tag] >= floor, f"soft x{tag}: {soft[tag]:+.2f} dB, below the shipped {floor:+.2f} dB: {soft}"


def test_bf16_is_refused_before_any_work_where_the_cpu_lacks_it(capsys) -> None:
    """evaluate.py --runtime openvino --precision bf16 measures what bf16 costs on a CPU with bf16 units; elsewhere
    it is one line, before a photo is read or a graph exported."""
    if (reason := bf16_skip_reason()) is None:
        pytest.skip("this CPU computes bf16: evaluate.py measures it (python evaluate.py --runtime openvino"
                    " --precision bf16)")
    assert evaluate.main(["--runtime", "openvino", "--precision", "bf16"]) == sd.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and reason in err, err
