"""End of day: every active loan closes every business day exactly once, crash or no crash."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any
from uuid import UUID

import pytest

from domain.loan import Loan
from ledger.service import Ledger

Submit = Callable[..., dict[str, Any]]
OpenLoan = Callable[..., UUID]

# Fixed ids so two databases hold "the same" portfolio and can be compared loan by loan.
LOAN_IDS = [UUID(int=n) for n in (0xA1, 0xB2, 0xC3, 0xD4)]


def book_portfolio(app: Ledger, open_loan: OpenLoan, submit: Submit) -> list[UUID]:
    """Four loans disbursed on different days; one has a fee charged in between (its days
    before the fee are closed inline by that command); one is only approved."""
    a = open_loan(app, loan_id=str(LOAN_IDS[0]), borrower_id="B1")
    b = open_loan(
        app,
        loan_id=str(LOAN_IDS[1]),
        borrower_id="B2",
        principal="20000",
        annual_rate="0.18",
        term=6,
        day_count="ACT/365F",
        disbursed_on=date(2026, 1, 15),
        first_due=date(2026, 2, 15),
    )
    c = open_loan(
        app,
        loan_id=str(LOAN_IDS[2]),
        borrower_id="B3",
        principal="500000",
        method="equal_principal",
        term=24,
        day_count="ACT/360",
        disbursed_on=date(2026, 1, 20),
        first_due=date(2026, 2, 5),
    )
    submit(app, "charge_fee", loan_id=c, amount="300.00", business_date=date(2026, 1, 25))
    submit(
        app,
        "apply_for_loan",
        loan_id=str(LOAN_IDS[3]),
        borrower_id="B4",
        principal="1000",
        annual_rate="0.1",
        term=3,
        business_date=date(2026, 1, 5),
    )
    submit(app, "approve_loan", loan_id=LOAN_IDS[3], business_date=date(2026, 1, 6))
    return [a, b, c]


def event_log(app: Ledger, loan_id: UUID) -> list[tuple[Any, ...]]:
    """A loan's events as (topic, business date, payload) — everything but timestamps."""
    return [
        (
            type(e).TOPIC,
            e.business_date,
            {k: v for k, v in vars(e).items() if k not in ("timestamp", "business_date")},
        )
        for e in app.loan_history(loan_id)
    ]


def closed_days(app: Ledger, loan_id: UUID) -> Counter[date]:
    return Counter(
        e.business_date for e in app.loan_history(loan_id) if isinstance(e, Loan.InterestAccrued)
    )


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def test_end_of_day_closes_every_day_of_every_active_loan_once(
    ledger_app: Ledger, open_loan: OpenLoan, submit: Submit
) -> None:
    loans = book_portfolio(ledger_app, open_loan, submit)
    disbursed = {loan_id: ledger_app.get_loan(loan_id).disbursed_on for loan_id in loans}

    summary = ledger_app.close_business_days(date(2026, 2, 20))

    assert summary.loans == 3  # the approved, undisbursed loan has nothing to close
    assert summary.closed_through == date(2026, 2, 20)
    assert ledger_app.closed_through() == date(2026, 2, 20)
    assert ledger_app.business_date() == date(2026, 2, 21)
    for loan_id in loans:
        loan = ledger_app.get_loan(loan_id)
        assert loan.last_closed_on == date(2026, 2, 20)
        counted = closed_days(ledger_app, loan_id)
        assert sorted(counted) == days(disbursed[loan_id], date(2026, 2, 20))
        assert set(counted.values()) == {1}, f"a day was closed twice for {loan_id}"
    assert ledger_app.get_loan(LOAN_IDS[3]).version == 2


def test_closing_in_steps_equals_closing_at_once(
    make_database_url: Callable[[], str],
    make_ledger: Callable[..., Ledger],
    open_loan: OpenLoan,
    submit: Submit,
) -> None:
    stepwise, at_once = make_ledger(make_database_url()), make_ledger(make_database_url())
    loans = book_portfolio(stepwise, open_loan, submit)
    book_portfolio(at_once, open_loan, submit)

    for through in (date(2026, 1, 31), date(2026, 2, 1), date(2026, 2, 14), date(2026, 3, 1)):
        stepwise.close_business_days(through)
    at_once.close_business_days(date(2026, 3, 1))

    for loan_id in loans:
        assert event_log(stepwise, loan_id) == event_log(at_once, loan_id)


