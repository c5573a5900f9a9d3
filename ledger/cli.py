"""The ``ledger`` command line: a thin shell over the application.

Business errors print one line naming the field and the rule and exit non-zero:
2 bad input, 3 state or concurrency conflict, 4 unknown loan or complaint.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from domain.errors import InvalidDate, LedgerError, ValidationError
from domain.loan import Loan, LoanView
from domain.schedule import build_schedule, monthly_due_dates
from domain.terms import LoanTerms
from ledger.settings import Settings

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Event-sourced loan ledger and servicing engine.")
db_app = typer.Typer(no_args_is_help=True, help="Create and migrate the database schema.")
loan_app = typer.Typer(no_args_is_help=True, help="Inspect one loan.")
quote_app = typer.Typer(no_args_is_help=True, help="Pure calculators (no database).")
report_app = typer.Typer(no_args_is_help=True, help="Portfolio reports.")
app.add_typer(db_app, name="db")
app.add_typer(loan_app, name="loan")
app.add_typer(quote_app, name="quote")
app.add_typer(report_app, name="report")

out = Console()
err = Console(stderr=True)
EXIT_CODES = {"invalid": 2, "conflict": 3, "not_found": 4}


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


@contextmanager
def handled() -> Iterator[None]:
    try:
        yield
    except LedgerError as e:
        where = f" [field={e.field}, rule={e.rule}]" if e.field else f" [rule={e.rule}]"
        # soft_wrap: one line even on a pipe, where rich would otherwise wrap at 80 columns.
        err.print(f"[bold red]error:[/] {escape(e.message + where)}", highlight=False,
                  soft_wrap=True)
        raise typer.Exit(EXIT_CODES.get(e.kind, 1)) from None
    except _database_errors() as e:  # evaluated only once something was raised
        reason = str(getattr(e, "orig", e)).strip().splitlines()[0]
        message = (f"cannot open the database at {_safe(Settings().database_url)}: {reason}"
                   " [field=database_url, rule=reachable]")
        err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


def _database_errors() -> tuple[type[Exception], ...]:
    from sqlalchemy.exc import OperationalError

    return (OperationalError,)


def parse_date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidDate(f"{option} must be a date as YYYY-MM-DD, got {value!r}",
                          field=option.lstrip("-").replace("-", "_"),
                          rule="iso_date") from None


def _app() -> Any:
    from ledger.bootstrap import build_app

    return build_app()


def _json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


# ---------------------------------------------------------------------------- db
@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate every table (event store and read models) through alembic."""
    from ledger import migrations

    with handled():
        url = Settings().database_url
        migrations.upgrade(url)
        out.print(f"database at {_safe(url)} is at revision {migrations.current(url)}")


