"""Draw validation Y-PSNR gain over bicubic against training step, from train.py --history records.

    python tools/plot_training.py weights/training_history.json --out docs/training_curve.png
    python tools/plot_training.py outputs/study/*.json --out /tmp/study.png   # the recipe study's runs, overlaid

The gain is the mean over the validation photos and factors of validate(), less the identity start's (bicubic).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no window, no display needed
import matplotlib.pyplot as plt  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("records", type=Path, nargs="+", help="JSON records of train.py --history or the study")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    args = parser.parse_args(argv)
    figure, axes = plt.subplots(figsize=(7, 3.6), dpi=110)
    for path in args.records:
        record = json.loads(path.read_text())
        steps, psnr = zip(*record["history"], strict=True)
        label = record.get("recipe") if isinstance(record.get("recipe"), str) else path.stem
        if "device" in record:
            label = f"{label}: {record['minutes']:.0f} min, {record['device']}"
        axes.plot(steps, [p - psnr[0] for p in psnr], label=label, linewidth=1.4)
    axes.set_xlabel("training step")
    axes.set_ylabel("gain over bicubic (dB)")
    axes.set_title("validation Y-PSNR gain (mean of x2, x2.5, x3, x4 on the held-out photos)", fontsize=9)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
