"""The end-of-day scheduler: when it runs, which day it closes, and that each business day is
closed exactly once however many schedulers run and however long they were down.

Schedulers here are real APScheduler BackgroundSchedulers, each with its own job store engine,
on the test's database, started on a ``ledger.service.Ledger`` built through the composition
root (as ``ledger scheduler run`` does); the job store row is made due by storing the job with
a past run time, as a scheduler that was down over its run time would have left it. Tests wait
for the job's completion events, never for a time.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from sqlalchemy import inspect

from domain.loan import Loan
from ledger.service import Ledger
from ledger.settings import InvalidSetting, Settings, load_settings
from schedulers import scheduler as sched

OpenLoan = Callable[..., UUID]
Submit = Callable[..., dict[str, Any]]
ZONE = "Asia/Shanghai"


def settings_for(url: str, **overrides: Any) -> Settings:
    return Settings(database_url=url, timezone=ZONE, eod_time="00:00", **overrides)


def scheduling_ledger(make_ledger: Callable[..., Ledger], url: str) -> Ledger:
    """A ledger whose scheduler closes the day at midnight in Shanghai."""
    return make_ledger(url, timezone=ZONE, eod_time="00:00")


def local_today() -> date:
    return datetime.now(sched.ZoneInfo(ZONE)).date()


@pytest.fixture
def book(ledger_app: Ledger, open_loan: OpenLoan) -> list[UUID]:
    """Three loans disbursed 3, 6 and 10 days ago (in the bank's timezone)."""
    today = local_today()
    loans = []
    for n, age in enumerate((3, 6, 10)):
        disbursed = today - timedelta(days=age)
        loans.append(
            open_loan(
                ledger_app,
                borrower_id=f"B{n}",
                applied_on=disbursed - timedelta(days=2),
                approved_on=disbursed - timedelta(days=1),
                disbursed_on=disbursed,
                first_due=disbursed + timedelta(days=30),
            )
        )
    return loans


@pytest.fixture
def due_job(ledger_app: Ledger) -> Iterator[Callable[[datetime], None]]:
    """``due_job(when)``: store the end-of-day job as if its last missed run time was
    ``when`` (a scheduler was down since)."""

    def store(when: datetime) -> None:
        settings = settings_for(ledger_app.settings.database_url)
        scheduler = sched.build_scheduler(settings)
        scheduler.start(paused=True)
        sched.ensure_job(scheduler, settings)  # stored, due tonight
        scheduler.shutdown(wait=False)
        # Then back-date it through the job store, as downtime would have left it.
        store = sched.LedgerJobStore(ledger_app.engine)
        store.start(scheduler, "default")
        job = store.lookup_job(sched.JOB_ID)
        job._modify(next_run_time=when)
        store.update_job(job)

    yield store
    sched._context.clear()


class Watched:
    """A started scheduler whose job completions are counted."""

    def __init__(self, ledger: Ledger) -> None:
        self.executed = 0
        self.errors: list[BaseException] = []
        self.done = threading.Event()
        self.scheduler = sched.start_scheduler(ledger, report=lambda _: None)
        self.scheduler.add_listener(self._seen, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)

    def _seen(self, event: Any) -> None:
        if event.exception is not None:
            self.errors.append(event.exception)
        else:
            self.executed += 1
        self.done.set()


def closed_days(app: Ledger, loan_id: UUID) -> Counter[date]:
    return Counter(
        e.business_date
        for e in app.loan_history(loan_id)
        if isinstance(e, Loan.InterestAccrued) and e.end_of_day
    )


def test_a_run_missed_while_down_is_caught_up_once_on_start(
    ledger_app: Ledger,
    make_ledger: Callable[..., Ledger],
    book: list[UUID],
    due_job: Callable[[datetime], None],
) -> None:
    today = local_today()
    # Given a ledger closed through five days ago, and a scheduler that was down since its
    # run three days ago (three runs missed)
    ledger_app.close_business_days(today - timedelta(days=5))
    due_job(datetime.now(UTC) - timedelta(days=3))

    # When a scheduler starts
    watched = Watched(scheduling_ledger(make_ledger, ledger_app.settings.database_url))
    assert watched.done.wait(120), "the missed run did not start"
    watched.scheduler.shutdown(wait=True)

    # Then the missed runs ran once (coalesced) and closed every missing day through today
    assert watched.errors == []
    assert watched.executed == 1
    app = make_ledger(ledger_app.settings.database_url)
    assert app.closed_through() == today
    for loan_id in book:
        counted = closed_days(app, loan_id)
        disbursed = app.get_loan(loan_id).disbursed_on
        assert disbursed is not None
        assert sorted(counted) == [
            disbursed + timedelta(days=n) for n in range((today - disbursed).days + 1)
        ]
        assert set(counted.values()) == {1}
    # And the stored job now waits for tonight's run
    store = sched.LedgerJobStore(app.engine)
    store.start(watched.scheduler, "check")
    stored = store.lookup_job(sched.JOB_ID)
    assert stored is not None and stored.next_run_time > datetime.now(UTC)


def test_two_schedulers_started_together_close_each_day_exactly_once(
    ledger_app: Ledger,
    make_ledger: Callable[..., Ledger],
    book: list[UUID],
    due_job: Callable[[datetime], None],
) -> None:
    today = local_today()
    # Given a due end-of-day job
    due_job(datetime.now(UTC) - timedelta(hours=1))

    # When two schedulers (separate job stores, as two processes would have) start together;
    # in one process their jobs share the ledger started last (the stored job holds no
    # arguments, so it finds its ledger in the module), each run under its own EOD lock
    url = ledger_app.settings.database_url
    first = Watched(scheduling_ledger(make_ledger, url))
    second = Watched(scheduling_ledger(make_ledger, url))
    assert first.done.wait(120) or second.done.wait(120), "no scheduler ran the job"
    for watched in (first, second):
        watched.scheduler.shutdown(wait=True)  # waits for a run in progress

    # Then every day of every loan was closed exactly once, whoever ran it
    assert first.errors == second.errors == []
    assert first.executed + second.executed >= 1
    app = make_ledger(ledger_app.settings.database_url)
    assert app.closed_through() == today
    for loan_id in book:
        counted = closed_days(app, loan_id)
        assert set(counted.values()) == {1}, f"a day was closed twice for {loan_id}"
        assert max(counted) == today


def test_two_runs_fired_at_the_same_moment_close_the_day_once(
    ledger_app: Ledger,
    make_ledger: Callable[..., Ledger],
    book: list[UUID],
    count_events: Callable[[Ledger], int],
) -> None:
    # Given two schedulers whose jobs fire at the same instant
    sched._context.update(
        ledger=scheduling_ledger(make_ledger, ledger_app.settings.database_url),
        report=lambda _: None,
    )
    start = threading.Barrier(2)
    results: list[Any] = []

    def fire() -> None:
        start.wait()
        results.append(sched.scheduled_end_of_day())

    try:
        threads = [threading.Thread(target=fire) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sched._context.clear()

    # Then one closed the day; the other waited for the lock, found it closed, did nothing
    assert sorted(r.skipped for r in results) == [False, True]
    app = make_ledger(ledger_app.settings.database_url)
    for loan_id in book:
        assert set(closed_days(app, loan_id).values()) == {1}
    assert sum(r.events for r in results) == count_events(app) - 9  # 3 loans × 3 booked


@pytest.mark.parametrize(
    ("local_time", "previous_day", "expected"),
    [
        ("2026-03-05T22:29", False, date(2026, 3, 4)),
        ("2026-03-05T22:30", False, date(2026, 3, 5)),
        ("2026-03-06T09:00", False, date(2026, 3, 5)),  # a late, caught-up run
        ("2026-03-05T22:30", True, date(2026, 3, 4)),
    ],
)
def test_the_job_closes_the_last_day_whose_close_time_has_passed(
    local_time: str, previous_day: bool, expected: date
) -> None:
    settings = Settings(timezone=ZONE, eod_time="22:30", eod_closes_previous_day=previous_day)
    now = datetime.fromisoformat(local_time).replace(tzinfo=sched.ZoneInfo(ZONE))

    assert sched.business_date_to_close(settings, now.astimezone(UTC)) == expected


def test_the_trigger_fires_daily_at_the_local_time() -> None:
    trigger = sched.trigger(Settings(timezone=ZONE, eod_time="22:30"))
    after = datetime(2026, 3, 5, 15, 0, tzinfo=UTC)  # 23:00 in Shanghai

    fire = trigger.get_next_fire_time(None, after)

    assert fire is not None
    assert fire.isoformat() == "2026-03-06T22:30:00+08:00"


def test_the_job_store_table_is_the_one_apscheduler_defines(ledger_app: Ledger) -> None:
    theirs = SQLAlchemyJobStore(engine=ledger_app.engine, tablename="scheduler_jobs").jobs_t
    inspector = inspect(ledger_app.engine)
    ours = {c["name"]: c for c in inspector.get_columns("scheduler_jobs")}

    assert set(ours) == {c.name for c in theirs.columns}
    for column in theirs.columns:
        assert ours[column.name]["nullable"] == column.nullable, column.name
    assert inspector.get_pk_constraint("scheduler_jobs")["constrained_columns"] == ["id"]
    assert {i["name"] for i in inspector.get_indexes("scheduler_jobs")} == {
        i.name for i in theirs.indexes
    }


def test_an_unknown_timezone_is_refused_naming_the_setting() -> None:
    with pytest.raises(InvalidSetting, match="IANA timezone") as caught:
        sched.trigger(load_settings(timezone="Mars/Olympus"))
    assert caught.value.field == "LEDGER_TIMEZONE"
