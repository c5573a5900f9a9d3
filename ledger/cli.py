"""The ``ledger`` command line: a thin shell over the application.

Every error prints one line naming the field and the rule — never a traceback — and exits with
the code of its kind (``EXIT_CODES``): 2 bad input (including a bad ``LEDGER_*`` setting),
3 state or concurrency conflict, 4 unknown loan or complaint, 1 the ledger or its database
failed. ``ledger submit`` exits with the code of its most severe failure.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from decimal import Decimal
from enum import StrEnum
from functools import cache
from typing import Annotated, Any
from uuid import UUID

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from domain.errors import InvalidDate, LedgerError, ValidationError
from domain.money import parse_decimal_text
from ledger.render import Column, cell, fit_table, plain
from ledger.settings import Settings, load_settings

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Event-sourced loan ledger and servicing engine.")
db_app = typer.Typer(no_args_is_help=True, help="Create and migrate the database schema.")
loan_app = typer.Typer(no_args_is_help=True, help="Inspect one loan.")
quote_app = typer.Typer(no_args_is_help=True, help="Pure calculators (no database).")
report_app = typer.Typer(no_args_is_help=True, help="Reports read from the projections.")
projections_app = typer.Typer(no_args_is_help=True, help="Read-model projections.")
scheduler_app = typer.Typer(no_args_is_help=True, help="The end-of-day scheduler.")
app.add_typer(db_app, name="db")
app.add_typer(loan_app, name="loan")
app.add_typer(quote_app, name="quote")
app.add_typer(report_app, name="report")
app.add_typer(projections_app, name="projections")
app.add_typer(scheduler_app, name="scheduler")

out = Console()
err = Console(stderr=True)

#: Every error kind (domain.errors.KINDS) and the exit code it gives.
EXIT_CODES = {"invalid": 2, "conflict": 3, "not_found": 4, "failed": 1,
              "unauthorized": 5, "forbidden": 6}
#: For ``ledger submit``: which failure's code wins when several lines fail.
SEVERITY = ("failed", "conflict", "not_found", "invalid", "unauthorized", "forbidden")


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


# ------------------------------------------------------------------------- errors
def one_line(text: str) -> str:
    """Text safe to print on one terminal line: newlines folded, control characters shown
    escaped (a message may echo what a user typed)."""
    text = " ".join(text.split())
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode()
                   for ch in text)


def fail(message: str, code: int) -> typer.Exit:
    # soft_wrap: one line even on a pipe, where rich would otherwise wrap at 80 columns.
    err.print(f"[bold red]error:[/] {escape(one_line(message))}", highlight=False,
              soft_wrap=True)
    return typer.Exit(code)


def describe(e: LedgerError) -> str:
    where = f" [field={e.field}, rule={e.rule}]" if e.field else f" [rule={e.rule}]"
    return e.message + where


@contextmanager
def handled() -> Iterator[None]:
    """Turn whatever goes wrong into one line and an exit code; never a traceback
    (``LEDGER_DEBUG=1`` shows one for an internal error)."""
    from click.exceptions import Abort, Exit
    from sqlalchemy.exc import OperationalError

    try:
        yield
    except (Exit, Abort, typer.Exit):
        raise
    except LedgerError as e:
        raise fail(describe(e), EXIT_CODES[e.kind]) from None
    except OperationalError as e:
        reason = str(getattr(e, "orig", e)).strip().splitlines()[0]
        raise fail(f"cannot open the database at {_safe(settings().database_url)}: {reason}"
                   " [field=database_url, rule=reachable]", 1) from None
    except KeyboardInterrupt:
        raise fail("interrupted; whatever was committed stays, rerunning is safe", 130) from None
    except Exception as e:
        if os.environ.get("LEDGER_DEBUG"):
            raise
        raise fail(f"internal error ({type(e).__name__}: {e}); nothing more was done —"
                   " please report it (LEDGER_DEBUG=1 shows the traceback)"
                   " [rule=internal]", 1) from None


@cache
def settings() -> Settings:
    """The process's settings, loaded and checked once (a bad variable: one line, exit 2)."""
    return load_settings()


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(the configured URL)"


def parse_date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    field = option.lstrip("-").replace("-", "_")
    try:
        if len(value) == 10:
            return date.fromisoformat(value)
    except ValueError:
        pass
    raise InvalidDate(f"{option} must be a date written YYYY-MM-DD, such as 2026-06-10;"
                      f" got {value!r}", field=field, rule="iso_date")


