"""Imported first by every command: a signal while the libraries load (torch takes seconds) exits quietly."""

import signal
import sys
from types import FrameType


def _exit_quietly(signum: int, frame: FrameType | None) -> None:
    print(f"interrupted ({signal.Signals(signum).name}) while starting", file=sys.stderr)
    raise SystemExit(128 + signum)  # not KeyboardInterrupt: no import traceback


for _signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # errors.run_guarded takes over once loaded
    signal.signal(_signum, _exit_quietly)
