"""The run's report: what was written, what was already there, what was skipped, and the exit code they mean."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from srcnn.core import EXIT_MISMATCH, EXIT_OK, EXIT_SKIPPED, SrcnnError, budget_text

if TYPE_CHECKING:  # the tutorial loads torch: --check alone fills comparisons
    from srcnn.check import Comparison

log = logging.getLogger("srcnn")


@dataclass
class Report:
    """What a run did. `comparisons` (srcnn.check.Comparison rows) are filled by --check alone."""

    output_dir: Path
    written: list[Path] = field(default_factory=list)  # results written by this run
    existing: list[Path] = field(default_factory=list)  # complete results of an earlier run, left as they were
    images: int = 0  # images upscaled by this run
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (image, why), each logged once when skipped
    comparisons: list[Comparison] = field(default_factory=list)
    graph: Path | None = None  # the graph --save-onnx wrote
    left_out: list[Path] = field(default_factory=list)  # sub-folders not read (no --recursive)
    seconds: float = 0.0


def count(number: int, thing: str) -> str:
    """'1 result', '2 results'."""
    return f"{number} {thing}{'s' * (number != 1)}"


def summary(report: Report) -> str:
    """The run's last line: the count, the time and where the results are (and the graph, if one was saved)."""
    where = f"{report.output_dir}{'/' if not str(report.output_dir).endswith('/') else ''}"
    extras = [f"{len(report.existing)} already there"] * bool(report.existing and report.written)
    extras += [f"{len(report.skipped)} skipped (named above)"] * bool(report.skipped)
    extras += [f"the graph in {report.graph}"] * bool(report.graph and (report.written or report.existing))
    extras += [f"{count(len(report.left_out), 'sub-folder')} not read (-r reads them)"] * bool(report.left_out)
    tail = "".join(f"; {extra}" for extra in extras)
    if report.written:
        return (f"upscaled {count(report.images, 'image')} into {count(len(report.written), 'result')} in"
                f" {report.seconds:.1f} s: {where}{tail}")
    if report.existing:
        results = count(len(report.existing), "result")
        verb = "is" if len(report.existing) == 1 else "are"
        return f"nothing to do: the {results} {verb} already in {where} (--overwrite redoes them){tail}"
    if report.graph:
        return f"wrote {report.graph}: the graph srcnn runs, for plain ONNX Runtime (inputs input and factor){tail}"
    return f"nothing written{tail}"


def say(text: str, stream: TextIO) -> None:
    """Print a line of the report, flushed: a closed pipe or a full disk behind the stream is found here, inside
    the guard (srcnn.errors), not by Python's last flush at exit."""
    try:
        print(text, file=stream, flush=True)
    except BrokenPipeError:
        raise  # srcnn.errors ends quietly: the reader has gone
    except OSError as exc:  # e.g. stdout on a full disk; what stays buffered goes to /dev/null at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
        raise SrcnnError(f"cannot write the report to {stream.name}: {exc.strerror or exc}") from None


def finish(report: Report, quiet: bool = False) -> int:
    """Print the last line (and --check's table); return the exit code: mismatch first, then skipped images."""
    if report.comparisons:
        from srcnn.check import format_table  # --check has loaded it already, with torch

        say(format_table(report.comparisons), sys.stdout)
    if not quiet:
        say(summary(report), sys.stderr if report.comparisons else sys.stdout)
    if failed := [r for r in report.comparisons if not r.ok]:
        worst = max(failed, key=lambda r: r.max_abs_diff)
        log.error("%s (%s) differs from PyTorch by %.2e, PSNR %.1f dB (budget: %s) on %s at x%s", worst.runtime,
                  worst.precision, worst.max_abs_diff, worst.psnr_db, budget_text(worst.precision), worst.image,
                  worst.factor.tag)
        return EXIT_MISMATCH
    return EXIT_SKIPPED if report.skipped else EXIT_OK
