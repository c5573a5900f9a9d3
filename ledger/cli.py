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
report_app = typer.Typer(no_args_is_help=True, help="Reports read from the projections.")
projections_app = typer.Typer(no_args_is_help=True, help="Read-model projections.")
app.add_typer(db_app, name="db")
app.add_typer(loan_app, name="loan")
app.add_typer(quote_app, name="quote")
app.add_typer(report_app, name="report")
app.add_typer(projections_app, name="projections")

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
                                                  "date (YYYY-MM-DD)")],
        workers: Annotated[int | None, typer.Option(
            help="Local worker processes, each a loan-id range with its own connection "
                 "(default LEDGER_EOD_WORKERS)")] = None,
        partition: Annotated[str | None, typer.Option(
            help="Run only partition k/N of the loan-id space (one per host); the clock "
                 "advances when all N are done")] = None,
        wait: Annotated[float | None, typer.Option(
            help="Seconds to wait for a running end of day to finish (default "
                 "LEDGER_EOD_LOCK_WAIT); then exit 3")] = None) -> None:
    """Close business days: interest accrual, installments falling due, overdue, penalties.

    Catches up every missing day in order; safe to rerun after a crash (nothing posts twice)."""
    from ledger.eod import WHOLE_BOOK, Partition, count_active

    with handled():
        day = parse_date(through, "--through")
        assert day is not None
        if workers is not None and workers < 1:
            raise ValidationError("--workers must be at least 1", field="workers",
                                  rule="positive")
        part = Partition.parse(partition) if partition else WHOLE_BOOK
        ledger = _app()
        with _progress() as progress:
            label = f"closing through {day}" + ("" if part.whole else f" (partition {part.label})")
            task = progress.add_task(label, total=count_active(ledger, part))
            summary = ledger.close_business_days(day, lambda n: progress.advance(task, n),
                                                 workers=workers, partition=partition,
                                                 wait=wait)
        where = "" if part.whole else escape(f" [partition {summary.partition}]")
        out.print(f"closed {summary.closed_from or 'all open days'} → {summary.closed_through}"
                  f"{where}: {summary.loans} loans, {summary.events} events in "
                  f"{summary.seconds:.2f}s ({summary.loans_per_second:,.0f} loans/s, "
                  f"{summary.workers} worker{'s' if summary.workers > 1 else ''})")
        if not summary.clock_advanced:
            out.print(f"the clock stays at {ledger.closed_through() or 'none'} until every "
                      f"partition of {part.count} has closed {day}")


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
def _print_report(name: str, format: Format, **options: Any) -> None:
    """Print a report read from projection tables, with how fresh each source is."""
    from projections.registry import report
    from projections.runner import ProjectionRunner

    ledger = _app()
    runner = ProjectionRunner(ledger)
    with ledger.engine.connect() as conn:
        result = report(name)(conn, **options)
    freshness = [s for s in runner.status() if s.name in result.sources]
    if format == Format.json:
        _json({"report": name, "title": result.title, "rows": result.rows,
               "totals": result.totals, "freshness": [s.as_dict() for s in freshness]})
        return
    if format == Format.csv:
        _csv([{k: r.get(k) for k in result.columns} for r in result.rows])
        for s in freshness:
            err.print(_freshness(s))
        return
    if name == "portfolio":
        _render_portfolio(result)
    else:
        _render_table(result)
    for s in freshness:
        out.print(_freshness(s), style="dim")


def _render_table(result: Any) -> None:
    table = Table(title=result.title)
    for col in result.columns:
        table.add_column(col, justify="right" if _numeric(result.rows, col) else "left")
    for r in result.rows:
        table.add_row(*(_cell(r.get(col)) for col in result.columns))
    out.print(table)
    for key, value in result.totals.items():
        if isinstance(value, dict | list):
            out.print(f"{key}:")
            _json(value)
        else:
            out.print(f"{key}: {_cell(value)}")