def parse_uuid(value: str, field: str = "loan_id") -> UUID:
    from ledger.app.commands import UUID_TEXT

    if not UUID_TEXT.fullmatch(value):
        raise ValidationError(f"{value!r} is not a {field.removesuffix('_id')} id (a UUID such"
                              " as 3f2504e0-4f89-41d3-9a0c-0305e82c3301)", field=field,
                              rule="uuid")
    return UUID(value)


def _app() -> Any:
    from ledger.bootstrap import build_ledger

    return build_ledger(settings()).app


def _json(data: Any) -> None:
    sys.stdout.write(json.dumps(plain(data), ensure_ascii=False, indent=2) + "\n")


def _csv(rows: list[dict[str, Any]], columns: list[str] | None = None) -> None:
    if not rows:
        return
    names = columns or list(rows[0])
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(names)
    writer.writerows([cell(r.get(n)) for n in names] for r in rows)


def _print_table(title: str | None, columns: list[Column], rows: list[list[str]],
                 **options: Any) -> None:
    table, left_out = fit_table(title, columns, rows, out.width, **options)
    out.print(table)
    if left_out:
        out.print(f"({len(left_out)} more column{'s' if len(left_out) > 1 else ''} at this"
                  f" width: {', '.join(c.name for c in left_out)}; use --format csv or json,"
                  " or a wider terminal)", style="dim", highlight=False)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=err)


