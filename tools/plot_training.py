"""Draw validation Y-PSNR gain over bicubic against training step, from train.py --history records.

    python tools/plot_training.py weights/training_history.json --out docs/training_curve.png
    python tools/plot_training.py outputs/study/*.json --out /tmp/study.png   # the recipe study's runs, overlaid

The gain is the mean over the validation photos and factors of validate(), less the identity start's (bicubic).
Every record is read and checked, and --out with it, before anything is drawn; the PNG is written whole or not at all.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no window, no display needed
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere: the project's modules

import srcnn.startup  # noqa: F401, E402, I001 - first: a signal while the libraries load exits quietly
import srcnn_dynamic as sd  # noqa: E402
from srcnn.errors import run_guarded  # noqa: E402
from srcnn.images import atomic_path  # noqa: E402
from srcnn.plan import check_output_file  # noqa: E402

History = list[tuple[int, float]]  # (step, validation Y-PSNR in dB), the first at step 0 (bicubic)


def read_record(path: Path) -> tuple[str, History]:
    """(label, history) of one record: the study's recipe name or the file's stem, with the run's minutes and
    processor where train.py wrote them."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise sd.SrcnnError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise sd.SrcnnError(f"{path} is not JSON; give a record written by train.py --history") from None
    history = record.get("history") if isinstance(record, dict) else None
    valid = (isinstance(history, list) and history and all(
        isinstance(point, list) and len(point) == 2 and all(isinstance(v, (int, float)) for v in point)
        for point in history))
    if not valid:
        raise sd.SrcnnError(f"{path} has no training history (a list of [step, PSNR] pairs); give a record written"
                            " by train.py --history")
    label = record["recipe"] if isinstance(record.get("recipe"), str) else path.stem
    if {"minutes", "device"} <= record.keys():
        label = f"{label}: {record['minutes']:.0f} min, {record['device']}"
    return label, [(int(step), float(psnr)) for step, psnr in history]


def draw(curves: list[tuple[str, History]], out: Path) -> None:
    """One line per record: gain over its own step-0 PSNR against step, written to `out` as a PNG."""
    figure, axes = plt.subplots(figsize=(7, 3.6), dpi=110)
    for label, history in curves:
        steps, psnr = zip(*history, strict=True)
        axes.plot(steps, [p - psnr[0] for p in psnr], label=label, linewidth=1.4)
    axes.set_xlabel("training step")
    axes.set_ylabel("gain over bicubic (dB)")
    axes.set_title("validation Y-PSNR gain (mean of x2, x2.5, x3, x4 on the held-out photos)", fontsize=9)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(out) as tmp:
            figure.savefig(tmp, format="png")
    except OSError as exc:
        raise sd.SrcnnError(f"cannot write {out}: {exc.strerror or exc}") from None
    finally:
        plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = sd.OneLineErrorParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("records", type=Path, nargs="+", help="JSON records of train.py --history or the study")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    args = parser.parse_args(argv)

    def work() -> int:
        check_output_file(args.out, "--out", args.records, suffixes=(".png",))
        draw([read_record(path) for path in args.records], args.out)
        return sd.EXIT_OK

    return run_guarded(work)


if __name__ == "__main__":
    sys.exit(main())
