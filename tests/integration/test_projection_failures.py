"""A projection that cannot apply an event says which event and why, in one line, and recovers.

Each story starts from a small book (three loans, a month of closed days, a repayment), then
appends a bad stored event straight through the application's mapper and recorder — as an
old bug or an old, laxer command side could have recorded it — and runs the real projections
over it: the event is named (position, loan, topic, version, reason), everything before it is
applied, the projections that can apply it go on, the failure is on the tracking row, and once
the event is dealt with (here: deleted by the test, standing in for an operator's repair or a
fixed projection) the projection resumes and the error clears.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import StoredEvent
from sqlalchemy import delete, func, inspect, select

from ledger.persistence.tables import events
from ledger.service import Ledger
from projections.journal import trial_balance_report
from projections.positions import tracking
from projections.runner import ProjectionFailed, ProjectionRunner

Submit = Callable[..., dict[str, Any]]
PROJECTIONS = ("balances", "delinquency", "journal", "complaints")


# --------------------------------------------------------------------------- the book
@pytest.fixture
def book(
    ledger_app: Ledger, open_loan: Callable[..., UUID], submit: Submit
) -> tuple[Ledger, list[UUID]]:
    """Given three loans with a month of closed business days and one repayment."""
    loans = [open_loan(ledger_app, borrower_id=f"B{n}") for n in range(3)]
    ledger_app.close_business_days(date(2026, 2, 12))
    submit(
        ledger_app,
        "receive_repayment",
        loan_id=loans[0],
        amount="100.00",
        currency="CNY",
        business_date=date(2026, 2, 13),
    )
    return ledger_app, loans


def last_event(ledger: Ledger, loan_id: UUID, topic: str) -> Any:
    """The loan's latest event of ``topic``, decoded (a template for a bad one)."""
    with ledger.engine.connect() as conn:
        row = conn.execute(
            select(events)
            .where(events.c.originator_id == loan_id, events.c.topic == topic)
            .order_by(events.c.id.desc())
            .limit(1)
        ).one()
    return ledger.app.mapper.to_domain_event(
        StoredEvent(
            originator_id=row.originator_id,
            originator_version=row.originator_version,
            topic=row.topic,
            state=bytes(row.state),
        )
    )


def append(
    ledger: Ledger,
    loan_id: UUID,
    event: Any | None = None,
    *,
    topic: str | None = None,
    state: bytes | None = None,
    **changes: Any,
) -> int:
    """Record one more event of the loan, bypassing the command side: ``event`` with
    ``changes``, or raw ``topic`` and ``state``. Returns its position (notification id)."""
    with ledger.engine.connect() as conn:
        version = (
            int(
                conn.execute(
                    select(func.max(events.c.originator_version)).where(
                        events.c.originator_id == loan_id
                    )
                ).scalar_one()
            )
            + 1
        )
    if event is not None:
        bad = object.__new__(type(event))
        object.__setattr__(
            bad, "__dict__", {**vars(event), **changes, "originator_version": version}
        )
        stored = ledger.app.mapper.to_stored_event(bad)
    else:
        assert topic is not None and state is not None
        stored = StoredEvent(
            originator_id=loan_id, originator_version=version, topic=topic, state=state
        )
    [position] = ledger.app.recorder.insert_events([stored]) or [0]
    return int(position)


def delete_event(app: Ledger, position: int) -> None:
    """Stand-in for the operator's repair of the bad event."""
    with app.engine.begin() as conn:
        conn.execute(delete(events).where(events.c.id == position))


def positions(runner: ProjectionRunner) -> dict[str, int]:
    return {s.name: s.position for s in runner.status()}


def errors(runner: ProjectionRunner) -> dict[str, tuple[str | None, int | None]]:
    return {s.name: (s.error, s.error_position) for s in runner.status()}