# ---------------------------------------------------------------------------- db
@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate every table (event store and read models) through alembic."""
    from ledger.persistence import migrations

    with handled():
        url = settings().database_url
        migrations.upgrade(url)
        out.print(f"database at {_safe(url)} is at revision {migrations.current(url)}")


@db_app.command("current")
def db_current() -> None:
    """Show the schema revision of the configured database."""
    from ledger.persistence import migrations
    from ledger.persistence.migrations import check_database_exists

    with handled():
        check_database_exists(settings().database_url)
        url = settings().database_url
        out.print(f"{_safe(url)}: {migrations.current(url) or 'empty (run ledger db upgrade)'}")


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
    from dataclasses import replace

    from domain.schedule import build_schedule, monthly_due_dates
    from domain.terms import LoanTerms
    from ledger.app.views import quote_view

    with handled():
        product = settings().product_terms()
        if rounding:
            product = replace(product, rounding=rounding)
        terms = LoanTerms.create(principal=parse_decimal_text(principal, field="principal"),
                                 currency=currency,
                                 annual_rate=parse_decimal_text(annual_rate,
                                                                field="annual_rate"),
                                 term=term, method=method, day_count=day_count,
                                 product=product)
        start = parse_date(disbursed_on, "--disbursed-on") or date.today()
        due = parse_date(first_due, "--first-due") or monthly_due_dates(start, 2)[1]
        schedule = build_schedule(
            principal=terms.principal, annual_rate=terms.annual_rate, term=terms.term,
            method=terms.method, day_count=terms.day_count, start_date=start, first_due=due,
            currency=terms.money_currency, rounding=product.rounding)
        view = quote_view(schedule, currency=terms.currency, principal=terms.principal,
                          method=str(terms.method), day_count=str(terms.day_count),
                          annual_rate=terms.annual_rate, term=terms.term)
        rows = view["installments"]
        if format == Format.json:
            _json(view)
            return
        if format == Format.csv:
            _csv(rows)
            return
        table = Table(title=f"{terms.method} schedule: {view['principal']} {terms.currency} at"
                            f" {terms.annual_rate} ({terms.day_count}), {terms.term} months")
        for col in ("#", "due date", "principal", "interest", "total"):
            table.add_column(col, justify="right", no_wrap=True)
        for r in rows:
            table.add_row(str(r["number"]), r["due_date"], r["principal"], r["interest"],
                          r["total"])
        table.add_section()
        table.add_row("", "total", view["principal"], view["total_interest"], view["total"])
        out.print(table)


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
                 "LEDGER_EOD_LOCK_WAIT); then exit 3")] = None,
        yes: Annotated[bool, typer.Option(
            "--yes", "-y", help="Close more than LEDGER_EOD_CONFIRM_DAYS days at once without "
                                "asking")] = False) -> None:
    """Close business days: interest accrual, installments falling due, overdue, penalties.

    Catches up every missing day in order; safe to rerun after a crash (nothing posts twice).
    Progress counts loan-days (a loan closing three days counts three)."""
    from ledger.eod import WHOLE_BOOK, Partition, count_loan_days

    with handled():
        day = parse_date(through, "--through")
        assert day is not None
        if workers is not None and workers < 1:
            raise ValidationError("--workers must be at least 1", field="workers",
                                  rule="positive")
        part = Partition.parse(partition) if partition else WHOLE_BOOK
        ledger = _app()
        closed = ledger.closed_through()
        if part.whole and closed is not None and day <= closed:
            out.print(f"nothing to do: the ledger is closed through {closed}"
                      f" (the open business day is {ledger.business_date()})")
            return
        confirmed = yes or _confirm_far_future(ledger, day)
        ledger.check_days_ahead(day, confirm=confirmed)
        with _progress() as progress:
            label = f"closing through {day}" + ("" if part.whole else f" (partition {part.label})")
            task = progress.add_task(label + " (loan-days)",
                                     total=count_loan_days(ledger, day, part))
            summary = ledger.close_business_days(day, lambda n: progress.advance(task, n),
                                                 workers=workers, partition=partition,
                                                 wait=wait)
        where = "" if part.whole else escape(f" [partition {summary.partition}]")
        out.print(f"closed {summary.closed_from or 'all open days'} → {summary.closed_through}"
                  f"{where}: {summary.loans} loans, {summary.loan_days} loan-days,"
                  f" {summary.events} events in {summary.seconds:.2f}s"
                  f" ({summary.loans_per_second:,.0f} loans/s, {summary.workers}"
                  f" worker{'s' if summary.workers > 1 else ''})")
        if not summary.clock_advanced:
            out.print(f"the clock stays at {ledger.closed_through() or 'none'} until every "
                      f"partition of {part.count} has closed {day}")


def _confirm_far_future(ledger: Any, day: date) -> bool:
    """Ask at a terminal before closing more days than LEDGER_EOD_CONFIRM_DAYS; elsewhere
    the application refuses and says to pass --yes."""
    ahead = ledger.days_ahead(day)
    if ahead <= ledger.settings.eod_confirm_days or not sys.stdin.isatty():
        return False
    return typer.confirm(f"{day} is {ahead} days past the open business day"
                         f" {ledger.business_date()}; close all {ahead + 1} days on every"
                         " active loan?", err=True)


# ------------------------------------------------------------------------ submit
@app.command()
def submit(file: Annotated[str, typer.Argument(
        help="JSON Lines file, one command per line; - reads standard input")]) -> None:
    """Append commands from a JSONL batch; safe to rerun (each has its idempotency key).

    Prints one JSON result per line. Exits 0 when every line succeeded, else with the code of
    the most severe failure: 1 (the ledger failed) over 3 (conflict) over 4 (unknown loan or
    complaint) over 2 (bad input)."""
    from ledger.app.batch import read_batch, run_batch

    with handled():
        lines = read_batch(file)
        ledger = _app()
        failures = run_batch(ledger, lines, sys.stdout)
        if failures:
            worst = min(failures, key=lambda kind: SEVERITY.index(kind))
            err.print(f"{sum(failures.values())} command(s) failed", highlight=False)
            raise typer.Exit(EXIT_CODES[worst])


# -------------------------------------------------------------------------- loan
def _loan(loan_id: str, as_of: str | None = None) -> Any:
    uid = parse_uuid(loan_id)
    return _app().get_loan(uid, as_of=parse_date(as_of, "--as-of"))


@loan_app.command("show")
def loan_show(loan_id: str, as_of: Annotated[str | None, typer.Option(
        "--as-of", help="State at the close of this business date")] = None,
        format: Format = Format.table) -> None:
    """Balances, status and delinquency of one loan (optionally as of a past date)."""
    from ledger.app.views import loan_view

    with handled():
        view = loan_view(_loan(loan_id, as_of))
        if format == Format.json:
            _json(view)
            return
        rows = [[label, cell(value)] for label, value in _flatten(view) if value is not None]
        if format == Format.csv:
            _csv([{"field": k, "value": v} for k, v in rows])
            return
        table = Table(title=f"loan {view['loan_id']}" + (f" as of {as_of}" if as_of else ""),
                      show_header=False)
        table.add_column("field", style="bold")
        table.add_column("value", justify="right", no_wrap=True)
        for label, value in rows:
            table.add_row(label, value)
        out.print(table)


def _flatten(data: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in data.items():
        label = f"{prefix}{key}".replace("_", " ")
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key} ")
        else:
            yield label, value


@loan_app.command("history")
def loan_history(loan_id: str, format: Format = Format.table,
                 accruals: Annotated[bool, typer.Option(
                     help="Include the daily InterestAccrued and PenaltyAccrued events")] = True
                 ) -> None:
    """Every event of the loan, in order, with its business date and amounts."""
    from ledger.app.views import history_line, history_view

    with handled():
        uid = parse_uuid(loan_id)
        ledger = _app()
        events = ledger.loan_history(uid)
        rows = history_view(events, str(events[0].terms["currency"]), daily=accruals)
        if format == Format.json:
            _json(rows)
            return
        if format == Format.csv:
            _csv([{**{k: r[k] for k in ("version", "business_date", "event", "recorded_at")},
                   "details": json.dumps(r["details"], ensure_ascii=False)} for r in rows])
            return
        columns = [Column("v", numeric=True), Column("business_date", "business date",
                                                     keep=True),
                   Column("event", keep=True), Column("details")]
        _print_table(f"history of loan {uid}", columns,
                     [[str(r["version"]), r["business_date"], r["event"], history_line(r)]
                      for r in rows])


@loan_app.command("schedule")
def loan_schedule(loan_id: str, as_of: Annotated[str | None, typer.Option(
        "--as-of", help="Schedule as it stood at the close of this date")] = None,
        format: Format = Format.table) -> None:
    """The loan's installments: billed ones with what is paid, future ones as scheduled."""
    from ledger.app.views import schedule_view
    from ledger.render import money

    with handled():
        view = schedule_view(_loan(loan_id, as_of))
        rows = view["installments"]
        if format == Format.json:
            _json(view)
            return
        if format == Format.csv:
            _csv(rows)
            return
        columns = [Column("#", numeric=True), Column("due date", keep=True),
                   Column("principal", numeric=True), Column("interest", numeric=True),
                   Column("total", numeric=True), Column("state", keep=True),
                   Column("paid", numeric=True)]
        _print_table(f"schedule of loan {view['loan_id']} ({view['currency']})", columns, [
            [str(r["number"]), r["due_date"], r["principal"], r["interest"], r["total"],
             r["state"], money(Decimal(r["principal_paid"]) + Decimal(r["interest_paid"]),
                               view["currency"])] for r in rows])


