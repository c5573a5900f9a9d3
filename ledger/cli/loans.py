"""``ledger loan``: one loan's state, history and schedule (``--as-of`` a past date), and the
list of loans."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Annotated, Any

import typer
from rich.table import Table

from ledger.app.views import history_line, money
from ledger.cli.common import (
    Format,
    handled,
    open_ledger,
    out,
    parse_date,
    parse_uuid,
    print_table,
    write_csv,
    write_json,
)
from ledger.cli.render import Column, cell

app = typer.Typer(no_args_is_help=True, help="Inspect one loan.")


@app.command("show")
def loan_show(
    loan_id: str,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="State at the close of this business date")
    ] = None,
    format: Format = Format.table,
) -> None:
    """Balances, status and delinquency of one loan (optionally as of a past date)."""
    with handled():
        uid, day = parse_uuid(loan_id), parse_date(as_of, "--as-of")  # before any database
        view = open_ledger().loan_view(uid, day)
        if format == Format.json:
            write_json(view)
            return
        rows = [[label, cell(value)] for label, value in _flatten(view) if value is not None]
        if format == Format.csv:
            write_csv([{"field": k, "value": v} for k, v in rows])
            return
        table = Table(
            title=f"loan {view['loan_id']}" + (f" as of {as_of}" if as_of else ""),
            show_header=False,
        )
        table.add_column("field", style="bold")
        table.add_column("value", justify="right", no_wrap=True)
        for label, value in rows:
            table.add_row(label, value)
        out.print(table)


def _flatten(data: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in data.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key} ")
        else:
            yield f"{prefix}{key}".replace("_", " "), value


@app.command("history")
def loan_history(
    loan_id: str,
    format: Format = Format.table,
    accruals: Annotated[
        bool, typer.Option(help="Include the daily InterestAccrued and PenaltyAccrued events")
    ] = True,
) -> None:
    """Every event of the loan, in order, with its business date and amounts."""
    with handled():
        uid = parse_uuid(loan_id)
        rows = open_ledger().history_view(uid, daily=accruals)
        if format == Format.json:
            write_json(rows)
            return
        if format == Format.csv:
            write_csv(
                [
                    {
                        **{k: r[k] for k in ("version", "business_date", "event", "recorded_at")},
                        "details": json.dumps(r["details"], ensure_ascii=False),
                    }
                    for r in rows
                ]
            )
            return
        columns = [
            Column("v", numeric=True),
            Column("business_date", "business date", keep=True),
            Column("event", keep=True),
            Column("details"),
        ]
        print_table(
            f"history of loan {uid}",
            columns,
            [[str(r["version"]), r["business_date"], r["event"], history_line(r)] for r in rows],
        )


@app.command("schedule")
def loan_schedule(
    loan_id: str,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Schedule as it stood at the close of this date")
    ] = None,
    format: Format = Format.table,
) -> None:
    """The loan's installments: billed ones with what is paid, future ones as scheduled."""
    with handled():
        uid, day = parse_uuid(loan_id), parse_date(as_of, "--as-of")  # before any database
        view = open_ledger().schedule_view(uid, day)
        rows = view["installments"]
        if format == Format.json:
            write_json(view)
            return
        if format == Format.csv:
            write_csv(rows)
            return
        columns = [
            Column("#", numeric=True),
            Column("due date", keep=True),
            Column("principal", numeric=True),
            Column("interest", numeric=True),
            Column("total", numeric=True),
            Column("state", keep=True),
            Column("paid", numeric=True),
        ]
        print_table(
            f"schedule of loan {view['loan_id']} ({view['currency']})",
            columns,
            [
                [
                    str(r["number"]),
                    r["due_date"],
                    r["principal"],
                    r["interest"],
                    r["total"],
                    r["state"],
                    money(
                        Decimal(r["principal_paid"]) + Decimal(r["interest_paid"]), view["currency"]
                    ),
                ]
                for r in rows
            ],
        )


@app.command("list")
def loan_list(
    status: Annotated[str | None, typer.Option(help="e.g. active")] = None, limit: int = 50
) -> None:
    """Loan ids from the loan directory (optionally by status)."""
    with handled():
        for loan_id in open_ledger().loan_ids(status, limit=limit):
            out.print(str(loan_id))