@db_app.command("current")
def db_current() -> None:
    """Show the schema revision of the configured database."""
    from ledger import migrations

    with handled():
        url = Settings().database_url
        out.print(f"{_safe(url)}: {migrations.current(url) or 'empty (run ledger db upgrade)'}")


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# ------------------------------------------------------------------------- quote
@quote_app.command("schedule")
def quote_schedule(
    principal: Annotated[str, typer.Option(help="Loan amount, e.g. 100000")],
    annual_rate: Annotated[str, typer.Option(help="Nominal annual rate, e.g. 0.12")],
    term: Annotated[int, typer.Option(help="Number of monthly installments")],
    method: Annotated[str, typer.Option(help="annuity (等额本息) or equal_principal (等额本金)")]
    = "annuity",
    day_count: Annotated[str, typer.Option(help="ACT/365F, ACT/360, 30/360, ACT/ACT ISDA")]
    = "30/360",
    disbursed_on: Annotated[str | None, typer.Option(help="YYYY-MM-DD (default today)")] = None,
    first_due: Annotated[str | None, typer.Option(help="YYYY-MM-DD (default +1 month)")] = None,
    currency: str = "CNY",
    rounding: Annotated[str | None, typer.Option(help="e.g. ROUND_HALF_EVEN")] = None,
    format: Format = Format.table,
) -> None:
    """Print an amortization schedule. Pure calculator: touches no database."""
    with handled():
        settings = Settings()
        product = settings.product_terms()
        if rounding:
            from dataclasses import replace

            product = replace(product, rounding=rounding)
        terms = LoanTerms.create(principal=principal, currency=currency, annual_rate=annual_rate,
                                 term=term, method=method, day_count=day_count, product=product)
        start = parse_date(disbursed_on, "--disbursed-on") or date.today()
        due = parse_date(first_due, "--first-due") or monthly_due_dates(start, 2)[1]
        schedule = build_schedule(
            principal=terms.principal, annual_rate=terms.annual_rate, term=terms.term,
            method=terms.method, day_count=terms.day_count, start_date=start, first_due=due,
            currency=terms.money_currency, rounding=product.rounding)
        rows = [{"number": i.number, "due_date": i.due_date.isoformat(),
                 "principal": str(i.principal), "interest": str(i.interest),
                 "total": str(i.total)} for i in schedule]
        total_interest = sum((i.interest for i in schedule), Decimal(0))
        if format == Format.json:
            _json({"currency": terms.currency, "principal": str(terms.principal),
                   "total_interest": str(total_interest), "installments": rows})
            return
        if format == Format.csv:
            _csv(rows)
            return
        table = Table(title=f"{terms.method} schedule: {terms.principal} {terms.currency} at "
                            f"{terms.annual_rate} ({terms.day_count}), {terms.term} months")
        for col in ("#", "due date", "principal", "interest", "total"):
            table.add_column(col, justify="right")
        for r in rows:
            table.add_row(str(r["number"]), r["due_date"], r["principal"], r["interest"],
                          r["total"])
        table.add_section()
        table.add_row("", "total", str(terms.principal), str(total_interest),
                      str(terms.principal + total_interest))
        out.print(table)


def _csv(rows: list[dict[str, Any]]) -> None:
    import csv

    if not rows:
        return
    writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)


# --------------------------------------------------------------------------- eod
@app.command()
def eod(through: Annotated[str, typer.Option(help="Close every business day up to this "
                                                  "date (YYYY-MM-DD)")]) -> None:
    """Close business days: interest accrual, installments falling due, overdue, penalties."""
    with handled():
        day = parse_date(through, "--through")
        assert day is not None
        ledger = _app()
        active = len(ledger.loan_ids("active"))
        with _progress() as progress:
            task = progress.add_task(f"closing through {day}", total=active)
            summary = ledger.close_business_days(day, lambda n: progress.advance(task, n))
        rate = summary.loans / summary.seconds if summary.seconds else 0
        out.print(f"closed {summary.closed_from or 'all open days'} → {summary.closed_through}: "
                  f"{summary.loans} loans, {summary.events} events in {summary.seconds:.2f}s "
                  f"({rate:,.0f} loans/s)")


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=err)


# ------------------------------------------------------------------------ submit
@app.command()
def submit(file: Annotated[Path, typer.Argument(help="JSON Lines file, one command per line")]
           ) -> None:
    """Append commands from a JSONL batch; safe to rerun (every command has its idempotency
    key). Prints one JSON result per line; exits 1 if any command failed."""
    from ledger.commands import parse_command

    with handled():
        if not file.exists():
            raise ValidationError(f"no such file: {file}", field="file", rule="exists")
        ledger = _app()
        failed = 0
        for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                try:
                    data = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValidationError(f"line is not valid JSON: {e.msg}", field="line",
                                          rule="json") from None
                result = ledger.execute(parse_command(data))
                sys.stdout.write(json.dumps({"line": number, "ok": True, **result}) + "\n")
            except LedgerError as e:
                failed += 1
                sys.stdout.write(json.dumps({"line": number, "ok": False, **e.as_dict()}) + "\n")
        if failed:
            err.print(f"{failed} command(s) failed")
            raise typer.Exit(1)


# -------------------------------------------------------------------------- loan
def _loan(loan_id: str, as_of: str | None = None) -> Loan:
    try:
        uid = UUID(loan_id)
    except ValueError:
        raise ValidationError(f"{loan_id!r} is not a loan id (UUID)", field="loan_id",
                              rule="uuid") from None
    loan: Loan = _app().get_loan(uid, as_of=parse_date(as_of, "--as-of"))
    return loan


