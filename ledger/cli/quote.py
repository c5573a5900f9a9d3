"""``ledger quote``: pure calculators, touching no database."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ledger.cli.common import Format, handled, out, parse_date, settings, write_csv, write_json
from ledger.service import Ledger

app = typer.Typer(no_args_is_help=True, help="Pure calculators (no database).")


@app.command("schedule")
def quote_schedule(
    principal: Annotated[str, typer.Option(help="Loan amount, e.g. 100000")],
    annual_rate: Annotated[str, typer.Option(help="Nominal annual rate, e.g. 0.12")],
    term: Annotated[int, typer.Option(help="Number of monthly installments")],
    method: Annotated[
        str, typer.Option(help="annuity (等额本息) or equal_principal (等额本金)")
    ] = "annuity",
    day_count: Annotated[
        str, typer.Option(help="ACT/365F, ACT/360, 30/360, ACT/ACT ISDA")
    ] = "30/360",
    disbursed_on: Annotated[str | None, typer.Option(help="YYYY-MM-DD (default today)")] = None,
    first_due: Annotated[str | None, typer.Option(help="YYYY-MM-DD (default +1 month)")] = None,
    currency: str = "CNY",
    rounding: Annotated[str | None, typer.Option(help="e.g. ROUND_HALF_EVEN")] = None,
    format: Format = Format.table,
) -> None:
    """Print an amortization schedule. Pure calculator: touches no database."""
    with handled():
        view = Ledger.quote_schedule(
            settings(),
            principal=principal,
            annual_rate=annual_rate,
            term=term,
            method=method,
            day_count=day_count,
            currency=currency,
            rounding=rounding,
            disbursed_on=parse_date(disbursed_on, "--disbursed-on"),
            first_due=parse_date(first_due, "--first-due"),
        )
        rows = view["installments"]
        if format == Format.json:
            write_json(view)
            return
        if format == Format.csv:
            write_csv(rows)
            return
        table = Table(
            title=f"{view['method']} schedule: {view['principal']} {view['currency']}"
            f" at {view['annual_rate']} ({view['day_count']}),"
            f" {view['term']} months"
        )
        for col in ("#", "due date", "principal", "interest", "total"):
            table.add_column(col, justify="right", no_wrap=True)
        for r in rows:
            table.add_row(
                str(r["number"]), r["due_date"], r["principal"], r["interest"], r["total"]
            )
        table.add_section()
        table.add_row("", "total", view["principal"], view["total_interest"], view["total"])
        out.print(table)
