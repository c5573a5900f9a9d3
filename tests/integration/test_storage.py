"""What goes into the event store comes back out unchanged, on SQLite and on PostgreSQL.

* Every Loan and Complaint event type is stored and read back by a fresh Ledger (a new
  process, as far as the store can tell): the events are equal and the rebuilt aggregates equal
  the live ones the application decided on.
* Snapshots: a loan with more events than the snapshot interval loads from a snapshot to the
  same state as a full replay.
* Stored topics are the pinned names (``loan.Disbursed``), never module paths.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
import pytest
from eventsourcing.domain import Aggregate, DomainEvent
from sqlalchemy import select

from domain.complaint import Complaint
from domain.loan import Loan
from ledger.persistence import migrations
from ledger.persistence.tables import events, snapshots
from ledger.service import Ledger

Submit = Callable[..., dict[str, Any]]
PINNED_TOPIC = re.compile(r"^(loan|complaint)\.[A-Z][A-Za-z]+$")


def event_classes(aggregate_cls: type[Aggregate]) -> set[str]:
    """The event types an aggregate can record (its nested events with a pinned topic)."""
    return {
        name
        for name, value in vars(aggregate_cls).items()
        if isinstance(value, type)
        and issubclass(value, DomainEvent)
        and "TOPIC" in vars(value)
        and name not in ("Event", "Snapshot")
    }


def state_of(aggregate: Aggregate) -> dict[str, Any]:
    return {k: v for k, v in vars(aggregate).items() if k != "_pending_events"}


def replay(stored: list[Any]) -> Any:
    """Rebuild from every event, ignoring snapshots."""
    aggregate = None
    for event in stored:
        aggregate = event.mutate(aggregate)
    return aggregate


class LiveAggregates:
    """Wraps an app's ``save`` (and end of day's ``save_many``) to keep the live aggregates
    and events it decided on."""

    def __init__(self, app: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
        self.aggregates: dict[UUID, Aggregate] = {}
        self.events: dict[UUID, list[Any]] = {}
        real_save = app.app.save

        def save(*objs: Any, **kwargs: Any) -> Any:
            pending = [e for obj in objs for e in obj.collect_events()]
            recordings = real_save(*pending, *objs, **kwargs)
            for obj in objs:
                self.aggregates[obj.id] = obj
            for event in pending:
                self.events.setdefault(event.originator_id, []).append(event)
            return recordings

        def save_many(aggregates: list[Aggregate]) -> Any:  # end of day's bulk save
            return save(*aggregates)

        monkeypatch.setattr(app.app, "save", save)
        monkeypatch.setattr(app.app, "save_many", save_many)


def a_portfolio_using_every_event_type(
    app: Ledger, submit: Submit, open_loan: Callable[..., UUID]
) -> None:
    def on(day: date, command: str, **fields: Any) -> dict[str, Any]:
        """``command`` on business day ``day``: end of day first closes the days before it."""
        if app.business_date() < day:
            app.close_business_days(day - timedelta(days=1))
        return submit(app, command, business_date=day, **fields)

    # A loan that is paid once, falls overdue, is charged a fee, restructured, written off
    # and recovers something.
    troubled = open_loan(app, borrower_id="B1")
    app.close_business_days(date(2026, 2, 10))
    on(date(2026, 2, 11), "receive_repayment", loan_id=troubled, amount="8884.88", currency="CNY")
    app.close_business_days(date(2026, 3, 15))
    on(date(2026, 3, 16), "charge_fee", loan_id=troubled, amount="50.00", kind="collection")
    on(date(2026, 3, 17), "restructure_loan", loan_id=troubled, kind="capitalization")
    on(date(2026, 3, 18), "write_off_loan", loan_id=troubled, reason="uncollectable")
    on(date(2026, 3, 19), "receive_recovery", loan_id=troubled, amount="1234.56", currency="CNY")
    # Applications that end early, and a complaint through its whole life.
    ended = {
        command: on(
            date(2026, 3, 20),
            "apply_for_loan",
            borrower_id=borrower,
            principal="1000",
            annual_rate="0.05",
            term=3,
        )["aggregate_id"]
        for command, borrower in (("reject_loan", "B3"), ("withdraw_application", "B4"))
    }
    for command, loan_id in ended.items():
        on(date(2026, 3, 21), command, loan_id=loan_id, reason="changed mind")
    filed = on(
        date(2026, 3, 21),
        "file_complaint",
        loan_id=troubled,
        category="collection_practice",
        description="called at night",
    )
    complaint = filed["aggregate_id"]
    on(date(2026, 3, 21), "acknowledge_complaint", complaint_id=complaint, handler="agent-1")
    on(date(2026, 3, 22), "escalate_complaint", complaint_id=complaint, reason="repeat")
    on(date(2026, 3, 22), "resolve_complaint", complaint_id=complaint, resolution="apologised")
    on(date(2026, 3, 23), "reopen_complaint", complaint_id=complaint, reason="happened again")
    # A loan paid off early, in JPY under ACT/ACT ISDA with equal principal.
    app.close_business_days(date(2026, 3, 23))
    paid_off = open_loan(
        app,
        borrower_id="B2",
        currency="JPY",
        principal="3000000",
        method="equal_principal",
        day_count="ACT/ACT ISDA",
        applied_on=date(2026, 3, 24),
        approved_on=date(2026, 3, 24),
        disbursed_on=date(2026, 3, 24),
        first_due=date(2026, 4, 24),
    )
    app.close_business_days(date(2026, 3, 24))
    payoff = app.get_loan(paid_off).payoff_amount(date(2026, 3, 25))
    on(date(2026, 3, 25), "receive_repayment", loan_id=paid_off, amount=str(payoff), currency="JPY")


def test_every_event_type_round_trips_storage(
    database_url: str,
    make_ledger: Callable[..., Ledger],
    submit: Submit,
    open_loan: Callable[..., UUID],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = make_ledger(database_url)
    live = LiveAggregates(app, monkeypatch)
    a_portfolio_using_every_event_type(app, submit, open_loan)

    recorded = {type(e).__name__ for evs in live.events.values() for e in evs}
    assert event_classes(Loan) | event_classes(Complaint) <= recorded

    # A new process reads everything back.
    fresh = make_ledger(database_url)
    for aggregate_id, aggregate in live.aggregates.items():
        stored = list(fresh.app.events.get(aggregate_id))
        assert stored == live.events[aggregate_id]
        assert [type(e) for e in stored] == [type(e) for e in live.events[aggregate_id]]
        reloaded = fresh.app.repository.get(aggregate_id)
        assert type(reloaded) is type(aggregate)
        assert state_of(reloaded) == state_of(aggregate)
        assert state_of(replay(stored)) == state_of(aggregate)


def test_money_keeps_its_exact_decimal_form(
    ledger_app: Ledger,
    submit: Submit,
    open_loan: Callable[..., UUID],
    database_url: str,
    make_ledger: Callable[..., Ledger],
) -> None:
    loan_id = open_loan(ledger_app, principal="98765.43")
    submit(
        ledger_app,
        "receive_repayment",
        loan_id=loan_id,
        amount="0.10",
        currency="CNY",
        business_date=date(2026, 1, 11),
    )

    history = make_ledger(database_url).loan_history(loan_id)

    disbursed = next(e for e in history if isinstance(e, Loan.Disbursed))
    assert disbursed.amount == Decimal("98765.43")
    assert str(disbursed.amount) == "98765.43"
    repaid = next(e for e in history if isinstance(e, Loan.RepaymentReceived))
    assert isinstance(repaid.amount, Decimal) and str(repaid.amount) == "0.10"
    assert isinstance(repaid.business_date, date)


def test_stored_topics_are_the_pinned_names(
    ledger_app: Ledger, submit: Submit, open_loan: Callable[..., UUID]
) -> None:
    a_portfolio_using_every_event_type(ledger_app, submit, open_loan)

    with ledger_app.engine.connect() as conn:
        topics = set(conn.execute(select(events.c.topic).distinct()).scalars())

    assert {
        "loan.Applied",
        "loan.Disbursed",
        "loan.InterestAccrued",
        "loan.WrittenOff",
        "complaint.Filed",
        "complaint.Reopened",
    } <= topics
    assert all(PINNED_TOPIC.match(t) for t in topics), sorted(topics)
    assert not any(":" in t or "domain" in t for t in topics)


def test_a_long_loan_loads_from_a_snapshot_to_the_state_of_a_full_replay(
    database_url: str,
    make_ledger: Callable[..., Ledger],
    open_loan: Callable[..., UUID],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = make_ledger(database_url, snapshot_interval=10)
    loan_id = open_loan(app)
    # Forty-odd closed days: far more events than the snapshot interval.
    app.close_business_days(date(2026, 2, 25))
    app.close_business_days(date(2026, 2, 27))
    stored = list(app.app.events.get(loan_id))
    assert len(stored) > 40

    with app.engine.connect() as conn:
        rows = conn.execute(
            select(snapshots.c.originator_version, snapshots.c.topic).where(
                snapshots.c.originator_id == loan_id
            )
        ).all()
    assert rows, "no snapshot was taken"
    assert {row.topic for row in rows} == {"loan.Snapshot"}  # pinned, not a module path
    latest = max(version for version, _ in rows)
    assert latest % 10 == 0 and latest > len(stored) - 10
    # The snapshot names the aggregate by its pinned topic in its state, not a module path.
    snapshot = app.app.snapshots.get(loan_id, desc=True, limit=1)  # type: ignore[union-attr]
    assert next(iter(snapshot)).topic == "loan"

    # A fresh instance loads from the latest snapshot and only the events after it.
    fresh = make_ledger(database_url, snapshot_interval=10)
    reads: list[dict[str, Any]] = []
    real_get = fresh.app.repository.event_store.get

    def spy(*args: Any, **kwargs: Any) -> Any:
        reads.append(kwargs)
        return real_get(*args, **kwargs)

    monkeypatch.setattr(fresh.app.repository.event_store, "get", spy)
    from_snapshot = fresh.get_loan(loan_id)
    assert reads and reads[0].get("gt") == latest

    assert from_snapshot.version == len(stored)
    assert state_of(from_snapshot) == state_of(replay(stored))
    # And a historical version below the snapshot still replays correctly.
    assert fresh.get_loan(loan_id, version=5).version == 5
    assert state_of(fresh.get_loan(loan_id, version=5)) == state_of(replay(stored[:5]))


def test_ledgers_on_different_databases_share_one_process(
    database_url: str,
    make_database_url: Callable[[], str],
    make_ledger: Callable[..., Ledger],
    open_loan: Callable[..., UUID],
    tmp_path: Path,
    count_events: Callable[[Ledger], int],
) -> None:
    # eventsourcing-sqlalchemy caches its record classes per table name for the whole
    # process; ledgers on other databases (and on the other backend) must still be separate.
    embedded = f"sqlite:///{tmp_path / 'embedded.db'}"
    migrations.upgrade(embedded)
    urls = [database_url, make_database_url(), embedded]
    apps = [make_ledger(url) for url in urls]

    loans = [open_loan(app, borrower_id=f"B{i}") for i, app in enumerate(apps)]
    for app in apps:
        app.close_business_days(date(2026, 1, 20))

    for i, app in enumerate(apps):
        assert app.loan_ids() == [loans[i]]
        assert count_events(app) == 3 + 11  # applied, approved, disbursed; 10th-20th closed
        assert app.get_loan(loans[i]).borrower_id == f"B{i}"
        assert list(app.app.events.get(loans[(i + 1) % 3])) == []


def test_the_notification_log_lists_events_in_the_order_they_were_recorded(
    ledger_app: Ledger, submit: Submit, open_loan: Callable[..., UUID]
) -> None:
    # Projections read the log by position: positions must follow each aggregate's versions
    # even when one transaction records many events of many loans (an end-of-day chunk).
    loans = [open_loan(ledger_app, borrower_id=f"B{n}") for n in range(3)]
    ledger_app.close_business_days(date(2026, 2, 12))
    paid = submit(
        ledger_app,
        "receive_repayment",
        loan_id=loans[1],
        amount="100.00",
        currency="CNY",
        business_date=date(2026, 2, 13),
    )

    log = ledger_app.app.recorder.select_notifications(start=1, limit=100_000)

    ids = [n.id for n in log]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert ids[-1] == paid["position"]
    for loan_id in loans:
        versions = [n.originator_version for n in log if n.originator_id == loan_id]
        assert versions == list(range(1, len(versions) + 1))
        assert len(versions) == ledger_app.get_loan(loan_id).version
    with ledger_app.engine.connect() as conn:
        assert conn.execute(select(events.c.id).order_by(events.c.id.desc())).first()[0] == ids[-1]


def test_a_fresh_process_reads_stored_snapshots(
    database_url: str, make_ledger: Callable[..., Ledger], open_loan: Callable[..., UUID]
) -> None:
    # Given a loan whose state is stored in snapshots (pinned topic "loan.Snapshot"),
    app = make_ledger(database_url, snapshot_interval=10)
    loan_id = open_loan(app)
    app.close_business_days(date(2026, 2, 20))
    expected = app.get_loan(loan_id).version
    # when another process, which never saw the classes register in this one, loads it,
    script = (
        "import sys, uuid\n"
        "from ledger.bootstrap import build_ledger\n"
        "from ledger.settings import Settings\n"
        "app = build_ledger(Settings(database_url=sys.argv[1], snapshot_interval=10,"
        " aggregate_cache_size=0))\n"
        "print(app.get_loan(uuid.UUID(sys.argv[2])).version)\n"
    )
    url = app.engine.url.render_as_string(hide_password=False)
    done = subprocess.run(
        [sys.executable, "-c", script, url, str(loan_id)],
        capture_output=True,
        text=True,
        check=False,
    )
    # then the snapshot resolves and the loan is whole.
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == expected


def test_a_store_written_before_write_offs_carried_their_dpd_still_loads(
    database_url: str,
    make_ledger: Callable[..., Ledger],
    submit: Submit,
    open_loan: Callable[..., UUID],
) -> None:
    # Given a loan written off 39 days late (last reclassified at DPD 31, into M2),
    app = make_ledger(database_url, snapshot_interval=10)
    loan_id = open_loan(app)
    app.close_business_days(date(2026, 3, 20))
    submit(
        app,
        "write_off_loan",
        loan_id=loan_id,
        reason="uncollectable",
        business_date=date(2026, 3, 21),
    )
    assert app.get_loan(loan_id).classification["dpd"] == 39
    # whose WrittenOff and snapshots are rewritten in the database to their form before
    # issue 8: no dpd and no class_version; installment rows of eight elements,
    with app.engine.begin() as conn:
        row = conn.execute(
            select(events.c.id, events.c.originator_version, events.c.state).where(
                events.c.topic == "loan.WrittenOff"
            )
        ).one()
        data = orjson.loads(row.state)
        assert (data.pop("dpd"), data.pop("class_version")) == (39, 2)
        conn.execute(events.update().where(events.c.id == row.id).values(state=orjson.dumps(data)))
        stored_snapshots = conn.execute(
            select(snapshots.c.originator_version, snapshots.c.state).where(
                snapshots.c.originator_id == loan_id
            )
        ).all()
        assert stored_snapshots and max(v for v, _ in stored_snapshots) < row.originator_version
        for version, state in stored_snapshots:
            snapshot = orjson.loads(state)
            snapshot["state"]["installments"] = [r[:8] for r in snapshot["state"]["installments"]]
            conn.execute(
                snapshots.update()
                .where(
                    (snapshots.c.originator_id == loan_id)
                    & (snapshots.c.originator_version == version)
                )
                .values(state=orjson.dumps(snapshot))
            )
    # a fresh ledger reads it: the event has dpd None, the loan is classified loss with the
    # last transition's DPD, as it was before, and its installments show as written off.
    fresh = make_ledger(database_url, snapshot_interval=10)
    [written_off] = [e for e in fresh.loan_history(loan_id) if isinstance(e, Loan.WrittenOff)]
    assert written_off.dpd is None
    loan = fresh.get_loan(loan_id)
    assert loan.classification == {"dpd": 31, "bucket": "M2", "category": "loss", "stage": 3}
    assert [i.state for i in loan.installments[:3]] == ["written_off"] * 3
    assert state_of(loan) == state_of(replay(list(fresh.app.events.get(loan_id))))