def _render_portfolio(result: Any) -> None:
    """One table per classification, then the NPL ratio and the roll-rate matrix."""
    titles = {"bucket": "M-buckets", "five_category": "Five-category",
              "ifrs9_stage": "IFRS 9 stage"}
    for dimension, title in titles.items():
        rows = [r for r in result.rows if r["dimension"] == dimension]
        if not rows:
            continue
        table = Table(title=title)
        for col, justify in (("class", "left"), ("currency", "left"), ("loans", "right"),
                             ("principal", "right")):
            table.add_column(col, justify=justify)  # type: ignore[arg-type]
        for r in rows:
            label = f"{r.get('class_zh') or ''} {r['class']}".strip()
            if dimension == "ifrs9_stage":
                label = f"stage {r['class']}"
            table.add_row(label, r["currency"], str(r["loans"]), _cell(r["principal"]))
        out.print(table)
    totals = result.totals
    out.print(f"loans by status: {totals.get('loans_by_status')}")
    outstanding = totals.get("outstanding_principal") or {}
    out.print("outstanding principal: " + (", ".join(
        f"{_cell(v)} {k}" for k, v in outstanding.items()) or "0")
        + f"   NPL ratio: {Decimal(str(totals.get('npl_ratio', 0))):.2%}")
    for key in ("written_off_principal", "recovered", "overpayments"):
        value = totals.get(key) or {}
        if value:
            out.print(f"{key.replace('_', ' ')}: "
                      + ", ".join(f"{_cell(v)} {k}" for k, v in value.items()))
    roll = totals.get("roll_rates") or {}
    if roll.get("loans"):
        states = [s for s in roll["states"] if any(s in row for row in roll["loans"].values())
                  or s in roll["loans"]]
        table = Table(title=f"roll rates {roll['from_month_end']} → {roll['to_month_end']}")
        table.add_column("from \\ to")
        for state in states:
            table.add_column(state, justify="right")
        for origin, row in roll["shares"].items():
            table.add_row(origin, *(f"{Decimal(str(row[s])):.0%}" if s in row else ""
                                    for s in states))
        out.print(table)


def _freshness(s: Any) -> str:
    state = "current" if s.lag_events == 0 else (
        f"{s.lag_events} events behind ({s.lag_seconds:.1f}s)")
    return f"{s.name}: position {s.position} of {s.head}, {state}"


def _numeric(rows: list[dict[str, Any]], col: str) -> bool:
    return any(isinstance(r.get(col), int | float | Decimal) for r in rows[:20])


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        try:
            value = Decimal(value) if value and value[0] in "-0123456789" and "." in value \
                else value
        except ArithmeticError:
            return value
    if isinstance(value, Decimal):
        # Tables store 4 decimals; show the currency's 2 unless the value needs more.
        cents = value.quantize(Decimal("0.01"))
        return f"{cents:,}" if cents == value else f"{value.normalize():,}"
    return str(value)


@report_app.command("balances")
def report_balances(format: Format = Format.table,
                    status: Annotated[str | None, typer.Option(help="e.g. active")] = None,
                    limit: Annotated[int | None, typer.Option(help="Rows at most")] = None
                    ) -> None:
    """Principal, interest, penalty and fees outstanding per loan; paid to date; status."""
    with handled():
        _print_report("balances", format, status=status, limit=limit)


@report_app.command("delinquency")
def report_delinquency(format: Format = Format.table) -> None:
    """DPD, M-bucket, five-category and IFRS 9 stage per loan."""
    with handled():
        _print_report("delinquency", format)


@report_app.command("complaints")
def report_complaints(format: Format = Format.table,
                      borrower_id: str | None = None, loan_id: str | None = None) -> None:
    """Complaint histories: status, times to acknowledge and resolve, SLA breaches."""
    with handled():
        _print_report("complaints", format, borrower_id=borrower_id, loan_id=loan_id)


@report_app.command("trial-balance")
def report_trial_balance(format: Format = Format.table) -> None:
    """Debit and credit totals per account and currency from the journal; they must net to 0."""
    with handled():
        _print_report("trial-balance", format)


@report_app.command("portfolio")
def report_portfolio(format: Format = Format.table) -> None:
    """Counts and principal by M-bucket, five-category and IFRS 9 stage; NPL ratio; roll rates."""
    with handled():
        _print_report("portfolio", format)


# --------------------------------------------------------------------- projections
@projections_app.command("status")
def projections_status(format: Format = Format.table) -> None:
    """Each projection's position, the log head, and the lag in events and seconds."""
    from projections.runner import ProjectionRunner

    with handled():
        statuses = ProjectionRunner(_app()).status()
        if format == Format.json:
            _json([s.as_dict() for s in statuses])
            return
        table = Table(title="projections")
        for col in ("name", "position", "head", "lag (events)", "lag (s)", "updated"):
            table.add_column(col, justify="right")
        for s in statuses:
            table.add_row(s.name, str(s.position), str(s.head), str(s.lag_events),
                          f"{s.lag_seconds:.1f}", s.updated_at.isoformat(timespec="seconds")
                          if s.updated_at else "")
        out.print(table)