# --------------------------------------------------------------------------- stories
def test_an_entry_that_does_not_balance_is_named_and_everything_before_it_is_applied(
    book: tuple[Ledger, list[UUID]], submit: Submit
) -> None:
    app, loans = book
    # Given a repayment of 101.00 recorded with an allocation of 100.00 (its parts do not add
    # up: the journal's posting rule must refuse it), followed by a good repayment,
    paid = last_event(app, loans[0], "loan.RepaymentReceived")
    bad = append(app, loans[0], paid, amount=Decimal("101.00"))
    submit(
        app,
        "receive_repayment",
        loan_id=loans[1],
        amount="50.00",
        currency="CNY",
        business_date=date(2026, 2, 13),
    )
    runner = app.runner  # every projection; the whole log is one batch
    head = runner.head()

    # when the projections catch up,
    with pytest.raises(ProjectionFailed) as caught:
        runner.catch_up()

    # then one line names the event: position, loan, topic, version and the reason,
    failure = caught.value
    version = paid.originator_version + 1
    assert failure.message == (
        f"projection journal cannot apply event {bad} (loan.RepaymentReceived of loan "
        f"{loans[0]}, version {version}): UnbalancedEntry: entry in CNY is off by 1.00"
    )
    assert "\n" not in failure.message and failure.kind == "failed"
    assert [f.projection for f in failure.failures] == ["journal"]
    # the journal applied everything before it (in the same batch) and stopped there,
    assert positions(runner)["journal"] == bad - 1
    assert failure.done["journal"] == bad - 1
    with app.engine.connect() as conn:
        assert trial_balance_report(conn).totals["balanced"]
    # the projections that can apply it went on to the head,
    assert {n: p for n, p in positions(runner).items() if n != "journal"} == {
        "balances": head,
        "delinquency": head,
        "complaints": head,
    }
    # and status shows the failure beside the journal (the trial balance's source) only.
    assert errors(runner) == {
        "balances": (None, None),
        "delinquency": (None, None),
        "journal": (failure.message, bad),
        "complaints": (None, None),
    }
    journal = next(s for s in runner.status() if s.name == "journal")
    assert journal.failed and journal.as_dict()["error_position"] == bad
    assert journal.failed_at is not None and journal.lag_events == head - bad + 1

    # Running again fails again at the same event, and moves nothing.
    with pytest.raises(ProjectionFailed, match=f"cannot apply event {bad} "):
        runner.catch_up(["journal"])
    assert positions(runner)["journal"] == bad - 1

    # Once the event is dealt with, the journal resumes and the error clears.
    delete_event(app, bad)
    assert runner.catch_up() == {
        "balances": 0,
        "delinquency": 0,
        "journal": head - bad,
        "complaints": 0,
    }
    assert positions(runner)["journal"] == head
    assert errors(runner)["journal"] == (None, None)


def test_the_first_bad_event_is_named_when_a_batch_holds_several(
    book: tuple[Ledger, list[UUID]],
) -> None:
    app, loans = book
    paid = last_event(app, loans[0], "loan.RepaymentReceived")
    first = append(app, loans[0], paid, amount=Decimal("100.01"))
    second = append(app, loans[0], paid, amount=Decimal("100.02"))
    runner = app.projection_runner(batch_size=64)
    with pytest.raises(ProjectionFailed, match=f"cannot apply event {first} .* off by 0.01$"):
        runner.catch_up(["journal"])
    assert positions(runner)["journal"] == first - 1
    delete_event(app, first)
    with pytest.raises(ProjectionFailed, match=f"cannot apply event {second} .* off by 0.02$"):
        runner.catch_up(["journal"])
    assert errors(runner)["journal"][1] == second


def test_an_event_that_does_not_decode_is_named_and_status_still_answers(
    book: tuple[Ledger, list[UUID]],
) -> None:
    app, loans = book
    # Given a stored event whose state is not the codec's (garbage bytes),
    bad = append(app, loans[2], topic="loan.InterestAccrued", state=b"\x00 not an event")
    runner = app.runner
    # when the projections catch up, every loan projection names it and complaints (which
    # never decodes loan events) goes on,
    with pytest.raises(ProjectionFailed) as caught:
        runner.catch_up()
    assert [f.projection for f in caught.value.failures] == ["balances", "delinquency", "journal"]
    assert caught.value.message.startswith(
        f"3 projections failed: projection balances cannot apply event {bad} "
        f"(loan.InterestAccrued of loan {loans[2]}, version "
    )
    assert "cannot decode the stored event" in caught.value.failures[0].reason
    assert "\n" not in caught.value.message
    # and status still answers (its lag cannot be timed from an event it cannot read).
    statuses = {s.name: s for s in runner.status()}
    assert statuses["complaints"].lag_events == 0
    assert statuses["journal"].error_position == bad and statuses["journal"].lag_seconds >= 0
    delete_event(app, bad)
    runner.catch_up()
    assert set(errors(runner).values()) == {(None, None)}