@loan_app.command("list")
def loan_list(status: Annotated[str | None, typer.Option(help="e.g. active")] = None,
              limit: int = 50) -> None:
    """Loan ids from the loan directory (optionally by status)."""
    with handled():
        for loan_id in _app().loan_ids(status, limit=limit):
            out.print(str(loan_id))


# ------------------------------------------------------------------------ report
#: Per report, the columns a narrow table keeps first (others follow in report order).
TABLE_PRIORITY: dict[str, tuple[str, ...]] = {
    "complaints": ("complaint_id", "status", "category", "filed_on", "ack_sla_breached",
                   "resolve_sla_breached", "borrower_id"),
    "delinquency": ("loan_id", "dpd", "bucket", "five_category", "ifrs9_stage"),
}


def _print_report(name: str, format: Format, **options: Any) -> None:
    """Print a report read from projection tables, with how fresh each source is."""
    from ledger import report_text
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
        _csv(result.rows, result.columns)
        for s in freshness:
            err.print(report_text.freshness(s), highlight=False)
        return
    if name == "portfolio":
        for title, columns, rows in report_text.portfolio_tables(result):
            _print_table(title, columns, rows)
    elif name == "trial-balance":
        for title, columns, rows in report_text.per_currency_tables(result):
            _print_table(title, columns, rows)
    else:
        columns, rows = report_text.table(result, TABLE_PRIORITY.get(name, ()))
        _print_table(result.title, columns, rows)
    for line in report_text.totals_lines(name, result):
        out.print(line, highlight=False)
    for s in freshness:
        out.print(report_text.freshness(s), style="dim", highlight=False)


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
        columns = [Column("name", keep=True), Column("position", numeric=True),
                   Column("head", numeric=True), Column("lag_events", "lag (events)",
                                                        numeric=True),
                   Column("lag_seconds", "lag (s)", numeric=True),
                   Column("updated", keep=True, priority=60)]
        rows = [[s.name, str(s.position), str(s.head), str(s.lag_events),
                 f"{s.lag_seconds:.1f}",
                 s.updated_at.isoformat(timespec="seconds") if s.updated_at else ""]
                for s in statuses]
        failed = any(s.error for s in statuses)
        if failed:  # a projection stopped at an event: say which, and exit non-zero
            columns.append(Column("error", priority=55))
            for row, s in zip(rows, statuses, strict=True):
                row.append(f"stopped at event {s.error_position}: {s.error}" if s.error else "")
        _print_table("projections", columns, rows)
        if failed:
            raise typer.Exit(EXIT_CODES["failed"])


