"""End of day beside live commands: it always finishes, and nothing is lost or posted twice.

A command that moves one of a chunk's loans between the chunk's load and its save makes the
chunk's transaction fail on that loan's version. End of day then re-loads and re-decides just
the loans that moved and saves the chunk again; a loan that keeps moving is set aside and
closed in a transaction of its own; one that moves under every attempt fails the run with a
clear error naming it (a rerun finishes).

The book: loans disbursed on 10 January and closed through 31 January, so the open business
day is 1 February. Commands omit their business date and land on it; end of day closes it.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import select

from domain.errors import ConcurrencyConflict
from domain.loan import Loan
from ledger.app.commands import parse_command
from ledger.eod import BulkCloser, EndOfDayFailed
from ledger.persistence.store import project
from ledger.persistence.tables import command_log, eod_runs
from ledger.service import Ledger
from projections.journal import trial_balance_report
from tests.factories import balances_of

Submit = Callable[..., dict[str, Any]]
OpenLoan = Callable[..., UUID]

CLOSED = date(2026, 1, 31)
OPEN_DAY = date(2026, 2, 1)
DISBURSED = date(2026, 1, 10)  # open_loan's default


def book(app: Ledger, open_loan: OpenLoan, loans: int) -> list[UUID]:
    """Given ``loans`` active loans closed through 31 January, in loan-id order."""
    ids = [open_loan(app, borrower_id=f"B{n}") for n in range(loans)]
    app.close_business_days(CLOSED)
    assert app.business_date() == OPEN_DAY
    return sorted(ids, key=str)


def end_of_day_days(app: Ledger, loan_id: UUID) -> Counter[date]:
    """How many end-of-day ``InterestAccrued`` the loan has for each business day."""
    return Counter(
        e.business_date
        for e in app.loan_history(loan_id)
        if isinstance(e, Loan.InterestAccrued) and e.end_of_day
    )


def every_day(first: date, last: date) -> Counter[date]:
    return Counter(first + timedelta(days=n) for n in range((last - first).days + 1))


def topics(app: Ledger, loan_id: UUID) -> list[str]:
    return [type(e).__name__ for e in app.loan_history(loan_id)]


class SaveSpy:
    """Records the loans of every ``save_many`` of end of day; ``before(ids)`` runs first —
    the place to stage another writer's command."""

    def __init__(
        self,
        app: Ledger,
        monkeypatch: pytest.MonkeyPatch,
        before: Callable[[list[UUID]], None] = lambda ids: None,
    ) -> None:
        self.saves: list[list[UUID]] = []
        real = app.app.save_many

        def save_many(aggregates: list[Any]) -> Any:
            ids = [a.id for a in aggregates]
            self.saves.append(ids)
            before(ids)
            return real(aggregates)

        monkeypatch.setattr(app.app, "save_many", save_many)


