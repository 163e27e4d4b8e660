"""Benchmark SRCNN in PyTorch eager and in each runtime and precision: one table, every figure measured in this run.

    python benchmark.py                  # CPU: 256x256 x3, 540x960 x4 (to 4K UHD), 1024x1024 x2
    python benchmark.py --device cuda    # PyTorch CUDA vs ONNX Runtime CUDA with I/O binding (TF32 off)
    python benchmark.py --case 256x256x3 --runs 3
    python benchmark.py --model factor-aware  # one model (default: every model, side by side)

Each configuration runs in its own worker process, so its peak memory (the process's peak resident set, as
the operating system reports it) is its own. Times are medians of --runs runs after one warm-up run. GFLOP/s
counts the useful work: the multiply-adds of the three convolutions at the output size (20,000 per output
pixel) and of the separable bicubic resize (4 taps along each axis), two FLOPs each; tiles recompute a small
halo that is not counted. The reference for the machine's speed is a matrix product (torch.mm) in the row's
precision, measured in the same run with the same threads. Every output is compared with PyTorch eager's float32
one (of the same model) by its precision's budget (srcnn.core.within_budget: max |diff| in fp32, PSNR in bf16);
each runtime's time with ONNX Runtime's, and each model's with the tutorial's model's, measured in the same run.

Configurations:
  PyTorch eager     model(x, factor) under torch.inference_mode(), untiled: the baseline
  PyTorch tiled     srcnn.pytorch.run_torch() as python -m srcnn --check runs it (tiles for large outputs)
  ORT as exported   the exported graph (cubic Resize) in a default ONNX Runtime session, untiled
  ORT               as python -m srcnn runs it: Resize rewritten (--ort-resize auto), tiles for large outputs
  OpenVINO as exported, OpenVINO: the same two in OpenVINO (python -m srcnn --runtime openvino)
  and, on a CPU with AVX512-BF16 or AMX: PyTorch bf16 (autocast), OpenVINO bf16 (--precision bf16: the
  convolutions in bf16, the upsampling in float32)
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import platform
import resource
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import torch

import srcnn.startup  # noqa: F401, I001 - first: a signal while the libraries load exits quietly
import srcnn_dynamic as sd
from srcnn.errors import run_guarded
from srcnn import core, graph
from srcnn.core import PARITY_ATOL, budget_text, within_budget
from srcnn.images import read_picture
from srcnn.models import MODELS, TUTORIAL_MODEL
from srcnn.pytorch import run_torch
from srcnn.runtime import resize_form
from srcnn.runtimes import create_runner, runtime_class
from srcnn.tiling import choose_tile
from srcnn.weights import load_model

log = logging.getLogger("benchmark")

CASES = ("256x256x3", "540x960x4", "1024x1024x2")  # HxWxFACTOR: the tutorial's case, 4K UHD out, a large x2
RUNS = 5  # timed runs per configuration (median reported), after WARMUP_RUNS untimed ones
WARMUP_RUNS = 1  # the first run allocates memory and picks convolution algorithms
MATMUL_SIDE = 4096  # the throughput reference: a 4096^3 float32 torch.mm, 137 GFLOP
MATMUL_RUNS = 5

# A configuration's name says what runs it: "pytorch...", or a srcnn.runtimes name; "-exported": the whole graph as
# exported (cubic Resize), untiled; "-bf16": bfloat16 (PyTorch: autocast; a runtime: its convolutions)
CPU_CONFIGS = ("pytorch", "pytorch-tiled", "ort-exported", "ort", "openvino-exported", "openvino")
BF16_CONFIGS = ("pytorch-bf16", "openvino-bf16")  # where the CPU computes bfloat16 (AVX512-BF16 or AMX)
CUDA_CONFIGS = ("pytorch", "ort-exported", "ort")  # on the GPU nothing is tiled: the memory is there
CONFIG_LABELS = {
    "pytorch": "PyTorch eager",
    "pytorch-tiled": "PyTorch tiled",
    "pytorch-bf16": "PyTorch bf16",
    "ort-exported": "ORT as exported",
    "ort": "ORT",
    "openvino-exported": "OpenVINO as exported",
    "openvino": "OpenVINO",
    "openvino-bf16": "OpenVINO bf16",
}
REFERENCE_RUNTIME = "ort"  # each runtime's time is also given as a ratio of this one's, on the same case


def config_precision(config: str) -> str:
    return "bf16" if "-bf16" in config else "fp32"


def config_runtime(config: str) -> str | None:
    """The srcnn.runtimes name that runs `config`, or None for PyTorch."""
    return None if config.startswith("pytorch") else config.split("-")[0]


@dataclass(frozen=True)
class Case:
    height: int
    width: int
    factor: sd.Factor

    @classmethod
    def parse(cls, text: str) -> Case:
        """'540x960x4' -> 540x960 input at x4; '64x64x5x6' -> at 5x6."""
        parts = text.lower().split("x")
        try:
            height, width = int(parts[0]), int(parts[1])
        except (ValueError, IndexError):
            raise sd.SrcnnError(f"case {text!r}: expected HEIGHTxWIDTHxFACTOR, such as 540x960x4") from None
        if len(parts) < 3 or height < 1 or width < 1:
            raise sd.SrcnnError(f"case {text!r}: expected HEIGHTxWIDTHxFACTOR, such as 540x960x4")
        return cls(height, width, sd.Factor.parse("x".join(parts[2:])))

    @property
    def name(self) -> str:
        out_h, out_w = self.output_size
        return f"{self.height}x{self.width} x{self.factor.tag} -> {out_h}x{out_w}"

    @property
    def output_size(self) -> tuple[int, int]:
        return self.factor.output_size(self.height, self.width)

    def flops(self, model: torch.nn.Module) -> float:
        """Useful floating-point operations: 2 per multiply-add of the convolutions and the separable resize."""
        out_h, out_w = self.output_size
        per_pixel = sum(conv.in_channels * conv.out_channels * math.prod(conv.kernel_size)  # 20,000 MACs, as run
                        for conv in (model.conv1, model.conv2, model.conv3))
        resize = 3 * (out_h * self.width * 4 + out_h * out_w * 4)  # rows, then columns, 4 taps each, 3 channels
        return 2.0 * (out_h * out_w * per_pixel + resize)

    def image(self) -> np.ndarray:
        """face.png resized to the case's input size: a real photo, the same in every worker. (1, 3, H, W)"""
        face = read_picture(sd.DEFAULT_IMAGE).rgb[0].transpose(1, 2, 0)  # (256, 256, 3)
        resized = cv2.resize(face, (self.width, self.height), interpolation=cv2.INTER_CUBIC)
        return np.ascontiguousarray(np.clip(resized, 0.0, 1.0).transpose(2, 0, 1)[None])