@loan_app.command("show")
def loan_show(loan_id: str, as_of: Annotated[str | None, typer.Option(
        "--as-of", help="State at the close of this business date")] = None,
        format: Format = Format.table) -> None:
    """Balances, status and delinquency of one loan (optionally as of a past date)."""
    with handled():
        loan = _loan(loan_id, as_of)
        view = LoanView.of(loan)
        money = loan.money_currency.round
        data: dict[str, Any] = {
            "loan_id": view.loan_id, "borrower_id": view.borrower_id, "status": view.status,
            "currency": view.currency, "version": loan.version,
            "last_closed_on": _iso(loan.last_closed_on),
            "principal_outstanding": str(money(view.principal_outstanding)),
            "principal_not_due": str(money(view.principal_not_due)),
            "principal_overdue": str(money(view.principal_overdue)),
            "interest_accrued": str(money(view.interest_accrued)),
            "interest_overdue": str(money(view.interest_overdue)),
            "penalty_outstanding": str(money(view.penalty_outstanding)),
            "fees_outstanding": str(money(view.fees_outstanding)),
            "overpayment": str(money(view.overpayment)),
            "paid": {k: str(money(v)) for k, v in loan.paid.items()},
            "dpd": view.classification.dpd, "bucket": view.classification.bucket,
            "five_category": str(view.classification.category),
            "ifrs9_stage": view.classification.stage,
            "annual_rate": str(loan.annual_rate),
            "observation_until": _iso(loan.observation_until),
        }
        if format == Format.json:
            _json(data)
            return
        table = Table(title=f"loan {view.loan_id}" + (f" as of {as_of}" if as_of else ""),
                      show_header=False)
        table.add_column("field", style="bold")
        table.add_column("value", justify="right")
        for k, v in data.items():
            table.add_row(k, str(v))
        out.print(table)


def _iso(d: date | None) -> str | None:
    return d.isoformat() if d else None


@loan_app.command("history")
def loan_history(loan_id: str, format: Format = Format.table,
                 accruals: Annotated[bool, typer.Option(
                     help="Include the daily InterestAccrued events")] = True) -> None:
    """Every event of the loan, in order, with its business date and amounts."""
    with handled():
        try:
            uid = UUID(loan_id)
        except ValueError:
            raise ValidationError(f"{loan_id!r} is not a loan id (UUID)", field="loan_id",
                                  rule="uuid") from None
        ledger = _app()
        rows = []
        for e in ledger.loan_history(uid):
            if not accruals and type(e).__name__ == "InterestAccrued":
                continue
            fields = {k: v for k, v in vars(e).items()
                      if k not in ("originator_id", "originator_version", "timestamp",
                                   "originator_topic", "business_date", "schedule",
                                   "new_schedule", "terms", "allocation")}
            rows.append({"version": e.originator_version, "event": type(e).__name__,
                         "business_date": e.business_date.isoformat(),
                         "recorded_at": e.timestamp.isoformat(),
                         "details": {k: _plain(v) for k, v in fields.items()}})
        if format == Format.json:
            _json(rows)
            return
        table = Table(title=f"history of loan {loan_id}")
        for col in ("v", "business date", "event", "details"):
            table.add_column(col)
        for r in rows:
            details = ", ".join(f"{k}={v}" for k, v in r["details"].items())
            table.add_row(str(r["version"]), r["business_date"], r["event"], details)
        out.print(table)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal | date | UUID):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@loan_app.command("schedule")
def loan_schedule(loan_id: str, as_of: Annotated[str | None, typer.Option(
        "--as-of", help="Schedule as it stood at the close of this date")] = None,
        format: Format = Format.table) -> None:
    """The loan's installments: billed ones with what is paid, future ones as scheduled."""
    with handled():
        loan = _loan(loan_id, as_of)
        rows = [{"number": i.number, "due_date": i.due_date.isoformat(),
                 "principal": str(i.principal), "interest": str(i.interest),
                 "total": str(i.total), "state": _state(i),
                 "principal_paid": str(i.principal_paid),
                 "interest_paid": str(i.interest_paid)} for i in loan.installments]
        if format == Format.json:
            _json({"loan_id": str(loan.id), "currency": loan.currency, "installments": rows})
            return
        if format == Format.csv:
            _csv(rows)
            return
        table = Table(title=f"schedule of loan {loan.id} ({loan.currency})")
        for col in ("#", "due date", "principal", "interest", "total", "state", "paid"):
            table.add_column(col, justify="right")
        for r in rows:
            paid = Decimal(r["principal_paid"]) + Decimal(r["interest_paid"])
            table.add_row(str(r["number"]), r["due_date"], r["principal"], r["interest"],
                          r["total"], r["state"], str(paid))
        out.print(table)


