"""``ledger demo``: seed a living portfolio on the configured database and show it."""

from __future__ import annotations

from typing import Annotated

import typer

from domain.errors import ValidationError
from ledger import bootstrap
from ledger.cli.common import Format, handled, open_ledger, out, parse_date, progress_bar, settings
from ledger.cli.reports import print_report


def demo(
    loans: Annotated[int, typer.Option(help="Loans to seed")] = 100,
    days: Annotated[int, typer.Option(help="Business days to run")] = 180,
    seed: Annotated[
        int, typer.Option(help="Random seed: the same seed gives the same loans, ids and events")
    ] = 7,
    start: Annotated[
        str | None,
        typer.Option(help="First business day (default: DAYS days before today on a new ledger)"),
    ] = None,
    append: Annotated[
        bool, typer.Option(help="Add the demo to a ledger that already holds loans")
    ] = False,
) -> None:
    """Seed a realistic portfolio and run business days, then print the portfolio.

    Runs on the configured database (embedded SQLite by default, migrated first), with a
    progress bar; the projections are kept current each day; the portfolio and the trial
    balance are printed from them at the end."""
    with handled():
        if loans < 1 or days < 1:
            raise ValidationError(
                "--loans and --days must be at least 1", field="loans", rule="positive"
            )
        first = parse_date(start, "--start")
        bootstrap.upgrade_database(settings())
        ledger = open_ledger()

        with progress_bar() as progress:
            task = progress.add_task("business days", total=days)

            def end_of_day() -> None:
                ledger.catch_up()
                progress.advance(task)

            stats = ledger.run_demo(
                loans=loans, days=days, seed=seed, start=first, append=append, on_day=end_of_day
            )
        out.print(
            f"seeded {loans} loans, ran {days} business days "
            f"({stats['start']} → {stats['end']}): {stats['commands']} commands, "
            f"{stats['events']} events in {stats['seconds']:.1f}s"
        )
        print_report("portfolio", Format.table)
        print_report("trial-balance", Format.table)
        if stats.get("sample"):
            out.print(
                "try: "
                + " | ".join(
                    f"ledger loan {c} {stats['sample']}" for c in ("show", "history", "schedule")
                )
                + " | ledger report delinquency | ledger projections status",
                highlight=False,
            )
