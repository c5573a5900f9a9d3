"""The service layer: ``Ledger``, the one object every face calls (CLI today, HTTP next).

It speaks simple types over the use cases: commands in, results out; loan views as JSON-ready
dicts; end of day; projections and their reports. It holds what ``ledger.bootstrap`` wired
(the application, the projection runner, the settings) and adds no business logic of its own:
that lives in ``domain/`` and in the use cases (``ledger/app``, ``ledger/eod``). Faces never
reach past it, and it never knows which face called (no exit codes, no HTTP statuses).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import date
from typing import IO, Any
from uuid import UUID

from sqlalchemy import Engine

from domain.complaint import Complaint
from domain.loan import Loan
from domain.money import parse_decimal_text
from domain.schedule import build_schedule, monthly_due_dates
from domain.terms import LoanTerms
from ledger import eod
from ledger.app import views
from ledger.app.application import LoanLedger
from ledger.app.batch import Lines, run_batch
from ledger.app.commands import Command, parse_command
from ledger.settings import Settings
from projections.base import Projection, Report
from projections.registry import report as report_function
from projections.runner import ProjectionRunner
from projections.status import ProjectionStatus

Progress = Callable[[int], None]


class Ledger:
    """The ledger as its faces see it. Build it with ``ledger.bootstrap.build_ledger``."""

    def __init__(self, app: LoanLedger, runner_factory: Callable[..., ProjectionRunner]) -> None:
        self.app = app
        self.settings: Settings = app.settings
        self._runner_factory = runner_factory
        self.runner = runner_factory()

    @property
    def engine(self) -> Engine:
        return self.app.engine

    def close(self) -> None:
        self.app.close()
        self.app.engine.dispose()

    # ------------------------------------------------------------------ commands
    def execute(self, command: Command) -> dict[str, Any]:
        """Carry out one command (idempotent by its key); a refusal is a ``LedgerError``."""
        return self.app.execute(command)

    def execute_json(self, data: Any) -> dict[str, Any]:
        """A command as JSON data (a dict with a ``type``), validated strictly first."""
        return self.app.execute(parse_command(data))

    def submit(self, lines: Lines, out: IO[str]) -> Counter[str]:
        """A JSONL batch, line by line: one JSON result per line on ``out``; returns the
        failures by error kind."""
        return run_batch(self.app, lines, out)

    # ------------------------------------------------------------------- queries
    def get_loan(
        self, loan_id: UUID, *, version: int | None = None, as_of: date | None = None
    ) -> Loan:
        return self.app.get_loan(loan_id, version=version, as_of=as_of)

    def get_complaint(self, complaint_id: UUID) -> Complaint:
        return self.app.get_complaint(complaint_id)

    def loan_history(self, loan_id: UUID) -> list[Any]:
        return self.app.loan_history(loan_id)

    def loan_ids(
        self, status: str | None = None, *, after: str = "", limit: int | None = None
    ) -> list[UUID]:
        return self.app.loan_ids(status, after=after, limit=limit)

    def loan_view(self, loan_id: UUID, as_of: date | None = None) -> dict[str, Any]:
        """Balances, status and delinquency (``ledger loan show``)."""
        return views.loan_view(self.get_loan(loan_id, as_of=as_of))

    def schedule_view(self, loan_id: UUID, as_of: date | None = None) -> dict[str, Any]:
        """The installments, billed and scheduled (``ledger loan schedule``)."""
        return views.schedule_view(self.get_loan(loan_id, as_of=as_of))

    def history_view(self, loan_id: UUID, *, daily: bool = True) -> list[dict[str, Any]]:
        """Every event of the loan (``daily=False``: without the daily postings)."""
        events = self.loan_history(loan_id)
        return views.history_view(events, str(events[0].terms["currency"]), daily=daily)

    @staticmethod
    def quote_schedule(
        settings: Settings,
        *,
        principal: str,
        annual_rate: str,
        term: int,
        method: str,
        day_count: str,
        currency: str,
        rounding: str | None,
        disbursed_on: date | None,
        first_due: date | None,
    ) -> dict[str, Any]:
        """An amortization schedule priced before anything is booked: pure, no database."""
        product = settings.product_terms()
        if rounding:
            product = replace(product, rounding=rounding)
        terms = LoanTerms.create(
            principal=parse_decimal_text(principal, field="principal"),
            currency=currency,
            annual_rate=parse_decimal_text(annual_rate, field="annual_rate"),
            term=term,
            method=method,
            day_count=day_count,
            product=product,
        )
        start = disbursed_on or date.today()
        due = first_due or monthly_due_dates(start, 2)[1]
        schedule = build_schedule(
            principal=terms.principal,
            annual_rate=terms.annual_rate,
            term=terms.term,
            method=terms.method,
            day_count=terms.day_count,
            start_date=start,
            first_due=due,
            currency=terms.money_currency,
            rounding=product.rounding,
        )
        return views.quote_view(
            schedule,
            currency=terms.currency,
            principal=terms.principal,
            method=str(terms.method),
            day_count=str(terms.day_count),
            annual_rate=terms.annual_rate,
            term=terms.term,
        )

    # --------------------------------------------------------------------- clock
    def closed_through(self) -> date | None:
        return self.app.closed_through()

    def business_date(self) -> date:
        """The open business day."""
        return self.app.business_date()

    def today(self) -> date:
        return self.app.today()

    # ---------------------------------------------------------------- end of day
    def days_ahead(self, through: date) -> int:
        """How many days ``through`` lies past the open business day (negative: before it)."""
        return eod.days_ahead(self.app, through)

    def check_days_ahead(self, through: date, *, confirm: bool = False) -> None:
        """Closing more than ``LEDGER_EOD_CONFIRM_DAYS`` days at once needs ``confirm``."""
        eod.check_days_ahead(self.app, through, confirm=confirm)

    def close_business_days(
        self,
        through: date,
        progress: Progress | None = None,
        *,
        workers: int | None = None,
        partition: str | None = None,
        wait: float | None = None,
        skip_if_closed: bool = False,
    ) -> eod.EodSummary:
        """End of day: close every business day up to ``through`` for every active loan
        (``ledger.eod.close``). A day already closed is nothing to do (a ``skipped``
        summary); ``skip_if_closed`` checks that again once the EOD lock is held, for a
        scheduler that waited behind another run. ``progress`` is told the loan-days closed;
        ``partition`` is ``k/N``."""
        return eod.close_business_days(
            self.app,
            through,
            progress,
            workers=workers,
            partition=partition,
            wait=wait,
            skip_if_closed=skip_if_closed,
        )

    def count_loan_days(self, through: date, partition: str | None = None) -> int | None:
        """The loan-days a run through ``through`` will close (None when not known)."""
        return eod.count_loan_days(self.app, through, eod.parse_partition(partition))

    # ------------------------------------------------------- projections, reports
    def projection_runner(
        self, projections: Sequence[Projection] | None = None, **options: Any
    ) -> ProjectionRunner:
        """A runner wired like the ledger's own, for other projections or batch sizes."""
        return self._runner_factory(projections, **options)

    def catch_up(
        self, names: Iterable[str] | None = None, progress: Callable[[str, int], None] | None = None
    ) -> dict[str, int]:
        return self.runner.catch_up(names, progress)

    def projection_status(self) -> list[ProjectionStatus]:
        return self.runner.status()

    def projection_names(self) -> list[str]:
        return [p.name for p in self.runner.projections]

    def check_projection(self, name: str) -> str:
        """``name`` if it is a projection's (else ``UnknownProjection`` naming the known)."""
        return self.runner.get(name).name

    def log_head(self) -> int:
        """The notification id of the last recorded event."""
        return self.runner.head()

    def run_projections(
        self,
        stop: threading.Event,
        *,
        poll_seconds: float = 0.5,
        names: Iterable[str] | None = None,
    ) -> None:
        """Keep the projections current until ``stop`` is set."""
        self.runner.run_forever(stop, poll_seconds=poll_seconds, names=names)

    def rebuild_projection(
        self, name: str, progress: Callable[[int, int], None] | None = None
    ) -> dict[str, Any]:
        """Replay the whole log into fresh tables and swap them in when caught up."""
        return self.runner.rebuild(name, progress)

    def report(self, name: str, **options: Any) -> tuple[Report, list[ProjectionStatus]]:
        """A report read from the projections, and the freshness of each of its sources.

        Every report is given the clock's days and takes what it needs: ``business_date``,
        the open business day, and ``closed_through``, the day before it (the last closed
        business day; yesterday before the first close)."""
        from datetime import timedelta

        business_date = self.business_date()
        clock = {
            "business_date": business_date,
            "closed_through": business_date - timedelta(days=1),
        }
        with self.engine.connect() as conn:
            result = report_function(name)(conn, **{**clock, **options})
        freshness = [s for s in self.projection_status() if s.name in result.sources]
        return result, freshness

    # ---------------------------------------------------------------------- demo
    def run_demo(self, **options: Any) -> dict[str, Any]:
        from ledger.app.demo import run_demo

        return run_demo(self, **options)