@dataclass
class Measurement:
    config: str
    case: str
    tile: int | None
    median_ms: float
    idle_mb: float  # peak resident set before the first run: interpreter, libraries, model, session
    peak_mb: float  # peak resident set over the whole worker
    gpu_peak_mb: float | None  # PyTorch's CUDA allocator peak; None where not measurable
    output: str  # .npy file of the last output
    model: str = TUTORIAL_MODEL  # a srcnn.models name


# ----------------------------------------------------------------------------------------------------------------
# Worker: one configuration on one case, in a fresh process


def peak_rss_mb() -> float:
    """This process's peak resident set so far, in MB.

    Linux's VmHWM: ru_maxrss would start from the parent's resident set, which a forked worker inherits.
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def timed_after_warmup(fn: Callable[[], object], runs: int,
                       sync: Callable[[], object] = lambda: None) -> tuple[object, float]:
    """sd.timed after WARMUP_RUNS untimed runs, each timed run waiting for `sync` (e.g. the GPU) before it ends."""
    for _ in range(WARMUP_RUNS):
        fn()
    sync()

    def synced() -> object:
        result = fn()
        sync()
        return result

    return sd.timed(synced, runs)


def measure(config: str, case: Case, *, device: sd.Device, onnx_path: Path, weights: Path | None, model: str,
            threads: int, runs: int, output: Path) -> Measurement:
    torch.set_num_threads(threads)
    image = case.image()  # (1, 3, H, W)
    sync: Callable[[], None] = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    runtime, precision = config_runtime(config), config_precision(config)
    whole = config.endswith("exported") or config in ("pytorch", "pytorch-bf16")  # untiled
    tile = None if whole else choose_tile(case.height, case.width, case.factor, None)
    if device == "cuda":
        tile = None
    gpu_peak = None
    if config.startswith("pytorch"):
        network = load_model(weights, model).to(device)
        x, factor = torch.from_numpy(image).to(device), case.factor.tensor(device)
        if config in ("pytorch", "pytorch-bf16"):
            def fn() -> torch.Tensor:
                with torch.inference_mode(), torch.backends.cudnn.flags(enabled=True, allow_tf32=sd.CUDA_ALLOW_TF32), \
                        torch.autocast(device, dtype=torch.bfloat16, enabled=precision == "bf16"):
                    return network(x, factor).float()
        else:
            def fn() -> np.ndarray:
                return run_torch(network, x, case.factor, tile)
        idle = peak_rss_mb()
        result, ms = timed_after_warmup(fn, runs, sync)
        out = result.cpu().numpy() if isinstance(result, torch.Tensor) else result
        if device == "cuda":
            gpu_peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        assert runtime is not None, config
        proto = onnx.load(onnx_path)
        if device == "cuda":  # the whole graph in one session, its inputs and outputs on the GPU
            form = "resize" if whole else resize_form("auto", case.height, case.width, case.factor)
            fn = _io_binding_runner(graph.form_session(proto, device, resize=form, threads=threads), image,
                                    case.factor)
        elif whole:  # the graph as exported, as a plain user of the runtime runs the file
            run_whole = runtime_class(runtime).whole(graph.rewritten(proto, "resize").SerializeToString(), device,
                                                     precision, threads)

            def fn() -> np.ndarray:
                return run_whole(image, case.factor)
        else:  # as python -m srcnn runs it
            runner = create_runner(graph.graph_parts(proto), runtime, device, threads=threads, precision=precision)

            def fn() -> np.ndarray:
                return runner(image, case.factor, tile)
        idle = peak_rss_mb()
        result, ms = timed_after_warmup(fn, runs)  # run_with_iobinding returns after the GPU is done
        out = result if isinstance(result, np.ndarray) else result()
    np.save(output, out)
    return Measurement(config, case.name, tile, ms, idle, peak_rss_mb(), gpu_peak, str(output), model)


def _io_binding_runner(session: ort.InferenceSession, image: np.ndarray, factor: sd.Factor) -> Callable[[], object]:
    """ONNX Runtime CUDA with input and output on the GPU: no host copies inside the timed call."""
    x = ort.OrtValue.ortvalue_from_numpy(image, "cuda", 0)
    binding = session.io_binding()
    binding.bind_ortvalue_input(sd.INPUT_NAMES[0], x)
    binding.bind_cpu_input(sd.INPUT_NAMES[1], factor.tensor().numpy())  # shapes are computed on the host
    binding.bind_output(sd.OUTPUT_NAME, "cuda")

    def fn() -> Callable[[], np.ndarray]:
        session.run_with_iobinding(binding)
        return lambda: binding.copy_outputs_to_cpu()[0]

    return fn


def worker_main(spec: str) -> int:
    args = json.loads(spec)
    measurement = measure(
        args["config"], Case.parse(args["case"]), device=args["device"], onnx_path=Path(args["onnx"]),
        weights=Path(args["weights"]) if args["weights"] else None, model=args["model"], threads=args["threads"],
        runs=args["runs"], output=Path(args["output"]),
    )
    print(json.dumps(asdict(measurement)))
    return 0


# ----------------------------------------------------------------------------------------------------------------
# Parent: matmul reference, one worker per configuration and case, the table


def matmul_gflops(device: sd.Device, threads: int, side: int = MATMUL_SIDE, runs: int = MATMUL_RUNS,
                  precision: str = "fp32") -> float:
    """This machine's matrix-product throughput (GFLOP/s) in `precision`, the ceiling the model is compared with."""
    torch.set_num_threads(threads)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a = torch.rand(side, side, device=device, dtype=dtype)
    b = torch.rand(side, side, device=device, dtype=dtype)
    sync: Callable[[], None] = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = sd.CUDA_ALLOW_TF32  # float32 throughput, like the model's
    try:
        _, ms = timed_after_warmup(lambda: torch.mm(a, b), runs, sync)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved
    return 2.0 * side**3 / (ms / 1e3) / 1e9


