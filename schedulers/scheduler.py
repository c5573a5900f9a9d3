"""The end-of-day schedule: APScheduler 3.11, a daily cron trigger in the bank's timezone.

The job decides only *when* and *which business date*: at ``LEDGER_EOD_TIME`` in
``LEDGER_TIMEZONE`` it closes that calendar day (the day before when
``LEDGER_EOD_CLOSES_PREVIOUS_DAY``, for a close that runs after midnight) by calling
``Ledger.close_business_days`` on the ``ledger.service.Ledger`` the face that started the
scheduler handed it (``start_scheduler(ledger)``, ``run_forever(ledger)``); everything else is
the service's, the use case's (``ledger.eod``) and the domain's.

The job lives in the database (``scheduler_jobs``, created by alembic 0006), so a run missed
while no scheduler was up is still due when one starts: ``coalesce`` folds every missed run
into one, ``misfire_grace_time`` (default a week) lets it start late, and that one run closes
every missing day (end of day catches up). Several schedulers may run against one database
(APScheduler 3 does not coordinate them): the EOD lock lets one run at a time, and a run that
finds its day already closed does nothing — so each business day is closed exactly once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import suppress
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.events import EVENT_JOB_ERROR, JobExecutionEvent
from apscheduler.jobstores.base import ConflictingIdError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import Engine

from domain.errors import ValidationError
from ledger.persistence.tables import scheduler_jobs
from ledger.settings import Settings

if TYPE_CHECKING:
    from ledger.eod import EodSummary
    from ledger.service import Ledger

JOB_ID = "ledger-end-of-day"
JOB_FUNC = "schedulers.scheduler:scheduled_end_of_day"
log = logging.getLogger("ledger.scheduler")
Report = Callable[[str], None]

# The ledger (and the report function) of the scheduler this process runs: the stored job
# holds no arguments (no database URL or password in a pickled row), so it finds them here.
_context: dict[str, Any] = {}


class LedgerJobStore(SQLAlchemyJobStore):
    """APScheduler's SQLAlchemyJobStore on the ledger's ``scheduler_jobs`` table.

    The table belongs to alembic (0006, same DDL); ``start`` checks it exists instead of
    letting the store create it on its own."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine=engine, tablename=scheduler_jobs.name)

    def start(self, scheduler: Any, alias: str) -> None:
        if not inspect(self.engine).has_table(scheduler_jobs.name):
            from ledger.persistence.migrations import SchemaNotReady

            raise SchemaNotReady(
                f"no {scheduler_jobs.name} table: run `ledger db upgrade` first",
                field="database_url",
                rule="migrated",
            )
        super(SQLAlchemyJobStore, self).start(scheduler, alias)  # skip the CREATE TABLE


# ---------------------------------------------------------------------- when and which day
def zone(settings: Settings) -> ZoneInfo:
    try:
        return ZoneInfo(settings.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            f"unknown timezone {settings.timezone!r} (an IANA name such as Asia/Shanghai)",
            field="timezone",
            rule="iana_zone",
        ) from None


def eod_time(settings: Settings) -> time:
    hour, minute = settings.eod_time.split(":")
    return time(int(hour), int(minute))


def trigger(settings: Settings) -> CronTrigger:
    at = eod_time(settings)
    return CronTrigger(hour=at.hour, minute=at.minute, timezone=zone(settings))


def business_date_to_close(settings: Settings, now: datetime) -> date:
    """The last business date whose end-of-day time has passed at ``now``.

    At 22:30 local on 5 March that is 5 March (4 March with ``eod_closes_previous_day``); at
    09:00 on 6 March it is still 5 March, so a late, caught-up run closes the right day."""
    local = now.astimezone(zone(settings))
    day = local.date() if local.time() >= eod_time(settings) else local.date() - timedelta(days=1)
    return day - timedelta(days=1) if settings.eod_closes_previous_day else day