def test_an_amount_beyond_numeric_20_4_is_named_not_a_stalled_copy(
    book: tuple[Ledger, list[UUID]], submit: Submit
) -> None:
    app, loans = book
    # Given a repayment of 10^17 held as overpayment (it balances, but NUMERIC(20,4) holds
    # less than 10^16), then a good repayment,
    paid = last_event(app, loans[0], "loan.RepaymentReceived")
    huge = Decimal(10) ** 17
    bad = append(
        app,
        loans[0],
        paid,
        amount=huge,
        overpayment=huge,
        allocation={
            **paid.allocation,
            "lines": [],
            "penalty": "0",
            "interest": "0",
            "fees": "0",
            "principal": "0",
            "remainder": str(huge),
        },
    )
    submit(
        app,
        "receive_repayment",
        loan_id=loans[1],
        amount="50.00",
        currency="CNY",
        business_date=date(2026, 2, 13),
    )
    runner = app.runner
    head = runner.head()
    if app.engine.dialect.name != "postgresql":
        # SQLite stores NUMERIC with REAL affinity: the row is written, and the reports read it.
        runner.catch_up()
        for name in ("balances", "trial-balance", "portfolio"):
            app.report(name)
        return
    # when the projections catch up on PostgreSQL,
    with pytest.raises(ProjectionFailed) as caught:
        runner.catch_up()
    # then the two that store the amount name the event and the server's reason,
    assert [f.projection for f in caught.value.failures] == ["balances", "journal"]
    for failed in caught.value.failures:
        assert failed.line().startswith(
            f"projection {failed.projection} cannot apply event {bad} (loan.RepaymentReceived"
            f" of loan {loans[0]}, version {paid.originator_version + 1}): "
            "NumericValueOutOfRange: numeric field overflow (A field with precision 20, "
            "scale 4 must round to an absolute value less than 10^16.) [COPY "
        )
    # the others went on,
    assert positions(runner) == {
        "balances": bad - 1,
        "delinquency": head,
        "journal": bad - 1,
        "complaints": head,
    }
    # and after the repair both resume.
    delete_event(app, bad)
    runner.catch_up()
    assert set(positions(runner).values()) == {head}
    assert set(errors(runner).values()) == {(None, None)}


def test_a_failed_rebuild_names_the_event_and_leaves_the_live_tables(
    book: tuple[Ledger, list[UUID]],
) -> None:
    app, loans = book
    runner = app.projection_runner(batch_size=16, rebuild_batch_size=16)
    runner.catch_up()
    live = _journal_rows(app)
    position = positions(runner)["journal"]
    # Given a bad event after the journal's position,
    paid = last_event(app, loans[0], "loan.RepaymentReceived")
    bad = append(app, loans[0], paid, amount=Decimal("99.00"))
    # when the journal is rebuilt (the event falls in its last batches),
    with pytest.raises(ProjectionFailed) as caught:
        runner.rebuild("journal")
    # then the event is named, as met by the rebuild,
    [failed] = caught.value.failures
    assert failed.rebuild and (failed.position, failed.aggregate_id) == (bad, str(loans[0]))
    assert caught.value.message.startswith(
        f"rebuild of projection journal cannot apply event {bad} (loan.RepaymentReceived"
    )
    # the live tables and position are as they were, no shadow table or position is left,
    assert _journal_rows(app) == live and positions(runner)["journal"] == position
    assert not [t for t in inspect(app.engine).get_table_names() if t.endswith("__rebuild")]
    with app.engine.connect() as conn:
        assert set(conn.execute(select(tracking.c.name)).scalars()) == set(PROJECTIONS)
    # and the live projection's own record is untouched by the rebuild.
    assert errors(runner)["journal"] == (None, None)
    # After the repair a rebuild goes through.
    delete_event(app, bad)
    assert runner.rebuild("journal")["position"] == runner.head()
    assert _journal_rows(app) == live


