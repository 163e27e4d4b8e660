"""Draw validation Y-PSNR gain over bicubic against training step, from train.py --history records.

    python tools/plot_training.py weights/training_history.json --out docs/training_curve.png
    python tools/plot_training.py outputs/study/*.json --out /tmp/study.png   # the recipe study's runs, overlaid

The gain is the mean over the validation photos and factors of train.psnr_per_factor(), less the identity start's
(bicubic).
Records that keep each validation's detail (train.py's since the soft case was recorded) get a second panel: the
gain at each factor and on the soft case (evaluate.py's, at x2), where sharpening one costs the other.
Every record is read and checked, and --out with it, before anything is drawn; the PNG is written whole or not at all.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
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

MAX_RECORD_BYTES = 4 * 2**20  # a 54,000-step run's record takes 7 KB: a larger file is not a record of this kind
MAX_LABEL = 80  # characters of a record's label, or of a detail's name, kept for the legend
MAX_DETAIL_NAMES = 16  # train.py records 5 (x2, x2.5, x3, x4, soft x2): each is a line and a legend entry

History = list[tuple[int, float]]  # (step, validation Y-PSNR in dB), the first at step 0 (bicubic)
Detail = list[dict[str, float]]  # per validation: "step", then Y-PSNR per factor ("x2", ...) and "soft x2"


@dataclass
class Curve:
    """One record: its label, its mean validation PSNR per step and, where kept, each validation's detail."""

    label: str
    history: History
    detail: Detail


def is_number(value: object) -> bool:
    """Whether `value` is a JSON number that is a finite float: not a bool, NaN, Infinity or an integer past 1e308."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def is_detail(detail: object) -> bool:
    """Whether `detail` is a non-empty list of {"step": ..., name: PSNR, ...} rows, all with the same names (at most
    MAX_DETAIL_NAMES) and finite numbers only."""
    return isinstance(detail, list) and bool(detail) and all(
        isinstance(row, dict) and "step" in row and 1 < len(row) <= MAX_DETAIL_NAMES + 1
        and row.keys() == detail[0].keys() and all(is_number(v) for v in row.values()) for row in detail)


def legend_text(text: str) -> str:
    """`text` as one short legend line, shown as written: a `$` would start matplotlib's math, which can fail."""
    return " ".join(text.split())[:MAX_LABEL].replace("$", r"\$")


def read_json(path: Path) -> object:
    """The JSON in `path`: refused unread if it is not a regular file or is over MAX_RECORD_BYTES (a device or a FIFO
    could block or never end), and in one line if it is not JSON or is nested too deeply to parse."""
    try:
        if not path.is_file():
            raise sd.SrcnnError(f"{path} is not a regular file (a folder, a device or a FIFO); give a record written"
                                " by train.py --history" if path.exists() else f"record not found: {path}")
        with path.open("rb") as file:
            raw = file.read(MAX_RECORD_BYTES + 1)  # no more, whatever the file's size says
    except OSError as exc:  # no permission, or a name too long even to look up
        raise sd.SrcnnError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_RECORD_BYTES:
        raise sd.SrcnnError(f"{path} holds over {MAX_RECORD_BYTES:,} bytes, more than any training record; give a"
                            " record written by train.py --history")
    try:
        return json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise sd.SrcnnError(f"{path} nests its JSON too deeply to read; give a record written by train.py"
                            " --history") from None
    except ValueError:  # not UTF-8, not JSON, or an integer of over 4,300 digits
        raise sd.SrcnnError(f"{path} is not JSON; give a record written by train.py --history") from None


def read_record(path: Path) -> Curve:
    """One record's curve, labelled with the study's recipe name, or train.py's steps, or the file's stem, and the
    run's minutes and processor where train.py wrote them."""
    record = read_json(path)
    history = record.get("history") if isinstance(record, dict) else None
    valid = (isinstance(history, list) and history and all(
        isinstance(point, list) and len(point) == 2 and all(is_number(v) for v in point) for point in history))
    if not valid:
        raise sd.SrcnnError(f"{path} has no training history (a list of [step, PSNR] pairs of finite numbers); give a"
                            " record written by train.py --history")
    detail = record.get("detail", [])
    if detail and not is_detail(detail):
        raise sd.SrcnnError(f"{path}: its detail is not a list of {{step, factor: PSNR}} rows; give a record written"
                            " by train.py --history")
    label = (record["recipe"] if isinstance(record.get("recipe"), str)  # the study's name for it
             else f"{record['steps']:,} steps" if is_number(record.get("steps")) else path.stem)
    if is_number(record.get("minutes")) and isinstance(record.get("device"), str):
        label = f"{label}: {record['minutes']:.0f} min, {record['device']}"
    return Curve(legend_text(label), [(int(step), float(psnr)) for step, psnr in history], detail)


def draw_mean(axes: plt.Axes, curves: list[Curve]) -> None:
    """One line per record: the mean gain over its own step-0 PSNR against step."""
    for curve in curves:
        steps, psnr = zip(*curve.history, strict=True)
        axes.plot(steps, [p - psnr[0] for p in psnr], label=curve.label, linewidth=1.4)
    axes.set_title("validation Y-PSNR gain (mean of x2, x2.5, x3, x4 on the held-out photos)", fontsize=9)


def draw_detail(axes: plt.Axes, curves: list[Curve]) -> None:
    """One line per factor and record: the gain over the step-0 PSNR at that factor (and on the soft case)."""
    for curve in curves:
        names = [name for name in curve.detail[0] if name != "step"]
        steps = [row["step"] for row in curve.detail]
        for name in names:
            label = legend_text(name) if len(curves) == 1 else f"{legend_text(name)}, {curve.label.split(':')[0]}"
            gains = [row[name] - curve.detail[0][name] for row in curve.detail]
            axes.plot(steps, gains, label=label, linewidth=1.2, linestyle="--" if name.startswith("soft") else "-")
    axes.axhline(0, color="grey", linewidth=0.8)
    axes.set_title("gain at each factor, and on the soft case (blurred before shrinking)", fontsize=9)


def draw(curves: list[Curve], out: Path) -> None:
    """The mean gain against step, and each factor's beside it where records kept it; written to `out` as a PNG."""
    detailed = [curve for curve in curves if curve.detail]
    figure, panels = plt.subplots(1, 2 if detailed else 1, figsize=(12 if detailed else 7, 3.8), dpi=110,
                                  squeeze=False)
    draw_mean(panels[0][0], curves)
    if detailed:
        draw_detail(panels[0][1], detailed)
    for axes in panels[0]:
        axes.set_xlabel("training step")
        axes.set_ylabel("gain over bicubic (dB)")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
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