def test_rerunning_the_same_day_posts_nothing(
    ledger_app: Ledger, open_loan: OpenLoan, submit: Submit, count_events: Callable[[Ledger], int]
) -> None:
    book_portfolio(ledger_app, open_loan, submit)
    ledger_app.close_business_days(date(2026, 2, 20))
    before = count_events(ledger_app)

    again = ledger_app.close_business_days(date(2026, 2, 20))

    assert again.events == 0
    assert count_events(ledger_app) == before
    assert ledger_app.closed_through() == date(2026, 2, 20)


@pytest.mark.parametrize("crash_point", ["before_writing", "before_commit", "after_commit"])
def test_a_crash_mid_run_then_a_rerun_equals_an_uninterrupted_run(
    make_database_url: Callable[[], str],
    make_ledger: Callable[..., Ledger],
    open_loan: OpenLoan,
    submit: Submit,
    monkeypatch: pytest.MonkeyPatch,
    count_events: Callable[[Ledger], int],
    crash_point: str,
) -> None:
    through = date(2026, 3, 10)
    # Given the same portfolio on two databases, one chunk (one loan) per transaction
    uninterrupted = make_ledger(make_database_url(), eod_chunk_size=1)
    loans = book_portfolio(uninterrupted, open_loan, submit)
    crashed_url = make_database_url()
    crashing = make_ledger(crashed_url, eod_chunk_size=1)
    book_portfolio(crashing, open_loan, submit)
    uninterrupted.close_business_days(through)

    # When the process fails on the second chunk: before writing it, after writing its
    # events but before they commit, or just after they commit
    progress = crash_in_chunk_two(crashing, monkeypatch, crash_point)
    with pytest.raises(RuntimeError, match="power cut"):
        crashing.close_business_days(through, progress)

    # Then the first chunk is closed, the third untouched, and the clock has not moved
    first, second, third = loans
    stored = make_ledger(crashed_url)
    assert stored.get_loan(first).last_closed_on == through
    assert (stored.get_loan(second).last_closed_on == through) == (crash_point == "after_commit")
    assert stored.get_loan(third).last_closed_on < through
    assert stored.closed_through() is None

    # When end of day is rerun (by the same process: its cache must not remember the
    # uncommitted work)
    monkeypatch.undo()
    crashing.close_business_days(through)

    # Then the stored event log is exactly that of the uninterrupted run
    stored = make_ledger(crashed_url)
    for loan_id in loans:
        assert event_log(stored, loan_id) == event_log(uninterrupted, loan_id)
    assert count_events(stored) == count_events(uninterrupted)
    assert stored.closed_through() == uninterrupted.closed_through() == through


def crash_in_chunk_two(
    app: Ledger, monkeypatch: pytest.MonkeyPatch, crash_point: str
) -> Callable[[int], None] | None:
    """Arrange the failure; returns the progress callback to pass, if the failure is in it."""
    chunks: list[int] = []

    def power_cut() -> None:
        raise RuntimeError("power cut")

    if crash_point == "after_commit":
        # Progress is reported once a chunk has committed: fail as the second one reports.
        def report_then_die(_loan_days: int) -> None:
            chunks.append(1)
            if len(chunks) == 2:
                power_cut()

        return report_then_die

    if crash_point == "before_commit":
        # Inside the event store's transaction, once the chunk's rows are flushed.
        recorder = app.app.recorder
        real_insert = recorder._insert_stored_events  # type: ignore[attr-defined]

        def insert_then_die(*args: Any, **kwargs: Any) -> Any:
            chunks.append(1)
            ids = real_insert(*args, **kwargs)
            if len(chunks) == 2:
                power_cut()
            return ids

        monkeypatch.setattr(recorder, "_insert_stored_events", insert_then_die)
        return None

    real_save = app.app.save_many  # end of day's bulk save, one call per chunk

    def save_around_the_crash(aggregates: list[Any]) -> Any:
        chunks.append(len(aggregates))
        if len(chunks) == 2 and crash_point == "before_writing":
            power_cut()
        return real_save(aggregates)

    monkeypatch.setattr(app.app, "save_many", save_around_the_crash)
    return None


def test_closing_a_day_already_closed_is_nothing_to_do(
    ledger_app: Ledger, open_loan: OpenLoan, submit: Submit, count_events: Callable[[Ledger], int]
) -> None:
    book_portfolio(ledger_app, open_loan, submit)
    ledger_app.close_business_days(date(2026, 2, 20))
    before = count_events(ledger_app)

    for day in (date(2026, 2, 19), date(2026, 2, 20)):
        summary = ledger_app.close_business_days(day)
        assert summary.skipped and summary.closed_through == date(2026, 2, 20)
        assert (summary.loans, summary.events) == (0, 0)

    assert count_events(ledger_app) == before
    assert ledger_app.closed_through() == date(2026, 2, 20)
