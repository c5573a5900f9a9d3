"""The bulk end of day: same events as closing each loan on its own, chunk by chunk, in any
partitioning, one run at a time.

The portfolio (``book_varied_portfolio``) has loans of every kind end of day meets: on time,
never paying (overdue, penalties, delinquency transitions), paying late within grace, partly
prepaid, restructured with capitalized arrears, written off, paid off, and a JPY loan; their
ids are spread over the whole uuid space so that partitions really split them.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import insert, select

from domain.loan import Loan
from domain.loan.state import LoanStatus
from ledger.eod import BulkCloser, EndOfDayRunning, EodLock, Partition
from ledger.persistence.tables import eod_lock, eod_runs
from ledger.service import Ledger
from tests.factories import balances_of

Submit = Callable[..., dict[str, Any]]
OpenLoan = Callable[..., UUID]

_rng = random.Random(4)
VARIED_IDS = sorted((UUID(int=_rng.getrandbits(128)) for _ in range(9)), key=str)
THROUGH = date(2026, 3, 20)


def book_varied_portfolio(app: Ledger, open_loan: OpenLoan, submit: Submit) -> list[UUID]:
    """Nine loans; each line says what its borrower does (business dates before THROUGH)."""
    ids = [str(x) for x in VARIED_IDS]
    on_time = open_loan(app, loan_id=ids[0], borrower_id="B0")
    submit(
        app,
        "receive_repayment",
        loan_id=on_time,
        amount="8884.88",
        currency="CNY",
        business_date=date(2026, 2, 10),
    )
    open_loan(
        app,
        loan_id=ids[1],
        borrower_id="B1",
        principal="50000",
        term=6,
        method="equal_principal",
        day_count="ACT/360",
    )  # never pays
    late = open_loan(
        app,
        loan_id=ids[2],
        borrower_id="B2",
        principal="20000",
        annual_rate="0.18",
        day_count="ACT/365F",
        grace_days=3,
    )
    submit(
        app,
        "receive_repayment",
        loan_id=late,
        amount="1900.00",
        currency="CNY",
        business_date=date(2026, 2, 16),
    )
    prepaid = open_loan(app, loan_id=ids[3], borrower_id="B3", term=24)
    submit(
        app,
        "receive_repayment",
        loan_id=prepaid,
        amount="30000.00",
        currency="CNY",
        business_date=date(2026, 1, 25),
    )
    restructured = open_loan(app, loan_id=ids[4], borrower_id="B4", principal="80000")
    submit(
        app,
        "restructure_loan",
        loan_id=restructured,
        kind="extension",
        extend_months=6,
        capitalize_arrears=True,
        business_date=date(2026, 3, 12),
    )
    written_off = open_loan(app, loan_id=ids[5], borrower_id="B5", principal="5000", term=3)
    submit(
        app, "write_off_loan", loan_id=written_off, reason="fraud", business_date=date(2026, 3, 1)
    )
    paid_off = open_loan(app, loan_id=ids[6], borrower_id="B6", principal="1000", term=1)
    submit(
        app,
        "receive_repayment",
        loan_id=paid_off,
        amount="1010.00",
        currency="CNY",
        business_date=date(2026, 2, 10),
    )
    yen = open_loan(
        app,
        loan_id=ids[7],
        borrower_id="B7",
        principal="1000000",
        currency="JPY",
        day_count="ACT/ACT ISDA",
        disbursed_on=date(2026, 1, 20),
        first_due=date(2026, 2, 20),
    )
    submit(
        app,
        "charge_fee",
        loan_id=yen,
        amount="3000",
        kind="late_fee",
        business_date=date(2026, 2, 25),
    )
    open_loan(
        app,
        loan_id=ids[8],
        borrower_id="B8",
        disbursed_on=date(2026, 3, 18),
        first_due=date(2026, 4, 18),
    )  # disbursed two days before the close
    return [UUID(x) for x in ids]


def event_log(app: Ledger, loan_id: UUID) -> list[tuple[Any, ...]]:
    """A loan's events as (topic, version, payload) — everything but timestamps."""
    return [
        (
            type(e).TOPIC,
            e.originator_version,
            {k: v for k, v in vars(e).items() if k != "timestamp"},
        )
        for e in app.loan_history(loan_id)
    ]


