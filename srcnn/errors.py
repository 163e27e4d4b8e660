"""Exit codes, and how every command ends: one line on stderr for a mistake, a signal or a crash, never a traceback."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import sys
from collections.abc import Callable
from types import FrameType

from srcnn.core import EXIT_CRASH, EXIT_SKIPPED, EXIT_USAGE, Factor, SrcnnError

__all__ = ["EXIT_CRASH", "EXIT_SKIPPED", "exit_code_for", "factor_arg", "is_mistake", "run_guarded"]

log = logging.getLogger("srcnn")

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # Ctrl-C, `kill`/`timeout`/schedulers, a closed terminal


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, SIGTERM or SIGHUP, raised where the program is, so that it unwinds alike (atomic writes clean up)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


_received: list[int] = []  # the signals received under run_guarded


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    raise Interrupted(signum)


def is_mistake(exc: BaseException) -> bool:
    """Whether `exc` is a mistake the user can fix: the product's SrcnnError, or the tutorial's when it is loaded."""
    tutorial = sys.modules.get("srcnn_dynamic")  # loaded with torch only: exporting, --check, training
    return isinstance(exc, SrcnnError) or (tutorial is not None and isinstance(exc, tutorial.SrcnnError))


def exit_code_for(exc: BaseException) -> int:
    """Report how a command ended in one line on stderr; return its documented exit code."""
    if isinstance(exc, KeyboardInterrupt):  # atomic writes have removed any half-written file on the way out
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        print(f"interrupted ({signal.Signals(signum).name}): no partial files were left", file=sys.stderr)
        return 128 + signum
    if isinstance(exc, BrokenPipeError):  # `... | head -1`: the reader has gone; say nothing more to it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    if is_mistake(exc):
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if isinstance(exc, OSError) and exc.errno == errno.ENAMETOOLONG:  # Path.is_file() raises it for such a name
        print(f"error: {exc.filename}: the name is longer than the file system allows", file=sys.stderr)
        return EXIT_USAGE
    log.debug("the traceback of the failure:", exc_info=exc)  # shown with -v
    what = "out of memory" if isinstance(exc, MemoryError) else "unexpected failure"
    detail = (str(exc).strip().splitlines() or [""])[0]
    print(f"error: {what} ({type(exc).__name__}: {detail}); rerun with -v for the traceback", file=sys.stderr)
    return EXIT_CRASH


def run_guarded(work: Callable[[], int]) -> int:
    """`work()`'s exit code; SIGTERM and SIGHUP act as Ctrl-C, and any exception ends in one line (exit_code_for)."""
    for signum in SIGNALS:
        signal.signal(signum, _raise_interrupted)
    try:
        return work()
    except Exception as exc:  # noqa: BLE001 - every failure is reported in one line, with its own exit code
        # a signal that lands while a compiled library loads (a runtime is imported when a run asks for it)
        # surfaces as that library's ImportError ("initialization failed"): it is still the interruption
        return exit_code_for(Interrupted(_received[0]) if _received else exc)
    except KeyboardInterrupt as exc:
        return exit_code_for(exc)


def factor_arg(text: str) -> Factor:
    """argparse type for --factor: a Factor, or argparse's own one-line error."""
    try:
        return Factor.parse(text)
    except SrcnnError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
