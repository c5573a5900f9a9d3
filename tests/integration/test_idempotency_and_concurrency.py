"""Retries never post twice; concurrent writers are retried, then reported as a conflict.

Concurrency is staged deterministically with two Ledger instances on one database (two
processes, as far as the event store can tell): one loads a loan, the other commits a change
to it, and only then does the first try to save.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import IntegrityError

from domain.errors import ConcurrencyConflict, IdempotencyKeyReused
from domain.loan import Loan
from ledger.app import directory
from ledger.app.commands import parse_command
from ledger.persistence.tables import loan_directory
from ledger.service import Ledger

Counter = Callable[[Ledger], int]


def repayment(loan_id: UUID, amount: str, key: str, on: date = date(2026, 1, 20)) -> dict[str, Any]:
    return {
        "type": "receive_repayment",
        "idempotency_key": key,
        "loan_id": str(loan_id),
        "amount": amount,
        "currency": "CNY",
        "business_date": on.isoformat(),
    }


def fee(loan_id: UUID, key: str, on: date = date(2026, 1, 20)) -> dict[str, Any]:
    return {
        "type": "charge_fee",
        "idempotency_key": key,
        "loan_id": str(loan_id),
        "amount": "10.00",
        "kind": "service",
        "business_date": on.isoformat(),
    }


def interleave_before_loading(
    app: Ledger, monkeypatch: pytest.MonkeyPatch, meanwhile: Callable[[int], None]
) -> list[int]:
    """Make ``app`` load a loan, then run ``meanwhile(attempt)`` (another writer), so the
    loan ``app`` decides on is stale by the time it saves. Returns the attempt log."""
    attempts: list[int] = []
    real_get_loan = app.app.get_loan

    def get_loan_then_someone_else_writes(loan_id: UUID, **kwargs: Any) -> Loan:
        loan = real_get_loan(loan_id, **kwargs)
        attempts.append(loan.version)
        meanwhile(len(attempts))
        return loan

    monkeypatch.setattr(app.app, "get_loan", get_loan_then_someone_else_writes)
    return attempts


# --------------------------------------------------------------------------- retries
def test_a_retried_command_returns_the_first_result_and_records_nothing(
    ledger_app: Ledger,
    open_loan: Callable[..., UUID],
    count_events: Counter,
    count_commands: Counter,
) -> None:
    loan_id = open_loan(ledger_app)
    first = ledger_app.execute(parse_command(repayment(loan_id, "500.00", "pay-1")))
    events, commands = count_events(ledger_app), count_commands(ledger_app)

    again = ledger_app.execute(parse_command(repayment(loan_id, "500.00", "pay-1")))

    assert again == first
    assert count_events(ledger_app) == events
    assert count_commands(ledger_app) == commands
    assert ledger_app.get_loan(loan_id).paid["principal"] + ledger_app.get_loan(loan_id).paid[
        "interest"
    ] == Decimal("500.00")


def test_a_retry_after_the_day_closed_and_a_restart_still_returns_the_first_result(
    database_url: str,
    make_ledger: Callable[..., Ledger],
    open_loan: Callable[..., UUID],
    count_events: Counter,
) -> None:
    app = make_ledger(database_url)
    loan_id = open_loan(app)
    command = {
        "type": "apply_for_loan",
        "idempotency_key": "apply-7",
        "borrower_id": "B7",
        "principal": "20000",
        "annual_rate": "0.1",
        "term": 6,
    }  # default business date
    first = app.execute(parse_command(command))
    app.close_business_days(date(2026, 2, 28))
    events = count_events(app)

    # A new process (fresh instance) receives the same retry after end of day moved on.
    restarted = make_ledger(database_url)
    again = restarted.execute(parse_command(command))

    assert again == first
    assert count_events(restarted) == events
    assert restarted.loan_ids(status="applied") == [UUID(first["aggregate_id"])]
    assert loan_id in restarted.loan_ids(status="active")


def test_the_same_key_with_a_different_command_is_refused(
    ledger_app: Ledger,
    open_loan: Callable[..., UUID],
    count_events: Counter,
    count_commands: Counter,
) -> None:
    loan_id = open_loan(ledger_app)
    ledger_app.execute(parse_command(repayment(loan_id, "500.00", "pay-1")))
    events, commands = count_events(ledger_app), count_commands(ledger_app)

    with pytest.raises(IdempotencyKeyReused) as caught:
        ledger_app.execute(parse_command(repayment(loan_id, "600.00", "pay-1")))

    assert caught.value.field == "idempotency_key"
    assert caught.value.rule == "same_key_same_command"
    assert "pay-1" in caught.value.message
    assert count_events(ledger_app) == events
    assert count_commands(ledger_app) == commands


def test_the_same_key_for_another_command_type_is_refused(
    ledger_app: Ledger, open_loan: Callable[..., UUID], count_events: Counter
) -> None:
    loan_id = open_loan(ledger_app)
    ledger_app.execute(parse_command(repayment(loan_id, "500.00", "k")))
    events = count_events(ledger_app)

    with pytest.raises(IdempotencyKeyReused):
        ledger_app.execute(parse_command(fee(loan_id, "k")))
    assert count_events(ledger_app) == events


# ----------------------------------------------------------------------- concurrency
def test_a_stale_writer_is_retried_on_fresh_state(
    database_url: str,
    make_ledger: Callable[..., Ledger],
    open_loan: Callable[..., UUID],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first_writer = make_ledger(database_url)
    second_writer = make_ledger(database_url)
    loan_id = open_loan(first_writer)

    # Given the second writer has loaded the loan when the first one charges a fee
    def fee_meanwhile(attempt: int) -> None:
        if attempt == 1:
            first_writer.execute(parse_command(fee(loan_id, "fee-1")))

    attempts = interleave_before_loading(second_writer, monkeypatch, fee_meanwhile)

    # When the second writer saves its repayment on the now stale loan
    result = second_writer.execute(parse_command(repayment(loan_id, "500.00", "pay-1")))

    # Then its save conflicted once, it re-decided on fresh state and succeeded
    assert len(attempts) == 2
    assert attempts[1] > attempts[0]
    assert result["events"][-1] == "RepaymentReceived"
    loan = first_writer.get_loan(loan_id)
    assert loan.version == result["version"]
    assert loan.fees_charged_total == Decimal("10.00")
    # The fee is paid first (penalties → fees → …), which only the fresh state knew about.
    assert loan.paid["fees"] == Decimal("10.00")
    history = [type(e).__name__ for e in first_writer.loan_history(loan_id)]
    assert history.count("FeeCharged") == 1
    assert history.count("RepaymentReceived") == 1


def test_the_same_command_racing_itself_records_once(
    database_url: str,
    make_ledger: Callable[..., Ledger],
    count_events: Counter,
    count_commands: Counter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first_writer = make_ledger(database_url)
    second_writer = make_ledger(database_url)
    command = {
        "type": "apply_for_loan",
        "idempotency_key": "apply-1",
        "borrower_id": "B1",
        "principal": "20000",
        "annual_rate": "0.1",
        "term": 6,
        "business_date": "2026-01-05",
    }
    results: list[dict[str, Any]] = []
    real_resolve = second_writer.app.clock.resolve

    # The second writer has checked the command log (nothing there yet) when the first
    # writer records the very same command.
    def resolve_while_the_first_writer_records(given: date | None) -> date:
        if not results:
            results.append(first_writer.execute(parse_command(command)))
        return real_resolve(given)

    monkeypatch.setattr(second_writer.app.clock, "resolve", resolve_while_the_first_writer_records)

    second = second_writer.execute(parse_command(command))

    assert second == results[0]
    assert count_events(first_writer) == 1
    assert count_commands(first_writer) == 1
    with first_writer.engine.connect() as conn:
        assert len(conn.execute(loan_directory.select()).all()) == 1


def test_a_writer_that_always_loses_the_race_reports_a_conflict(
    database_url: str,
    make_ledger: Callable[..., Ledger],
    open_loan: Callable[..., UUID],
    count_events: Counter,
    count_commands: Counter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first_writer = make_ledger(database_url)
    second_writer = make_ledger(database_url, command_retries=3)
    loan_id = open_loan(first_writer)

    # Every time the second writer loads the loan, the first writer changes it.
    def fee_meanwhile(attempt: int) -> None:
        first_writer.execute(parse_command(fee(loan_id, f"fee-{attempt}")))

    attempts = interleave_before_loading(second_writer, monkeypatch, fee_meanwhile)

    with pytest.raises(ConcurrencyConflict) as caught:
        second_writer.execute(parse_command(repayment(loan_id, "500.00", "pay-1")))

    assert len(attempts) == 3
    assert caught.value.field == "idempotency_key"
    assert caught.value.rule == "concurrent_modification"
    history = [type(e).__name__ for e in first_writer.loan_history(loan_id)]
    assert history.count("FeeCharged") == 3
    assert "RepaymentReceived" not in history
    assert count_commands(first_writer) == 3 + 3  # open_loan's three and the three fees


def test_when_every_save_conflicts_the_command_fails_cleanly(
    ledger_app: Ledger,
    open_loan: Callable[..., UUID],
    count_events: Counter,
    count_commands: Counter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loan_id = open_loan(ledger_app)
    events, commands = count_events(ledger_app), count_commands(ledger_app)
    saves: list[int] = []

    def conflicting_save(*aggregates: Any, **kwargs: Any) -> Any:
        saves.append(len(aggregates))
        raise IntegrityError("duplicate key value violates unique constraint")

    monkeypatch.setattr(ledger_app.app, "save", conflicting_save)

    with pytest.raises(ConcurrencyConflict):
        ledger_app.execute(parse_command(repayment(loan_id, "500.00", "pay-1")))

    assert len(saves) == ledger_app.settings.command_retries
    assert count_events(ledger_app) == events
    assert count_commands(ledger_app) == commands

    # Once the conflicts stop, a retry with the same key goes through.
    monkeypatch.undo()
    result = ledger_app.execute(parse_command(repayment(loan_id, "500.00", "pay-1")))
    assert result["events"][-1] == "RepaymentReceived"


def test_a_failure_before_commit_records_neither_events_nor_the_key(
    ledger_app: Ledger,
    open_loan: Callable[..., UUID],
    count_events: Counter,
    count_commands: Counter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loan_id = open_loan(ledger_app)
    events, commands = count_events(ledger_app), count_commands(ledger_app)

    # The events and the command-log row are written; then the process fails before commit.
    def fail_after_writing(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("connection lost")

    monkeypatch.setattr(directory, "index_loans", fail_after_writing)
    with pytest.raises(RuntimeError):
        ledger_app.execute(parse_command(repayment(loan_id, "500.00", "pay-1")))
    assert count_events(ledger_app) == events
    assert count_commands(ledger_app) == commands

    # The integration retries with the same key: the payment is posted exactly once.
    monkeypatch.undo()
    ledger_app.execute(parse_command(repayment(loan_id, "500.00", "pay-1")))
    ledger_app.execute(parse_command(repayment(loan_id, "500.00", "pay-1")))
    history = [type(e).__name__ for e in ledger_app.loan_history(loan_id)]
    assert history.count("RepaymentReceived") == 1


def test_writers_in_parallel_threads_all_land(
    database_url: str, make_ledger: Callable[..., Ledger], open_loan: Callable[..., UUID]
) -> None:
    apps = [make_ledger(database_url, command_retries=50) for _ in range(3)]
    loan_id = open_loan(apps[0])
    errors: list[BaseException] = []

    def pay_ten_times(writer: int) -> None:
        for n in range(10):
            try:
                apps[writer].execute(
                    parse_command(repayment(loan_id, "10.00", f"pay-{writer}-{n}"))
                )
            except BaseException as exc:  # reported by the assertion below
                errors.append(exc)

    threads = [threading.Thread(target=pay_ten_times, args=(w,)) for w in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    loan = apps[1].get_loan(loan_id)
    history = [type(e).__name__ for e in apps[2].loan_history(loan_id)]
    assert history.count("RepaymentReceived") == 30
    assert sum(loan.paid.values()) + loan.overpayment == Decimal("300.00")