# ---------------------------------------------------------------------- the job
def scheduled_end_of_day() -> EodSummary:
    """The stored job (``JOB_FUNC``): close through the business date that is due, unless it
    is already closed."""
    ledger: Ledger | None = _context.get("ledger")
    if ledger is None:
        raise RuntimeError(
            "the end-of-day job has no ledger: start the scheduler with"
            " start_scheduler(ledger) or run_forever(ledger)"
        )
    report: Report = _context.get("report") or log.info
    settings = ledger.settings
    through = business_date_to_close(settings, datetime.now(zone(settings)))
    closed = ledger.closed_through()
    already = closed is not None and closed >= through
    report(
        f"end of day: already closed through {closed}; nothing to do"
        if already
        else f"end of day: closing through {through} (closed through {closed or 'none'})"
    )
    summary = ledger.close_business_days(
        through, wait=settings.scheduler_lock_wait, skip_if_closed=True
    )
    if summary.skipped:
        if not already:
            report(
                f"end of day: another run closed through {summary.closed_through}; nothing to do"
            )
    else:
        report(
            f"end of day: closed through {through}: {summary.loans} loans, "
            f"{summary.events} events in {summary.seconds:.1f}s "
            f"({summary.loans_per_second:,.0f} loans/s)"
        )
    return summary


# ---------------------------------------------------------------------- the scheduler
def build_scheduler(settings: Settings) -> BackgroundScheduler:
    engine = create_engine(settings.database_url, pool_pre_ping=True)
    return BackgroundScheduler(
        jobstores={"default": LedgerJobStore(engine)},
        executors={"default": {"type": "threadpool", "max_workers": 1}},
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": settings.scheduler_misfire_grace,
        },
        timezone=zone(settings),
    )


def ensure_job(scheduler: BackgroundScheduler, settings: Settings) -> None:
    """Put the end-of-day job in the store unless it is there. A stored job keeps its next
    run time (a run missed during downtime stays due); a changed time or zone reschedules
    it without dropping a run that is already due."""
    wanted = trigger(settings)
    job = scheduler.get_job(JOB_ID)
    if job is None:
        with suppress(ConflictingIdError):  # another scheduler stored it first
            scheduler.add_job(JOB_FUNC, wanted, id=JOB_ID, name="close the business day")
        return
    if repr(job.trigger) != repr(wanted):  # the repr names fields and timezone
        upcoming = wanted.get_next_fire_time(None, datetime.now(wanted.timezone))
        due = job.next_run_time
        job.modify(
            trigger=wanted, next_run_time=min(due, upcoming) if due and upcoming else upcoming
        )


def start_scheduler(ledger: Ledger, report: Report | None = None) -> BackgroundScheduler:
    """Start the end-of-day scheduler in this process (background threads) and return it;
    its job closes business days on ``ledger`` (one scheduler per process: a second start
    hands the job its own ledger instead). ``run_forever`` wraps it for ``ledger scheduler
    run``; a server starts it beside its other work. Call ``shutdown()`` to stop it."""
    settings = ledger.settings
    _context.update(ledger=ledger, report=report)
    scheduler = build_scheduler(settings)
    scheduler.start(paused=True)
    ensure_job(scheduler, settings)
    if report is not None:
        scheduler.add_listener(lambda e: _report_failure(e, report), EVENT_JOB_ERROR)
    scheduler.resume()
    return scheduler


def _report_failure(event: JobExecutionEvent, report: Report) -> None:
    report(f"end of day failed: {type(event.exception).__name__}: {event.exception}")


def run_forever(
    ledger: Ledger, report: Report = print, stop: threading.Event | None = None
) -> None:
    """``ledger scheduler run``: the scheduler in the foreground until ``stop`` is set (the
    CLI sets it on SIGINT/SIGTERM); a running end of day finishes its chunk first. The
    caller built ``ledger`` and closes it afterwards."""
    settings = ledger.settings
    stop = stop or threading.Event()
    scheduler = start_scheduler(ledger, report)
    job = scheduler.get_job(JOB_ID)
    report(
        f"scheduler: end of day daily at {settings.eod_time} {settings.timezone}; next run "
        f"{job.next_run_time.isoformat() if job and job.next_run_time else 'none'}"
    )
    try:
        stop.wait()
    finally:
        scheduler.shutdown(wait=True)
        _context.clear()
        report("scheduler: stopped")