def _state(inst: Any) -> str:
    if not inst.fell_due:
        return "scheduled"
    return "paid" if inst.is_settled else "due"


@loan_app.command("list")
def loan_list(status: Annotated[str | None, typer.Option(help="e.g. active")] = None,
              limit: int = 50) -> None:
    """Loan ids from the loan directory (optionally by status)."""
    with handled():
        for loan_id in _app().loan_ids(status, limit=limit):
            out.print(str(loan_id))


# ------------------------------------------------------------------------ report
@report_app.command("portfolio")
def report_portfolio(format: Format = Format.table) -> None:
    """Counts and principal by M-bucket, five-category and IFRS 9 stage; NPL ratio."""
    from ledger.portfolio import summarize

    with handled():
        ledger = _app()
        summary = summarize(ledger.iter_loans())
        if format == Format.json:
            _json(summary.as_dict())
            return
        print_portfolio(summary, ledger.closed_through())


def print_portfolio(summary: Any, closed_through: date | None) -> None:
    from domain.delinquency import FiveCategory

    out.print(f"[bold]Portfolio[/] as of the close of {closed_through or '—'}: "
              f"{dict(summary.by_status)}")
    for title, table_data, label in (
        ("M-buckets", summary.by_bucket, str),
        ("Five-category", summary.by_category,
         lambda k: f"{FiveCategory(k).chinese} {k}"),
        ("IFRS 9 stage", summary.by_stage, lambda k: f"stage {k}"),
    ):
        table = Table(title=title)
        table.add_column("class")
        table.add_column("loans", justify="right")
        table.add_column("principal", justify="right")
        for key, (count, principal) in table_data.items():
            table.add_row(label(key), str(count), f"{principal:,.2f}")
        out.print(table)
    outstanding = ", ".join(f"{v:,.2f} {k}" for k, v in summary.currency_outstanding.items())
    out.print(f"outstanding principal: {outstanding or '0'}   NPL ratio: "
              f"{summary.npl_ratio:.2%}   written off: {summary.written_off_principal:,.2f}   "
              f"recovered: {summary.recovered:,.2f}   overpayments held: "
              f"{summary.overpayments:,.2f}")


# -------------------------------------------------------------------------- demo
@app.command()
def demo(loans: Annotated[int, typer.Option(help="Loans to seed")] = 100,
         days: Annotated[int, typer.Option(help="Business days to run")] = 180,
         seed: Annotated[int, typer.Option(help="Random seed")] = 7) -> None:
    """Seed a realistic portfolio on the configured database (embedded SQLite by default),
    run business days with a progress bar, then print the portfolio summary."""
    from ledger.bootstrap import build_app
    from ledger.demo import run_demo
    from ledger.portfolio import summarize

    with handled():
        if loans < 1 or days < 1:
            raise ValidationError("--loans and --days must be at least 1", field="loans",
                                  rule="positive")
        ledger = build_app(upgrade=True)
        with _progress() as progress:
            task = progress.add_task("business days", total=days)
            stats = run_demo(ledger, loans=loans, days=days, seed=seed,
                             on_day=lambda: progress.advance(task))
        out.print(f"seeded {loans} loans, ran {days} business days "
                  f"({stats['start']} → {stats['end']}): {stats['commands']} commands, "
                  f"{stats['events']} events in {stats['seconds']:.1f}s")
        print_portfolio(summarize(ledger.iter_loans()), ledger.closed_through())
        if stats.get("sample"):
            out.print("try: " + " | ".join(f"ledger loan {c} {stats['sample']}"
                                           for c in ("show", "history", "schedule")))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