def _journal_rows(app: Ledger) -> list[tuple[Any, ...]]:
    from projections.journal import journal_entries

    with app.engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                select(journal_entries).order_by(journal_entries.c.position, journal_entries.c.line)
            )
        ]


def test_run_forever_logs_one_line_serves_the_others_and_retries_with_a_back_off(
    book: tuple[Ledger, list[UUID]], submit: Submit, caplog: pytest.LogCaptureFixture
) -> None:
    app, loans = book
    paid = last_event(app, loans[0], "loan.RepaymentReceived")
    bad = append(app, loans[0], paid, amount=Decimal("101.00"))
    runner = app.runner
    attempts: list[tuple[str, float]] = []
    real_run_batch = runner.run_batch

    def counting(projection: Any, **kwargs: Any) -> int:
        if kwargs.get("conn") is None:  # one attempt: one transaction
            attempts.append((projection.name, time.time()))  # as LogRecord.created
        return real_run_batch(projection, **kwargs)

    runner.run_batch = counting  # type: ignore[method-assign]
    stop = threading.Event()
    caplog.set_level(logging.INFO, logger="ledger.projections")
    worker = threading.Thread(
        target=runner.run_forever,
        args=(stop,),
        daemon=True,
        kwargs={"poll_seconds": 0.01, "retry_seconds": 0.2, "max_retry_seconds": 0.4},
    )
    worker.start()
    try:
        # When the journal meets the bad event, it says so in one line, three times (the
        # first failure and two retries),
        def logged_failures() -> list[logging.LogRecord]:
            return [
                r
                for r in caplog.records
                if r.name == "ledger.projections" and r.levelno == logging.ERROR
            ]

        _wait_for(lambda: len(logged_failures()) >= 3)
        failures = logged_failures()
        for record in failures:
            line = record.getMessage()
            assert line.startswith(f"projection journal cannot apply event {bad} ")
            assert "\n" not in line and record.exc_info is None
        assert failures[0].getMessage().endswith("; next attempt in 0.2 s")
        # the first after halving the batch down to the event (a bounded number of
        # attempts), each retry after its back-off (0.2 s, then 0.4 s) with a single attempt
        # at the event alone: no busy loop,
        journal = [t for n, t in attempts if n == "journal"]
        assert len([t for t in journal if t <= failures[0].created]) <= 2 * 13 + 2
        assert len([t for t in journal if failures[0].created < t <= failures[2].created]) == 2
        gaps = [b.created - a.created for a, b in itertools.pairwise(failures)]
        assert gaps[0] >= 0.2 and gaps[1] >= 0.4
        # while the others are served: a new repayment reaches them.
        paid_again = submit(
            app,
            "receive_repayment",
            loan_id=loans[1],
            amount="10.00",
            currency="CNY",
            business_date=date(2026, 2, 13),
        )["position"]
        _wait_for(
            lambda: all(
                positions(runner)[n] >= paid_again
                for n in ("balances", "delinquency", "complaints")
            )
        )
        assert positions(runner)["journal"] == bad - 1
        # Once the bad event is dealt with, the next retry applies the rest and clears it.
        delete_event(app, bad)
        _wait_for(
            lambda: (
                positions(runner)["journal"] == runner.head()
                and errors(runner)["journal"] == (None, None)
            )
        )
        assert any("applies events again" in r.getMessage() for r in caplog.records)
    finally:
        stop.set()
        worker.join(timeout=10)
    assert not worker.is_alive()


def _wait_for(condition: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Poll ``condition`` until it returns something truthy (a condition, not a sleep)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        threading.Event().wait(0.01)
    raise AssertionError("condition not met within the timeout")


def test_the_migrated_tracking_table_matches_the_declared_one(ledger_app: Ledger) -> None:
    migrated = {
        c["name"]: c["nullable"]
        for c in inspect(ledger_app.engine).get_columns("projection_tracking")
    }
    assert migrated == {c.name: c.nullable for c in tracking.columns}
