"""``ledger eod``: close business days (end of day) for the whole book or one partition."""

from __future__ import annotations

import sys
from datetime import date
from typing import Annotated

import typer
from rich.markup import escape

from domain.errors import ValidationError
from ledger.cli.common import handled, open_ledger, out, parse_date, progress_bar
from ledger.service import Ledger


def eod(
    through: Annotated[
        str, typer.Option(help="Close every business day up to this date (YYYY-MM-DD)")
    ],
    workers: Annotated[
        int | None,
        typer.Option(
            help="Local worker processes, each a loan-id range with its own connection "
            "(default LEDGER_EOD_WORKERS)"
        ),
    ] = None,
    partition: Annotated[
        str | None,
        typer.Option(
            help="Run only partition k/N of the loan-id space (one per host); the clock "
            "advances when all N are done"
        ),
    ] = None,
    wait: Annotated[
        float | None,
        typer.Option(
            help="Seconds to wait for a running end of day to finish (default "
            "LEDGER_EOD_LOCK_WAIT); then exit 3"
        ),
    ] = None,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes",
            "-y",
            help="Close more than LEDGER_EOD_CONFIRM_DAYS days at once without asking",
        ),
    ] = False,
) -> None:
    """Close business days: interest accrual, installments falling due, overdue, penalties.

    Catches up every missing day in order; safe to rerun after a crash (nothing posts twice).
    Progress counts loan-days (a loan closing three days counts three)."""
    with handled():
        day = parse_date(through, "--through")
        assert day is not None
        if workers is not None and workers < 1:
            raise ValidationError("--workers must be at least 1", field="workers", rule="positive")
        ledger = open_ledger()
        total = ledger.count_loan_days(day, partition)  # also checks --partition
        closed = ledger.closed_through()
        if partition is None and closed is not None and day <= closed:
            out.print(
                f"nothing to do: the ledger is closed through {closed}"
                f" (the open business day is {ledger.business_date()})"
            )
            return
        ledger.check_days_ahead(day, confirm=yes or _confirmed_at_a_terminal(ledger, day))
        with progress_bar() as progress:
            label = f"closing through {day}" + (f" (partition {partition})" if partition else "")
            task = progress.add_task(label + " (loan-days)", total=total)
            summary = ledger.close_business_days(
                day,
                lambda n: progress.advance(task, n),
                workers=workers,
                partition=partition,
                wait=wait,
            )
        where = "" if partition is None else escape(f" [partition {summary.partition}]")
        out.print(
            f"closed {summary.closed_from or 'all open days'} → {summary.closed_through}"
            f"{where}: {summary.loans} loans, {summary.loan_days} loan-days,"
            f" {summary.events} events in {summary.seconds:.2f}s"
            f" ({summary.loans_per_second:,.0f} loans/s, {summary.workers}"
            f" worker{'s' if summary.workers > 1 else ''})"
        )
        if not summary.clock_advanced:
            count = summary.partition.partition("/")[2]
            out.print(
                f"the clock stays at {ledger.closed_through() or 'none'} until every "
                f"partition of {count} has closed {day}"
            )


def _confirmed_at_a_terminal(ledger: Ledger, day: date) -> bool:
    """Ask at a terminal before closing more days than LEDGER_EOD_CONFIRM_DAYS; elsewhere
    the ledger refuses and says to pass --yes."""
    ahead = ledger.days_ahead(day)
    if ahead <= ledger.settings.eod_confirm_days or not sys.stdin.isatty():
        return False
    return typer.confirm(
        f"{day} is {ahead} days past the open business day"
        f" {ledger.business_date()}; close all {ahead + 1} days on every"
        " active loan?",
        err=True,
    )
