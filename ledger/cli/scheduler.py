"""``ledger scheduler``: the end-of-day scheduler in the foreground."""

from __future__ import annotations

import signal
import sys
import threading

import typer

from ledger.cli.common import handled, open_ledger

app = typer.Typer(no_args_is_help=True, help="The end-of-day scheduler.")


@app.command("run")
def scheduler_run() -> None:
    """Run the end-of-day scheduler in the foreground until Ctrl-C or SIGTERM.

    Closes the day daily at LEDGER_EOD_TIME in LEDGER_TIMEZONE; a run missed while it was down
    runs on start."""
    from schedulers.scheduler import run_forever

    def say(message: str) -> None:
        sys.stdout.write(message + "\n")
        sys.stdout.flush()

    with handled():
        ledger = open_ledger()  # fails clearly on a database that is not migrated
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        run_forever(ledger, report=say, stop=stop)