def close_serially(app: Ledger, through: date) -> None:
    """The reference: each active loan loaded on its own, closed, saved on its own."""
    for loan_id in app.loan_ids(LoanStatus.ACTIVE):
        loan = app.get_loan(loan_id)
        loan.close_day(through)
        app.app.save(loan)


def interest_days(app: Ledger, loan_id: UUID) -> Counter[date]:
    return Counter(
        e.business_date for e in app.loan_history(loan_id) if isinstance(e, Loan.InterestAccrued)
    )


def closed_loan_days(app: Ledger, loans: list[UUID]) -> int:
    """Loan-days closed so far: one end-of-day ``InterestAccrued`` marks each."""
    return sum(
        1
        for loan_id in loans
        for e in app.loan_history(loan_id)
        if isinstance(e, Loan.InterestAccrued) and e.end_of_day
    )


def test_bulk_end_of_day_posts_exactly_what_closing_each_loan_alone_posts(
    make_database_url: Callable[[], str],
    make_ledger: Callable[..., Ledger],
    open_loan: OpenLoan,
    submit: Submit,
    count_events: Callable[[Ledger], int],
) -> None:
    # Given the same varied portfolio on two databases
    bulk = make_ledger(make_database_url(), eod_chunk_size=4)
    serial = make_ledger(make_database_url())
    loans = book_varied_portfolio(bulk, open_loan, submit)
    book_varied_portfolio(serial, open_loan, submit)
    before = count_events(bulk)

    # When one closes in bulk (chunks of four) and the other loan by loan
    summary = bulk.close_business_days(THROUGH)
    close_serially(serial, THROUGH)

    # Then every loan's events are the same, event by event, and so are its balances
    assert summary.loans == 7  # the written-off and the paid-off loan are not active
    assert summary.events == count_events(bulk) - before == count_events(serial) - before
    stored = make_ledger(bulk.settings.database_url)  # a fresh process's view
    for loan_id in loans:
        assert event_log(stored, loan_id) == event_log(serial, loan_id), loan_id
        assert balances_of(stored.get_loan(loan_id)) == balances_of(serial.get_loan(loan_id))
    assert stored.closed_through() == THROUGH


