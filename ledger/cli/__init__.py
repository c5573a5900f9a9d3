"""The ``ledger`` command line: one module per verb group, each a thin shell over
``ledger.service.Ledger`` (parse, call the service, render).

Every error prints one line naming the field and the rule and exits with its kind's code
(``ledger.cli.common.EXIT_CODES``): 2 bad input, 3 state or concurrency conflict, 4 unknown
loan or complaint, 1 the ledger or its database failed.
"""

from __future__ import annotations

import typer

from ledger.cli import db, demo, eod, loans, projections, quote, reports, scheduler, submit

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Event-sourced loan ledger and servicing engine.",
)
app.command()(eod.eod)
app.command()(submit.submit)
app.command()(demo.demo)
app.add_typer(db.app, name="db")
app.add_typer(loans.app, name="loan")
app.add_typer(quote.app, name="quote")
app.add_typer(reports.app, name="report")
app.add_typer(projections.app, name="projections")
app.add_typer(scheduler.app, name="scheduler")


def main() -> None:
    app()
