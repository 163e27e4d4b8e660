"""Exit codes and the one-line reporting of user mistakes and Ctrl-C, shared by every command."""

from __future__ import annotations

import argparse
import sys

import srcnn_dynamic as sd

EXIT_SKIPPED = 3  # --image DIR: some images could not be processed (each named); the others were


def exit_code_for(exc: sd.SrcnnError | KeyboardInterrupt) -> int:
    """Report a user mistake or Ctrl-C in one line on stderr; return the documented exit code."""
    if isinstance(exc, KeyboardInterrupt):  # atomic writes have removed any half-written file on the way out
        print("interrupted: no partial files were left", file=sys.stderr)
        return sd.EXIT_INTERRUPTED
    print(f"error: {exc}", file=sys.stderr)
    return sd.EXIT_USAGE


def factor_arg(text: str) -> sd.Factor:
    """argparse type for --factor: a Factor, or argparse's own one-line error."""
    try:
        return sd.Factor.parse(text)
    except sd.SrcnnError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