def test_each_chunk_loads_at_most_chunk_size_loans_and_commits_on_its_own(
    ledger_app: Ledger,
    make_ledger: Callable[..., Ledger],
    open_loan: OpenLoan,
    submit: Submit,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    book_varied_portfolio(ledger_app, open_loan, submit)
    app = make_ledger(ledger_app.settings.database_url, eod_chunk_size=2)
    loaded: list[int] = []
    saves: list[int] = []
    real_load, real_save = BulkCloser.load, app.app.save_many

    def counting_load(self: BulkCloser, ids: list[UUID]) -> dict[UUID, Loan]:
        loaded.append(len(ids))
        return real_load(self, ids)

    def counting_save(aggregates: list[Loan]) -> Any:
        saves.append(len(aggregates))
        return real_save(aggregates)

    monkeypatch.setattr(BulkCloser, "load", counting_load)
    monkeypatch.setattr(app.app, "save_many", counting_save)

    # When seven active loans are closed in chunks of two
    app.close_business_days(THROUGH)

    # Then memory holds two loans at a time, whatever the book size, and each chunk is
    # appended in one transaction of its own
    assert loaded == [2, 2, 2, 1]
    assert saves == [2, 2, 2, 1]


def test_a_late_run_catches_up_every_missing_day_in_order(
    ledger_app: Ledger, open_loan: OpenLoan, submit: Submit
) -> None:
    # Given a book closed through 10 March, then five days without end of day
    loans = book_varied_portfolio(ledger_app, open_loan, submit)
    ledger_app.close_business_days(date(2026, 3, 10))

    # When end of day runs for 15 March
    summary = ledger_app.close_business_days(date(2026, 3, 15))

    # Then every active loan closed 11–15 March, each day once, and the clock moved once
    assert summary.closed_from == date(2026, 3, 11)
    assert ledger_app.closed_through() == date(2026, 3, 15)
    for loan_id in loans:
        loan = ledger_app.get_loan(loan_id)
        if loan.status != LoanStatus.ACTIVE:
            continue
        counted = interest_days(ledger_app, loan_id)
        open_days = [
            date(2026, 3, d)
            for d in range(11, 16)
            if loan.disbursed_on and date(2026, 3, d) >= loan.disbursed_on
        ]
        assert all(counted[day] == 1 for day in open_days), loan_id
        assert loan.last_closed_on == (
            date(2026, 3, 15) if open_days else loan.disbursed_on - timedelta(days=1)
        )


def test_partitions_closed_one_by_one_equal_a_single_run_and_move_the_clock_last(
    make_database_url: Callable[[], str],
    make_ledger: Callable[..., Ledger],
    open_loan: OpenLoan,
    submit: Submit,
) -> None:
    single, split = make_ledger(make_database_url()), make_ledger(make_database_url())
    loans = book_varied_portfolio(single, open_loan, submit)
    book_varied_portfolio(split, open_loan, submit)
    single.close_business_days(THROUGH)

    # When three hosts each close their third of the loan-id space
    summaries = [split.close_business_days(THROUGH, partition=f"{k}/3") for k in (2, 3, 1)]

    # Then they shared the loans, only the last one moved the clock, and the result is the
    # single run's
    assert sum(s.loans for s in summaries) == 7
    assert all(s.loans for s in summaries), "every third holds loans"
    assert [s.clock_advanced for s in summaries] == [False, False, True]
    assert split.closed_through() == THROUGH
    for loan_id in loans:
        assert event_log(split, loan_id) == event_log(single, loan_id)


def test_two_local_workers_equal_a_single_run(
    make_database_url: Callable[[], str],
    make_ledger: Callable[..., Ledger],
    open_loan: OpenLoan,
    submit: Submit,
) -> None:
    single, parallel = make_ledger(make_database_url()), make_ledger(make_database_url())
    loans = book_varied_portfolio(single, open_loan, submit)
    book_varied_portfolio(parallel, open_loan, submit)
    single.close_business_days(THROUGH)

    before = closed_loan_days(parallel, loans)
    progress: list[int] = []
    summary = parallel.close_business_days(THROUGH, progress.append, workers=2)

    assert summary.workers == 2 and summary.loans == 7
    # The workers report loan-days, as the single process does
    assert sum(progress) == closed_loan_days(parallel, loans) - before == summary.loan_days
    assert parallel.closed_through() == THROUGH
    for loan_id in loans:
        assert event_log(parallel, loan_id) == event_log(single, loan_id)


def test_progress_counts_loan_days_and_their_total_is_known_once_the_clock_is_set(
    ledger_app: Ledger, open_loan: OpenLoan, submit: Submit
) -> None:
    loans = book_varied_portfolio(ledger_app, open_loan, submit)
    # Before the first end of day each loan closes from its own disbursement: no total
    assert ledger_app.count_loan_days(date(2026, 3, 10)) is None
    before = closed_loan_days(ledger_app, loans)  # commands' inline catch-up closed some
    first: list[int] = []
    summary = ledger_app.close_business_days(date(2026, 3, 10), first.append)
    # Progress counts loan-days, not loans: a loan catching up 28 days counts 28
    assert sum(first) == closed_loan_days(ledger_app, loans) - before == summary.loan_days
    assert sum(first) > summary.loans

    # Once the clock is set the total is active loans × days. This book was booked ahead of
    # the clock before its first close (a loan disbursed on 18 March closes nothing yet, the
    # one restructured on 12 March has closed 11 March already), so here it overcounts 6
    expected = ledger_app.count_loan_days(date(2026, 3, 15))
    assert expected == len(ledger_app.loan_ids(LoanStatus.ACTIVE)) * 5
    before = closed_loan_days(ledger_app, loans)
    second: list[int] = []
    ledger_app.close_business_days(date(2026, 3, 15), second.append)
    assert sum(second) == closed_loan_days(ledger_app, loans) - before == expected - 6
    assert ledger_app.count_loan_days(date(2026, 3, 15)) == 0


def test_the_loan_days_total_is_exact_for_a_book_at_the_clock(
    ledger_app: Ledger, open_loan: OpenLoan
) -> None:
    # Given three loans closed through 31 January
    for n in range(3):
        open_loan(ledger_app, borrower_id=f"B{n}")
    ledger_app.close_business_days(date(2026, 1, 31))

    # When end of day catches up three days, then the total was exactly what it closed
    assert ledger_app.count_loan_days(date(2026, 2, 3)) == 3 * 3
    progress: list[int] = []
    summary = ledger_app.close_business_days(date(2026, 2, 3), progress.append)
    assert sum(progress) == summary.loan_days == 9


def test_partition_ranges_cover_the_id_space_without_overlap() -> None:
    parts = [Partition(k, 4) for k in range(1, 5)]
    assert parts[0].lower == "00000000-0000-0000-0000-000000000000"
    assert [p.upper for p in parts[:-1]] == [p.lower for p in parts[1:]]
    assert parts[-1].upper is None
    assert Partition.parse("3/4") == parts[2]
    for bad in ("0/4", "5/4", "x/y", "4"):
        with pytest.raises(Exception, match="partition must be k/N"):
            Partition.parse(bad)


def test_a_second_end_of_day_is_refused_while_one_runs_and_changes_nothing(
    ledger_app: Ledger,
    make_ledger: Callable[..., Ledger],
    open_loan: OpenLoan,
    submit: Submit,
    count_events: Callable[[Ledger], int],
) -> None:
    book_varied_portfolio(ledger_app, open_loan, submit)
    before = count_events(ledger_app)
    other = make_ledger(ledger_app.settings.database_url)  # another process, as the DB sees it

    # Given an end of day holding the lock
    with EodLock(other.engine) as running:
        running.acquire()
        # When a second one starts without waiting, or a partition run starts
        with pytest.raises(EndOfDayRunning) as refused:
            ledger_app.close_business_days(THROUGH, wait=0)
        with pytest.raises(EndOfDayRunning):
            ledger_app.close_business_days(THROUGH, partition="1/2", wait=0)

    # Then it is refused with the rule named, and nothing was posted or recorded
    assert refused.value.rule == "one_end_of_day_at_a_time"
    assert refused.value.kind == "conflict"
    assert count_events(ledger_app) == before
    assert ledger_app.closed_through() is None
    # And once the first is done, end of day runs
    assert ledger_app.close_business_days(THROUGH).loans == 7


def test_partition_runs_of_different_partitions_may_hold_the_lock_together(
    ledger_app: Ledger,
) -> None:
    if ledger_app.engine.dialect.name != "postgresql":
        pytest.skip("SQLite serializes every end of day on one lock row")
    with EodLock(ledger_app.engine, Partition(1, 2)) as first:
        first.acquire()
        with EodLock(ledger_app.engine, Partition(2, 2)) as second:
            second.acquire()
            with pytest.raises(EndOfDayRunning):
                EodLock(ledger_app.engine, Partition(1, 2)).acquire()
            with pytest.raises(EndOfDayRunning):
                EodLock(ledger_app.engine).acquire()


def test_a_lock_left_by_a_dead_process_is_taken_over(ledger_app: Ledger) -> None:
    if ledger_app.engine.dialect.name == "postgresql":
        pytest.skip("PostgreSQL releases advisory locks of a dead session by itself")
    import socket
    from datetime import datetime

    # Given a lock row of a process on this host that no longer exists (SIGKILLed)
    with ledger_app.engine.begin() as conn:
        conn.execute(
            insert(eod_lock).values(
                name="eod",
                owner=f"{socket.gethostname()}:999999999:dead",
                acquired_at=datetime(2026, 1, 1),
                expires_at=datetime(2999, 1, 1),
            )
        )

    # When end of day runs, then it takes the lock over and runs
    ledger_app.close_business_days(date(2026, 1, 31))
    with ledger_app.engine.connect() as conn:
        assert conn.execute(select(eod_lock)).first() is None  # released after the run
        runs = conn.execute(select(eod_runs.c.status, eod_runs.c.partition)).all()
    assert [tuple(r) for r in runs] == [("done", "1/1")]


def test_every_run_is_recorded(ledger_app: Ledger, open_loan: OpenLoan, submit: Submit) -> None:
    book_varied_portfolio(ledger_app, open_loan, submit)
    ledger_app.close_business_days(date(2026, 3, 1))
    ledger_app.close_business_days(date(2026, 3, 2))

    with ledger_app.engine.connect() as conn:
        runs = conn.execute(
            select(eod_runs.c.through, eod_runs.c.status, eod_runs.c.loans).order_by(
                eod_runs.c.through
            )
        ).all()
    assert [(r.through, r.status) for r in runs] == [
        (date(2026, 3, 1), "done"),
        (date(2026, 3, 2), "done"),
    ]
    assert runs[0].loans > 0
