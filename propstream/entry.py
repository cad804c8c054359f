"""The `propstream` command's entry point (the console script and `python -m propstream`).

Importing the CLI takes about a second on this machine (typer, pydantic, the schemas). A
Ctrl-C (or SIGTERM) in that second has nothing to stop yet: it ends the process at once with
a line saying so, instead of an import traceback. Once the CLI is loaded the commands handle
the signals themselves (`up` stops what it started; the workers stop their loops).
"""

from __future__ import annotations

import os
import signal
import sys


def _before_start(signum: int, _frame: object) -> None:
    sys.stderr.write("propstream: interrupted while loading; nothing was started\n")
    sys.stderr.flush()
    os._exit(128 + signum)


def main() -> None:
    signal.signal(signal.SIGINT, _before_start)
    signal.signal(signal.SIGTERM, _before_start)
    from propstream.cli import app

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    app()
