"""Close business days (end of day): the run around the bulk closer.

``close_business_days`` is the use case ``ledger.service.Ledger`` offers every face (the CLI's
``ledger eod``, the scheduler's job): a day already closed is nothing to do; otherwise
``run_end_of_day`` takes the EOD lock (one end of day at a time, ``ledger.eod.lock``), records
the run in ``eod_runs``, closes the active loans chunk by chunk (``ledger.eod.bulk``) in this
process, in ``workers`` local processes or for one ``partition`` k/N, and then advances the
ledger clock — once every chunk and every partition of the date is done. The last partition to
finish advances it; until then the clock stays, so a crash anywhere before leaves a state a
rerun completes (each loan remembers its last closed day). The crash point ``eod.before_clock``
sits between the last chunk and the clock.

Closing more than ``LEDGER_EOD_CONFIRM_DAYS`` past the open business day at once needs a
confirmation; faces that take a date from a person ask ``check_days_ahead`` first.
"""

from __future__ import annotations

import time
from contextlib import suppress
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING
from uuid import uuid4

from domain.errors import InvalidDate, ValidationError
from ledger.eod.bulk import BulkCloser, Closed, Progress
from ledger.eod.lock import EodLock
from ledger.eod.partition import WHOLE_BOOK, Partition, parse_partition
from ledger.eod.workers import run_workers
from ledger.faults import crash_point
from ledger.persistence import eod_runs

if TYPE_CHECKING:
    from ledger.app.application import LoanLedger

ONE_DAY = timedelta(days=1)


@dataclass(frozen=True)
class EodSummary:
    closed_from: date | None
    closed_through: date
    loans: int
    events: int
    seconds: float
    partition: str = "1/1"
    workers: int = 1
    clock_advanced: bool = True  # False while other partitions of the date are still open
    skipped: bool = False  # the day was already closed: nothing to do
    loan_days: int = 0  # loans × days closed (a loan catching up three days counts three)

    @classmethod
    def nothing_to_do(
        cls, closed: date, seconds: float = 0.0, partition: Partition = WHOLE_BOOK
    ) -> EodSummary:
        """The ledger is already closed through ``closed``."""
        return cls(
            closed_from=None,
            closed_through=closed,
            loans=0,
            events=0,
            seconds=seconds,
            partition=partition.label,
            clock_advanced=False,
            skipped=True,
        )

    @property
    def loans_per_second(self) -> float:
        return self.loans / self.seconds if self.seconds else 0.0


# ------------------------------------------------------------------ the use case
def days_ahead(app: LoanLedger, through: date) -> int:
    """How many days ``through`` lies past the open business day (negative: before it)."""
    return app.clock.days_ahead(through)


def check_days_ahead(app: LoanLedger, through: date, *, confirm: bool = False) -> None:
    """Closing more than ``LEDGER_EOD_CONFIRM_DAYS`` days past the open business day at once
    needs ``confirm``: each day posts interest and penalties on every active loan."""
    ahead = days_ahead(app, through)
    limit = app.settings.eod_confirm_days
    if ahead > limit and not confirm:
        raise ValidationError(
            f"--through {through} is {ahead} days past the open business day"
            f" {app.business_date()}: every active loan would post {ahead + 1} days of"
            f" interest and penalties at once (more than LEDGER_EOD_CONFIRM_DAYS={limit});"
            " pass --yes to confirm",
            field="through",
            rule="confirm_days_ahead",
        )


def close_business_days(
    app: LoanLedger,
    through: date,
    progress: Progress | None = None,
    *,
    workers: int | None = None,
    partition: str | None = None,
    wait: float | None = None,
    skip_if_closed: bool = False,
) -> EodSummary:
    """Close every business day up to ``through`` for every active loan.

    One end of day at a time (a second one waits ``wait`` seconds, default
    ``LEDGER_EOD_LOCK_WAIT``, then raises ``EndOfDayRunning``); ``progress`` is told the
    loan-days closed as they are. For the whole book a day already closed is nothing to do (a
    ``skipped`` summary); ``skip_if_closed`` asks the same again once the lock is held (a
    scheduler that waited behind another one's run)."""
    part = parse_partition(partition)
    closed = app.closed_through()
    if part.whole and closed is not None and through <= closed:
        return EodSummary.nothing_to_do(closed)
    return run_end_of_day(
        app,
        through,
        workers=workers,
        progress=progress,
        wait=wait,
        partition=part,
        skip_if_closed=skip_if_closed,
    )


