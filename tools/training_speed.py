"""Training steps per second of train.py's step on this machine, with each speed option, for docs/training.md.

    python tools/training_speed.py            # about 3 minutes on a 2-core CPU; run it on a quiet machine
    python tools/training_speed.py --device cuda

Each row times train.train_step (forward, loss, backward, Adam) on batches from train.PatchSampler, after warm-up
steps (torch.compile compiles in them), as the median of --steps steps; the batch is made outside the timing and
timed on its own in the last row. Rows with the same batch x patch^2 train on the same pixels per step.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere: the project's modules

import srcnn.startup  # noqa: F401, E402, I001 - first: a signal while the libraries load exits quietly
import srcnn_dynamic as sd  # noqa: E402
import train  # noqa: E402
from srcnn import data  # noqa: E402

# (label, channels_last, bfloat16 autocast, torch.compile, batch size, patch side)
CASES = (
    ("float32 (the previous step)", False, False, False, 32, 64),
    ("channels_last", True, False, False, 32, 64),
    ("bfloat16 autocast", False, True, False, 32, 64),
    ("bfloat16 + channels_last", True, True, False, 32, 64),
    ("torch.compile + channels_last", True, False, True, 32, 64),
    ("torch.compile + bfloat16 + channels_last", True, True, True, 32, 64),
    ("channels_last, batch 8 of 128 px", True, False, False, 8, 128),
    ("channels_last, batch 128 of 32 px", True, False, False, 128, 32),
    ("channels_last, batch 8 of 64 px (a quarter of the pixels)", True, False, False, 8, 64),
)
WARMUP = 3


def time_case(sampler: train.PatchSampler, device: torch.device, channels_last: bool, bf16: bool,
              compiled: bool, steps: int) -> float:
    """Median seconds of one train_step in this configuration."""
    torch.manual_seed(sd.SEED)
    model = sd.SuperResolutionNet()
    train.identity_init(model)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model.to(device, memory_format=layout)
    optimizer = train.make_optimizer(model, sampler.recipe, train.LEARNING_RATE)
    refine = torch.compile(model.refine) if compiled else model.refine
    loss_fn = train.loss_function(sampler.recipe)  # once, outside the timed steps
    times = []
    for i in range(WARMUP + steps):
        inputs, targets, soft, _ = sampler.batch()
        inputs, targets = (t.to(device, memory_format=layout) for t in (inputs, targets))
        soft = soft.to(device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        train.train_step(refine, optimizer, inputs, targets, soft, loss_fn, torch.bfloat16 if bf16 else None)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= WARMUP:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = sd.OneLineErrorParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10, metavar="N", help="timed steps per row (default: %(default)s)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    photos = [data.load_photo_tensor(n) for n in train.RECIPE.photos]
    print(f"{train.machine_name(args.device)}; torch {torch.__version__}, {torch.get_num_threads()} threads;"
          f" bfloat16 units: {train.cpu_computes_bfloat16() if device.type == 'cpu' else torch.cuda.is_bf16_supported()}")
    rows, baseline = [], None
    for label, channels_last, bf16, compiled, batch, patch in CASES:
        recipe = dataclasses.replace(train.RECIPE, batch_size=batch, patch=patch)
        sampler = train.PatchSampler(photos, recipe)
        seconds = time_case(sampler, device, channels_last, bf16, compiled, args.steps)
        baseline = baseline or seconds
        rows.append((label, f"{batch} x {patch}^2", f"{seconds * 1000:.0f}", f"{1 / seconds:.2f}",
                     f"{baseline / seconds:.2f}x"))
    sampler = train.PatchSampler(photos, train.RECIPE)
    start = time.perf_counter()
    for _ in range(args.steps):
        sampler.batch()
    rows.append(("making one batch (train.PatchSampler)", f"{train.RECIPE.batch_size} x {train.RECIPE.patch}^2",
                 f"{(time.perf_counter() - start) / args.steps * 1000:.0f}", "", ""))
    print(sd.render_table(("step", "pixels", "ms per step", "steps/s", "speed-up"), rows, left=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