def run_worker(config: str, case: Case, *, device: sd.Device, onnx_path: Path, weights: Path | None, model: str,
               threads: int, runs: int, folder: Path) -> Measurement:
    spec = {
        "config": config, "case": f"{case.height}x{case.width}x{case.factor.tag}", "device": device,
        "onnx": str(onnx_path), "weights": str(weights) if weights else None, "model": model, "threads": threads,
        "runs": runs, "output": str(folder / f"{model}_{config}_{case.height}x{case.width}x{case.factor.tag}.npy"),
    }
    done = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise sd.SrcnnError(f"{model}: {CONFIG_LABELS[config]} on {case.name} failed in its worker: {last}")
    return Measurement(**json.loads(done.stdout.strip().splitlines()[-1]))


@dataclass(frozen=True)
class Row:
    case: Case
    measurement: Measurement
    speedup: float  # PyTorch eager's time / this configuration's time
    gflops: float
    of_matmul: float  # of the matmul in the row's precision
    max_diff: float  # max |output - PyTorch eager's float32 output|
    psnr_db: float  # of the output against PyTorch eager's float32 output

    @property
    def precision(self) -> str:
        return config_precision(self.measurement.config)

    @property
    def ok(self) -> bool:
        return within_budget(self.precision, self.max_diff, self.psnr_db)