# ------------------------------------------------------------------ the run
def run_end_of_day(
    app: LoanLedger,
    through: date,
    *,
    workers: int | None = None,
    partition: Partition = WHOLE_BOOK,
    progress: Progress | None = None,
    wait: float | None = None,
    skip_if_closed: bool = False,
) -> EodSummary:
    """Close every business day up to ``through``: under the EOD lock, chunk by chunk (in
    ``workers`` local processes, or for one ``partition``), then advance the clock once every
    partition of ``through`` is done.

    ``skip_if_closed``: a run that finds the clock already there once it holds the lock
    (another run closed the day meanwhile) does nothing."""
    settings = app.settings
    workers = workers or settings.eod_workers
    if workers > 1 and not partition.whole:
        raise ValidationError(
            "--workers splits the whole book; with --partition run one process per partition",
            field="workers",
            rule="whole_book",
        )
    started = time.perf_counter()
    _check_through(app, through)
    lock = EodLock(app.engine, partition, ttl=settings.eod_lock_ttl)
    lock.acquire(settings.eod_lock_wait if wait is None else wait)
    try:
        closed = _check_through(app, through)  # again: the clock may have moved meanwhile
        if skip_if_closed and closed is not None and closed >= through:
            return EodSummary.nothing_to_do(closed, time.perf_counter() - started, partition)
        run_id = _start_run(app, through, partition, lock.owner)
        try:
            if workers > 1:
                done = run_workers(app, through, workers, progress)
            else:
                done = BulkCloser(app).close(through, partition, progress)
        except BaseException:
            with suppress(Exception):  # best effort: the original error is what matters
                _finish_run(app, run_id, "failed", Closed())
            raise
        crash_point("eod.before_clock")
        advanced = _finish_run(app, run_id, "done", done, through=through, partition=partition)
    finally:
        lock.release()
    return EodSummary(
        closed_from=closed + ONE_DAY if closed else None,
        closed_through=through,
        loans=done.loans,
        loan_days=done.loan_days,
        events=done.events,
        seconds=time.perf_counter() - started,
        partition=partition.label,
        workers=workers,
        clock_advanced=advanced,
    )


def _check_through(app: LoanLedger, through: date) -> date | None:
    closed = app.closed_through()
    if closed is not None and through < closed:
        raise InvalidDate(
            f"already closed through {closed}; cannot close {through}",
            field="through",
            rule="not_before_closed",
        )
    return closed


def _start_run(app: LoanLedger, through: date, partition: Partition, owner: str) -> str:
    run_id = str(uuid4())
    with app.transaction() as session:
        eod_runs.record_start(
            session, run_id, through=through, partition=partition.label, owner=owner
        )
    return run_id


def _finish_run(
    app: LoanLedger,
    run_id: str,
    status: str,
    done: Closed,
    *,
    through: date | None = None,
    partition: Partition = WHOLE_BOOK,
) -> bool:
    """Mark the run; if it completes the set of partitions for ``through``, advance the clock
    in the same transaction. Returns whether the clock now stands at ``through``."""
    with app.transaction() as session:
        eod_runs.serialize_finishing(session)  # the last partition sees all the others' rows
        eod_runs.record_finish(session, run_id, status, done.loans, done.events)
        if status != "done" or through is None:
            return False
        if not partition.whole:
            labels = [f"{k}/{partition.count}" for k in range(1, partition.count + 1)]
            if eod_runs.partitions_done(session, through, labels) < partition.count:
                return False
        eod_runs.advance_clock(session, through)
        return True
