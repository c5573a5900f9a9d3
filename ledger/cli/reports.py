"""``ledger report``: reports read from the projections, with how fresh each source is."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ledger.cli import report_text
from ledger.cli.common import (
    Format,
    err,
    handled,
    open_ledger,
    out,
    print_table,
    write_csv,
    write_json,
)

app = typer.Typer(no_args_is_help=True, help="Reports read from the projections.")

#: Per report, the columns a narrow table keeps first (others follow in report order).
TABLE_PRIORITY: dict[str, tuple[str, ...]] = {
    "complaints": (
        "complaint_id",
        "status",
        "category",
        "filed_on",
        "ack_sla_breached",
        "resolve_sla_breached",
        "borrower_id",
    ),
    "delinquency": ("loan_id", "dpd", "bucket", "five_category", "ifrs9_stage"),
}


def print_report(name: str, format: Format, **options: Any) -> None:
    """Print report ``name`` in ``format``, then each source projection's freshness."""
    result, freshness = open_ledger().report(name, **options)
    if format == Format.json:
        write_json(
            {
                "report": name,
                "title": result.title,
                "rows": result.rows,
                "totals": result.totals,
                "freshness": [s.as_dict() for s in freshness],
            }
        )
        return
    if format == Format.csv:
        write_csv(result.rows, result.columns)
        for s in freshness:
            err.print(report_text.freshness(s), highlight=False)
        return
    if name == "portfolio":
        for title, columns, rows in report_text.portfolio_tables(result):
            print_table(title, columns, rows)
    elif name == "trial-balance":
        for title, columns, rows in report_text.per_currency_tables(result):
            print_table(title, columns, rows)
    else:
        columns, rows = report_text.table(result, TABLE_PRIORITY.get(name, ()))
        print_table(result.title, columns, rows)
    for line in report_text.totals_lines(name, result):
        out.print(line, highlight=False)
    for s in freshness:
        out.print(report_text.freshness(s), style="dim", highlight=False)


@app.command("balances")
def report_balances(
    format: Format = Format.table,
    status: Annotated[str | None, typer.Option(help="e.g. active")] = None,
    limit: Annotated[int | None, typer.Option(help="Rows at most")] = None,
) -> None:
    """Principal, interest, penalty and fees outstanding per loan; paid to date; status."""
    with handled():
        print_report("balances", format, status=status, limit=limit)


@app.command("delinquency")
def report_delinquency(format: Format = Format.table) -> None:
    """DPD, M-bucket, five-category and IFRS 9 stage per loan."""
    with handled():
        print_report("delinquency", format)


@app.command("complaints")
def report_complaints(
    format: Format = Format.table, borrower_id: str | None = None, loan_id: str | None = None
) -> None:
    """Complaint histories: status, times to acknowledge and resolve, SLA breaches."""
    with handled():
        print_report("complaints", format, borrower_id=borrower_id, loan_id=loan_id)


@app.command("trial-balance")
def report_trial_balance(format: Format = Format.table) -> None:
    """Debit and credit totals per account and currency from the journal; they must net to 0."""
    with handled():
        print_report("trial-balance", format)


@app.command("portfolio")
def report_portfolio(format: Format = Format.table) -> None:
    """Counts and principal by M-bucket, five-category and IFRS 9 stage; NPL ratio; roll rates."""
    with handled():
        print_report("portfolio", format)
