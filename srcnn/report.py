"""The run's report: the parity table (sd.format_table), the images skipped, and the exit code they mean."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import srcnn_dynamic as sd
from srcnn.errors import EXIT_SKIPPED

log = logging.getLogger("srcnn")


@dataclass
class Report:
    """What a run did: a comparison per image and factor, and the images of a folder that were skipped."""

    rows: list[sd.Comparison] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (image, why)


def finish(report: Report) -> int:
    """Print the table, log what failed, and return the exit code: mismatch first, then skipped images."""
    if report.rows:
        print(sd.format_table(report.rows), flush=True)  # a closed pipe is found here, inside the guard
    if failed := [r for r in report.rows if not r.ok]:
        worst = max(failed, key=lambda r: r.max_abs_diff)
        log.error("ONNX Runtime differs from PyTorch by %.2e (> %g) on %s at x%s", worst.max_abs_diff,
                  sd.PARITY_ATOL, worst.image, worst.factor.tag)
        return sd.EXIT_MISMATCH
    if report.skipped:
        done = len({r.image for r in report.rows})
        log.error("%d of %d images skipped: %s", len(report.skipped), len(report.skipped) + done,
                  "; ".join(f"{p.name}: {why}" for p, why in report.skipped))
        return EXIT_SKIPPED
    return sd.EXIT_OK