@projections_app.command("run")
def projections_run(
    once: Annotated[bool, typer.Option(help="Catch up and exit instead of running on")] = False,
    poll: Annotated[float, typer.Option(help="Seconds between polls when idle")] = 0.5,
    name: Annotated[list[str] | None, typer.Option(help="Only these projections")] = None,
) -> None:
    """Keep the projections current (continuous); --once catches up and exits."""
    import logging
    import threading

    from projections.failures import ProjectionFailed
    from projections.runner import ProjectionRunner

    with handled():
        runner = ProjectionRunner(_app())
        if once:
            try:
                with _progress() as progress:
                    task = progress.add_task("catching up", total=None)
                    done = runner.catch_up(name, lambda _n, k: progress.advance(task, k))
            except ProjectionFailed as e:
                out.print(", ".join(f"{k}: {v} events" for k, v in e.done.items()))
                for failure in e.failures:
                    err.print(f"[bold red]error:[/] {escape(one_line(failure.line()))}",
                              highlight=False, soft_wrap=True)
                raise typer.Exit(EXIT_CODES[e.kind]) from None
            out.print(", ".join(f"{k}: {v} events" for k, v in done.items()))
            return
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
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
         seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same "
                                                "loans, ids and events")] = 7,
         start: Annotated[str | None, typer.Option(
             help="First business day (default: DAYS days before today on a new ledger)")]
         = None,
         append: Annotated[bool, typer.Option(
             help="Add the demo to a ledger that already holds loans")] = False) -> None:
    """Seed a realistic portfolio and run business days, then print the portfolio.

    Runs on the configured database (embedded SQLite by default), with a progress bar; the
    projections are kept current each day; the portfolio and the trial balance are printed
    from them at the end."""
    from ledger.app.demo import run_demo
    from ledger.bootstrap import build_ledger
    from projections.runner import ProjectionRunner

    with handled():
        if loans < 1 or days < 1:
            raise ValidationError("--loans and --days must be at least 1", field="loans",
                                  rule="positive")
        first = parse_date(start, "--start")
        ledger = build_ledger(settings(), upgrade=True).app
        runner = ProjectionRunner(ledger)

        with _progress() as progress:
            task = progress.add_task("business days", total=days)

            def end_of_day() -> None:
                runner.catch_up()
                progress.advance(task)

            stats = run_demo(ledger, loans=loans, days=days, seed=seed, start=first,
                             append=append, on_day=end_of_day)
        out.print(f"seeded {loans} loans, ran {days} business days "
                  f"({stats['start']} → {stats['end']}): {stats['commands']} commands, "
                  f"{stats['events']} events in {stats['seconds']:.1f}s")
        _print_report("portfolio", Format.table)
        _print_report("trial-balance", Format.table)
        if stats.get("sample"):
            out.print("try: " + " | ".join(f"ledger loan {c} {stats['sample']}"
                                           for c in ("show", "history", "schedule"))
                      + " | ledger report delinquency | ledger projections status",
                      highlight=False)


# --------------------------------------------------------------------- scheduler
@scheduler_app.command("run")
def scheduler_run() -> None:
    """Run the end-of-day scheduler in the foreground until Ctrl-C or SIGTERM.

    Closes the day daily at LEDGER_EOD_TIME in LEDGER_TIMEZONE; a run missed while it was down
    runs on start."""
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
        run_forever(settings(), report=say, stop=stop)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