# ------------------------------------------------------------------ staged conflicts
def test_a_command_between_load_and_save_re_decides_only_its_loan(
    database_url: str,
    make_ledger: Callable[..., Ledger],
    open_loan: OpenLoan,
    submit: Submit,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = make_ledger(database_url, eod_chunk_size=4)
    loans = book(app, open_loan, 4)
    integration = make_ledger(database_url)  # another process, as far as the store can tell
    hit = loans[2]
    loaded: list[list[UUID]] = []
    real_load = BulkCloser.load

    # Given end of day has loaded the chunk when a fee on one of its loans commits
    def load_then_a_fee_lands(self: BulkCloser, ids: list[UUID]) -> dict[UUID, Loan]:
        chunk = real_load(self, ids)
        loaded.append(list(ids))
        if len(loaded) == 1:
            submit(integration, "charge_fee", loan_id=hit, amount="15.00", kind="late_fee")
        return chunk

    monkeypatch.setattr(BulkCloser, "load", load_then_a_fee_lands)
    spy = SaveSpy(app, monkeypatch)

    # When end of day closes the open day
    summary = app.close_business_days(OPEN_DAY)

    # Then the chunk's save failed on that loan's version, only that loan was re-loaded and
    # re-decided, and the whole chunk committed on the second save
    assert loaded == [loans, [hit]]
    assert [set(ids) for ids in spy.saves] == [set(loans), set(loans)]
    assert summary.loans == 4 and summary.events == 4  # one InterestAccrued each
    assert app.closed_through() == OPEN_DAY
    # The re-decided loan closed the day on top of the fee (which it knew nothing of before)
    assert topics(app, hit)[-2:] == ["FeeCharged", "InterestAccrued"]
    for loan_id in loans:
        assert end_of_day_days(app, loan_id) == every_day(DISBURSED, OPEN_DAY), loan_id
        versions = [e.originator_version for e in app.loan_history(loan_id)]
        assert versions == list(range(1, len(versions) + 1))


def test_a_loan_that_keeps_moving_is_set_aside_and_closed_on_its_own(
    database_url: str,
    make_ledger: Callable[..., Ledger],
    open_loan: OpenLoan,
    submit: Submit,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = make_ledger(database_url, eod_chunk_size=4, command_retries=3)
    loans = book(app, open_loan, 4)
    integration = make_ledger(database_url)
    hot = loans[1]
    fees: list[int] = []

    # Given a fee lands on one loan before each of the first three saves that include it
    def fee_first(ids: list[UUID]) -> None:
        if hot in ids and len(fees) < 3:
            fees.append(len(ids))
            submit(integration, "charge_fee", loan_id=hot, amount="1.00", kind="service")

    spy = SaveSpy(app, monkeypatch, before=fee_first)

    # When end of day closes the open day
    summary = app.close_business_days(OPEN_DAY)

    # Then the chunk was tried three times, then committed without that loan, which was then
    # closed in a transaction of its own — every loan exactly once
    assert [len(ids) for ids in spy.saves] == [4, 4, 4, 3, 1]
    assert hot not in spy.saves[3] and spy.saves[4] == [hot]
    assert summary.events == 4
    assert topics(app, hot).count("FeeCharged") == 3
    for loan_id in loans:
        assert end_of_day_days(app, loan_id) == every_day(DISBURSED, OPEN_DAY), loan_id
    assert app.closed_through() == OPEN_DAY


def test_a_loan_that_moves_under_every_attempt_fails_the_run_naming_it(
    database_url: str,
    make_ledger: Callable[..., Ledger],
    open_loan: OpenLoan,
    submit: Submit,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = make_ledger(database_url, eod_chunk_size=4, command_retries=2)
    loans = book(app, open_loan, 4)
    integration = make_ledger(database_url)
    hot = loans[3]

    # Given a fee lands on one loan before every save that includes it
    def fee_first(ids: list[UUID]) -> None:
        if hot in ids:
            submit(integration, "charge_fee", loan_id=hot, amount="1.00", kind="service")

    SaveSpy(app, monkeypatch, before=fee_first)

    # When end of day runs, then it fails with a clear error naming the loan
    with pytest.raises(EndOfDayFailed) as failed:
        app.close_business_days(OPEN_DAY)
    assert str(hot) in failed.value.message
    assert failed.value.rule == "concurrent_modification"
    # And the other loans of the chunk are closed, the hammered one is not, the clock stays
    fresh = make_ledger(database_url)
    assert [fresh.get_loan(x).last_closed_on == OPEN_DAY for x in loans] == [True] * 3 + [False]
    assert fresh.closed_through() == CLOSED
    with fresh.engine.connect() as conn:
        assert conn.execute(
            select(eod_runs.c.status).where(eod_runs.c.through == OPEN_DAY)
        ).scalars().all() == ["failed"]

    # And once the commands calm down a rerun closes just that loan
    monkeypatch.undo()
    rerun = make_ledger(database_url).close_business_days(OPEN_DAY)
    assert rerun.events == 1
    for loan_id in loans:
        assert end_of_day_days(fresh, loan_id) == every_day(DISBURSED, OPEN_DAY), loan_id


def test_snapshot_failures_after_the_commit_never_fail_the_run(
    database_url: str,
    make_ledger: Callable[..., Ledger],
    open_loan: OpenLoan,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = make_ledger(database_url, eod_chunk_size=2, eod_snapshot_after=1)
    loans = book(app, open_loan, 3)

    # Given both snapshot steps after a chunk's commit fail: the library's interval snapshot
    # inside save_many and end of day's own fresh snapshots
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(app.app, "_take_snapshots", broken)
    monkeypatch.setattr(BulkCloser, "_snapshot", broken)

    # When end of day runs, then it finishes and every loan's day is recorded once
    summary = app.close_business_days(OPEN_DAY)
    assert summary.events == 3
    assert app.closed_through() == OPEN_DAY
    for loan_id in loans:
        assert end_of_day_days(app, loan_id) == every_day(DISBURSED, OPEN_DAY)


# ------------------------------------------------------------------ real concurrency
WRITERS = 3
COMMANDS_PER_WRITER = 60
WAIT = 30.0  # seconds: a bound for a wait that normally takes milliseconds


class Traffic:
    """Integrations sending repayments and fees (business date omitted: the open day), each
    thread through its own Ledger, aimed at the chunk end of day is closing right now."""

    def __init__(self, writers: list[Ledger], loans: list[UUID]) -> None:
        self.writers = writers
        self.aim = list(loans)
        self.changed: set[UUID] = set()  # loans a command committed on since the last aim()
        self.succeeded: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self.failed: list[tuple[dict[str, Any], BaseException]] = []
        self.condition = threading.Condition()
        self.go, self.stop = threading.Event(), threading.Event()
        self.done = 0  # writers that have finished
        self.threads = [
            threading.Thread(target=self.send, args=(n,), name=f"writer-{n}")
            for n in range(len(writers))
        ]

    def send(self, writer: int) -> None:
        rng = random.Random(writer)
        try:
            if not self.go.wait(WAIT):
                return
            for n in range(COMMANDS_PER_WRITER):
                if self.stop.is_set():
                    return
                with self.condition:
                    loan_id = rng.choice(self.aim)
                tag = f"w{writer}-{n}"
                command: dict[str, Any] = (
                    {
                        "type": "receive_repayment",
                        "reference": tag,
                        "amount": "10.00",
                        "currency": "CNY",
                    }
                    if n % 2
                    else {"type": "charge_fee", "kind": tag, "amount": "5.00"}
                )
                command.update(idempotency_key=tag, loan_id=str(loan_id))
                try:
                    result = self.writers[writer].execute(parse_command(command))
                except Exception as error:  # checked below: only conflicts, nothing recorded
                    with self.condition:
                        self.failed.append((command, error))
                    continue
                with self.condition:
                    self.succeeded.append((command, result))
                    self.changed.add(loan_id)
                    self.condition.notify_all()
        finally:
            with self.condition:
                self.done += 1
                self.condition.notify_all()

    def aim_at(self, loans: list[UUID]) -> None:
        """Aim every writer at these loans and wait (bounded) until a command committed on
        one of them — so end of day, which has just loaded them, is now stale on that loan."""
        with self.condition:
            self.aim, self.changed = list(loans), set()
            self.condition.wait_for(
                lambda: bool(self.changed & set(loans)) or self.done == len(self.threads), WAIT
            )


def test_commands_beside_end_of_day_are_neither_lost_nor_doubled(
    database_url: str,
    make_ledger: Callable[..., Ledger],
    open_loan: OpenLoan,
    count_commands: Callable[[Ledger], int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Writers aim at the very loans being closed, as fast as they can: more retries than
    # the default, so the run meets the set-aside path but does not give up on a loan.
    eod = make_ledger(database_url, eod_chunk_size=4, eod_snapshot_after=1, command_retries=10)
    loans = book(eod, open_loan, 12)
    commands_before = count_commands(eod)
    traffic = Traffic(
        [make_ledger(database_url, command_retries=20) for _ in range(WRITERS)], loans
    )
    redecided: list[set[UUID]] = []
    real_save_chunk, real_redecide = BulkCloser._save_chunk, BulkCloser._redecide_moved

    # Each chunk, once loaded and decided, waits for a command on one of its loans.
    def save_chunk_when_stale(
        self: BulkCloser, chunk_loans: dict[UUID, Loan], through: date
    ) -> Any:
        traffic.aim_at(list(chunk_loans))
        return real_save_chunk(self, chunk_loans, through)

    def counting_redecide(self: BulkCloser, *args: Any) -> set[UUID]:
        moved = real_redecide(self, *args)
        redecided.append(moved)
        return moved

    monkeypatch.setattr(BulkCloser, "_save_chunk", save_chunk_when_stale)
    monkeypatch.setattr(BulkCloser, "_redecide_moved", counting_redecide)

    # When writers send commands on the open day while end of day closes it
    for thread in traffic.threads:
        thread.start()
    traffic.go.set()
    try:
        summary = eod.close_business_days(OPEN_DAY)
    finally:
        traffic.stop.set()
        for thread in traffic.threads:
            thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in traffic.threads)

    # Then end of day finished, and it really did meet conflicts on its loans
    assert summary.closed_through == OPEN_DAY and eod.closed_through() == OPEN_DAY
    assert any(redecided), "no chunk was stale: the test staged nothing"
    assert traffic.succeeded, "no command went through"
    # A command either went through, or gave up on the conflict having recorded nothing
    assert all(isinstance(error, ConcurrencyConflict) for _, error in traffic.failed), (
        traffic.failed
    )

    fresh = make_ledger(database_url, aggregate_cache_size=0)  # no cached state
    histories = {loan_id: fresh.loan_history(loan_id) for loan_id in loans}
    with fresh.engine.connect() as conn:
        logged = set(conn.execute(select(command_log.c.idempotency_key)).scalars())
    assert count_commands(fresh) == commands_before + len(traffic.succeeded)

    # Every command that succeeded is in the command log and its event in the loan's
    # history exactly once, at the version it reported; the failed ones left no trace
    tags: Counter[str] = Counter()
    for history in histories.values():
        for e in history:
            if isinstance(e, Loan.RepaymentReceived):
                tags[e.reference] += 1
            elif isinstance(e, Loan.FeeCharged):
                tags[e.kind] += 1
    succeeded = {command["idempotency_key"] for command, _ in traffic.succeeded}
    assert tags == Counter(succeeded)
    for command, result in traffic.succeeded:
        assert command["idempotency_key"] in logged
        at = histories[UUID(result["aggregate_id"])][result["version"] - 1]
        assert type(at).__name__ == result["events"][-1]
    for command, _ in traffic.failed:
        assert command["idempotency_key"] not in logged

    for loan_id, history in histories.items():
        # Versions are contiguous; every day from disbursement to the open day has exactly
        # one end-of-day InterestAccrued (a repayment's own accrual of the day is not one)
        assert [e.originator_version for e in history] == list(range(1, len(history) + 1))
        assert end_of_day_days(fresh, loan_id) == every_day(DISBURSED, OPEN_DAY), loan_id
        # And the state anyone loads (snapshot + events, or a writer's fast-forwarded cache)
        # equals a replay of the events from the first
        replayed = project(None, history)
        assert replayed.last_closed_on == OPEN_DAY
        assert balances_of(fresh.get_loan(loan_id)) == balances_of(replayed)
        assert balances_of(traffic.writers[0].get_loan(loan_id)) == balances_of(replayed)

    # And once the projections have caught up, the trial balance is balanced
    fresh.catch_up()
    with fresh.engine.connect() as conn:
        assert trial_balance_report(conn).totals["balanced"] is True