def bf16_skip_reason(device: sd.Device) -> str | None:
    """Why the bf16 rows cannot run here (the CPU lacks bf16 units, or OpenVINO is absent), or None."""
    try:
        runtime_class("openvino").check(device, "bf16")
    except core.SrcnnError as exc:
        return str(exc)
    return None


def benchmark(cases: Sequence[Case], *, device: sd.Device, threads: int, runs: int, weights: Path | None,
              folder: Path, matmul_side: int = MATMUL_SIDE, model_names: Sequence[str] = (TUTORIAL_MODEL,),
              configs: Sequence[str] = CPU_CONFIGS) -> tuple[list[Row], dict[str, float]]:
    """Every model's configurations on every case, and the matmul reference in each precision they use; the rows and
    the matmul GFLOP/s by precision."""
    reference_gflops = {}
    for precision in dict.fromkeys(map(config_precision, configs)):
        log.info("measuring %s matmul throughput (%d^3 torch.mm, %d threads)", precision, matmul_side, threads)
        reference_gflops[precision] = matmul_gflops(device, threads, matmul_side, precision=precision)
    rows = []
    for name in model_names:
        model = load_model(weights, name)
        onnx_path = folder / f"{name}.onnx"
        sd.export_onnx(model, onnx_path)  # the model's graph, as exported
        rows += _model_rows(name, model, cases, configs, device=device, threads=threads, runs=runs, weights=weights,
                            folder=folder, onnx_path=onnx_path, reference_gflops=reference_gflops)
    return rows, reference_gflops