@projections_app.command("run")
def projections_run(
    once: Annotated[bool, typer.Option(help="Catch up and exit instead of running on")] = False,
    poll: Annotated[float, typer.Option(help="Seconds between polls when idle")] = 0.5,
    name: Annotated[list[str] | None, typer.Option(help="Only these projections")] = None,
) -> None:
    """Keep the projections current (continuous); --once catches up and exits."""
    import threading

    from projections.runner import ProjectionRunner

    with handled():
        runner = ProjectionRunner(_app())
        if once:
            with _progress() as progress:
                task = progress.add_task("catching up", total=None)
                done = runner.catch_up(name, lambda _n, k: progress.advance(task, k))
            out.print(", ".join(f"{k}: {v} events" for k, v in done.items()))
            return
        stop = threading.Event()
        out.print("running projections (Ctrl-C to stop)")
        try:
            runner.run_forever(stop, poll_seconds=poll, names=name)
        except KeyboardInterrupt:
            stop.set()


@projections_app.command("rebuild")
def projections_rebuild(name: Annotated[str | None, typer.Argument(
        help="Projection to rebuild (default: all)")] = None) -> None:
    """Replay the whole log into fresh tables and swap them in when caught up."""
    from rich.progress import TaskProgressColumn

    from projections.runner import ProjectionRunner

    with handled():
        runner = ProjectionRunner(_app())
        names = [runner.get(name).name] if name else [p.name for p in runner.projections]
        for n in names:
            with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                          TextColumn("{task.completed:,.0f}/{task.total:,.0f} events"),
                          TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                          console=err) as progress:
                task = progress.add_task(f"rebuild {n}", total=runner.head(), rate="")

                def advance(consumed: int, head: int, task: Any = task,
                            progress: Any = progress) -> None:
                    progress.update(task, advance=consumed, total=max(head, 1))
                    elapsed = progress.tasks[0].elapsed or 0
                    done = progress.tasks[0].completed
                    progress.update(task, rate=f"{done / elapsed:,.0f} ev/s" if elapsed else "")

                result = runner.rebuild(n, advance)
            out.print(f"rebuilt {n}: {result['events']:,} events in {result['seconds']:.2f}s "
                      f"({result['events_per_second']:,.0f} events/s), position "
                      f"{result['position']}")


# -------------------------------------------------------------------------- demo
@app.command()
def demo(loans: Annotated[int, typer.Option(help="Loans to seed")] = 100,
         days: Annotated[int, typer.Option(help="Business days to run")] = 180,
         seed: Annotated[int, typer.Option(help="Random seed")] = 7) -> None:
    """Seed a realistic portfolio on the configured database (embedded SQLite by default),
    run business days with a progress bar (projections kept current each day), then print the
    portfolio and the trial balance from the projections."""
    from ledger.bootstrap import build_app
    from ledger.demo import run_demo
    from projections.runner import ProjectionRunner

    with handled():
        if loans < 1 or days < 1:
            raise ValidationError("--loans and --days must be at least 1", field="loans",
                                  rule="positive")
        ledger = build_app(upgrade=True)
        runner = ProjectionRunner(ledger)

        with _progress() as progress:
            task = progress.add_task("business days", total=days)

            def end_of_day() -> None:
                runner.catch_up()
                progress.advance(task)

            stats = run_demo(ledger, loans=loans, days=days, seed=seed, on_day=end_of_day)
        out.print(f"seeded {loans} loans, ran {days} business days "
                  f"({stats['start']} → {stats['end']}): {stats['commands']} commands, "
                  f"{stats['events']} events in {stats['seconds']:.1f}s")
        _print_report("portfolio", Format.table)
        _print_report("trial-balance", Format.table)
        if stats.get("sample"):
            out.print("try: " + " | ".join(f"ledger loan {c} {stats['sample']}"
                                           for c in ("show", "history", "schedule"))
                      + " | ledger report delinquency | ledger projections status")


# --------------------------------------------------------------------- scheduler
scheduler_app = typer.Typer(no_args_is_help=True, help="The end-of-day scheduler.")
app.add_typer(scheduler_app, name="scheduler")


@scheduler_app.command("run")
def scheduler_run() -> None:
    """Run the end-of-day scheduler in the foreground until Ctrl-C or SIGTERM: daily at
    LEDGER_EOD_TIME in LEDGER_TIMEZONE; a run missed while it was down runs on start."""
    import signal
    import threading

    from schedulers.scheduler import run_forever

    def say(message: str) -> None:
        sys.stdout.write(message + "\n")
        sys.stdout.flush()

    with handled():
        _app()  # fails clearly on a database that is not migrated
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        run_forever(Settings(), report=say, stop=stop)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