def _model_rows(name: str, model: torch.nn.Module, cases: Sequence[Case], configs: Sequence[str], *,
                device: sd.Device, threads: int, runs: int, weights: Path | None, folder: Path, onnx_path: Path,
                reference_gflops: dict[str, float]) -> list[Row]:
    """One model's configurations on every case."""
    rows = []
    for case in cases:
        baseline: Measurement | None = None
        baseline_out: np.ndarray | None = None
        tiled = device == "cpu" and choose_tile(case.height, case.width, case.factor, None) is not None
        for config in configs:
            if config == "pytorch-tiled" and not tiled:
                continue  # untiled, it is PyTorch eager again
            log.info("%s, %s: %s", name, case.name, CONFIG_LABELS[config])
            m = run_worker(config, case, device=device, onnx_path=onnx_path, weights=weights, model=name,
                           threads=threads, runs=runs, folder=folder)
            out = np.load(m.output)
            Path(m.output).unlink()
            if baseline is None:
                baseline, baseline_out = m, out  # PyTorch eager comes first
            assert baseline_out is not None
            gflops = case.flops(model) / (m.median_ms / 1e3) / 1e9
            rows.append(Row(case, m, baseline.median_ms / m.median_ms, gflops,
                            gflops / reference_gflops[config_precision(config)],
                            float(np.max(np.abs(out - baseline_out))), sd.psnr(baseline_out, out)))
    return rows


def format_table(rows: Sequence[Row]) -> str:
    header = ("model", "case", "runtime", "tiles", "median ms", "vs PyTorch", "GFLOP/s", "of matmul", "peak MB",
              "idle MB", "max |diff|", "PSNR", "parity")
    lines = []
    for r in rows:
        m = r.measurement
        peak = f"{m.peak_mb:.0f}" + (f" (GPU {m.gpu_peak_mb:.0f})" if m.gpu_peak_mb is not None else "")
        lines.append((
            m.model, r.case.name, CONFIG_LABELS[m.config], str(m.tile) if m.tile else "-", f"{m.median_ms:.1f}",
            f"{r.speedup:.2f}x", f"{r.gflops:.0f}", f"{r.of_matmul:.0%}", peak, f"{m.idle_mb:.0f}", f"{r.max_diff:.1e}",
            f"{r.psnr_db:.1f} dB", "ok" if r.ok else f"FAIL ({budget_text(r.precision)})",
        ))
    return sd.render_table(header, lines, left=4)


def model_costs(rows: Sequence[Row]) -> list[str]:
    """Each model's ONNX Runtime time over the tutorial's model's on each case, both measured in this run."""
    ort = {(r.measurement.model, r.case.name): r.measurement.median_ms for r in rows if r.measurement.config == "ort"}
    tutorial = next(kind.name for kind in MODELS.values() if kind.tutorial)
    return [f"{model} on {case}: ONNX Runtime {ms / ort[tutorial, case]:.2f}x the {tutorial} model's time"
            for (model, case), ms in ort.items() if model != tutorial and (tutorial, case) in ort]


def runtime_costs(rows: Sequence[Row]) -> list[str]:
    """Each runtime and precision's time over ONNX Runtime's (float32, as python -m srcnn runs it) on each case."""
    by = {(r.measurement.model, r.case.name, r.measurement.config): r.measurement.median_ms for r in rows}
    return [f"{model} on {case}: {CONFIG_LABELS[config]} {by[model, case, REFERENCE_RUNTIME] / ms:.2f}x ORT's speed"
            for (model, case, config), ms in by.items()
            if config_runtime(config) not in (None, REFERENCE_RUNTIME) and (model, case, REFERENCE_RUNTIME) in by]


def cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def describe_machine(device: sd.Device, threads: int, reference_gflops: dict[str, float], matmul_side: int) -> str:
    where = torch.cuda.get_device_name() if device == "cuda" else f"{cpu_name()}, {threads} threads"
    tf32 = f", TF32 {'on' if sd.CUDA_ALLOW_TF32 else 'off'}" if device == "cuda" else ""
    versions = f"torch {torch.__version__}, onnxruntime {ort.__version__}"
    if device == "cpu":
        import openvino  # noqa: PLC0415 - installed with the project; loaded here for its version alone

        versions += f", openvino {openvino.__version__.split('-')[0]}"
    matmuls = ", ".join(f"{p} {g:.0f}" for p, g in reference_gflops.items())
    return f"{where}{tf32}; {versions}; matmul GFLOP/s: {matmuls} ({matmul_side}^3 torch.mm)"


def case_arg(text: str) -> Case:
    try:
        return Case.parse(text)
    except sd.SrcnnError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--worker"]:
        return worker_main(argv[1])
    parser = sd.OneLineErrorParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", type=case_arg, action="append", metavar="HxWxF",
                        help=f"input size and factor, repeatable (default: {', '.join(CASES)})")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="(default: %(default)s)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), metavar="N",
                        help="intra-op threads for PyTorch and ONNX Runtime alike (default: %(default)s, PyTorch's"
                        " choice on this machine)")
    parser.add_argument("--runs", type=int, default=RUNS, metavar="N", help="timed runs per figure (default: %(default)s)")
    parser.add_argument("--matmul-side", type=int, default=MATMUL_SIDE, metavar="N",
                        help="side of the reference torch.mm (default: %(default)s; smaller only for quick checks)")
    parser.add_argument("--model", choices=MODELS, action="append",
                        help="repeatable (default: every model: " + ", ".join(MODELS) + ")")
    parser.add_argument("--weights", type=Path, metavar="PATH",
                        help="with one --model: this state dict instead of its shipped weights")
    args = parser.parse_args(argv)
    args.model = list(dict.fromkeys(args.model or MODELS))
    if args.weights is not None and len(args.model) != 1:
        parser.error(f"--weights {args.weights}: name the one --model they are for")
    if min(args.threads, args.runs, args.matmul_side) < 1:
        parser.error("--threads, --runs and --matmul-side must be positive")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    log.setLevel(logging.INFO)
    sd.log.setLevel(logging.WARNING)
    return run_guarded(lambda: run(args))


def run(args: argparse.Namespace) -> int:
    """Measure every case, print the table; return the exit code."""
    cases = args.case or [Case.parse(c) for c in CASES]
    sd.check_device(args.device)
    configs = list(CUDA_CONFIGS if args.device == "cuda" else CPU_CONFIGS)
    skipped = bf16_skip_reason(args.device) if args.device == "cpu" else "bf16 rows run on the CPU"
    configs += [] if skipped else list(BF16_CONFIGS)
    with tempfile.TemporaryDirectory(prefix="srcnn-benchmark-") as folder:
        rows, reference = benchmark(cases, device=args.device, threads=args.threads, runs=args.runs,
                                    weights=args.weights, folder=Path(folder), matmul_side=args.matmul_side,
                                    model_names=args.model, configs=configs)
    print(describe_machine(args.device, args.threads, reference, args.matmul_side))
    print(f"median of {args.runs} runs after {WARMUP_RUNS} warm-up; peak/idle MB: the worker process's resident set;"
          f" parity against PyTorch eager float32: max |diff| <= {PARITY_ATOL:g} (fp32), {budget_text('bf16')} (bf16)")
    print(format_table(rows))
    for line in [*model_costs(rows), *runtime_costs(rows)]:
        print(line)
    if skipped:
        print(f"no bf16 rows: {skipped}")
    if bad := [r for r in rows if not r.ok]:
        log.error("%d configuration(s) differ from PyTorch eager beyond their precision's budget", len(bad))
        return sd.EXIT_MISMATCH
    return sd.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
