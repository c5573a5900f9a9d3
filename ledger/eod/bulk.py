"""Closing a partition's active loans in bulk, chunk by chunk (``BulkCloser``).

A chunk is a few hundred active loans in loan-id order. Its state is loaded with two queries
(``ledger.persistence.chunks.load_chunk``: the loans' latest snapshots, then the events after
them), decoded with the application's mapper and replayed in memory; ``Loan.close_day``
decides; every new event of the chunk is appended by ``LoanLedger.save_many`` in ONE
transaction (notification ids, the unique (loan, version) index and the library's interval
snapshots stay exactly as for a command). Loans that built up ``eod_snapshot_after`` events
since their snapshot get a fresh one, which replaces the old, so tomorrow's load replays a
handful of events and the snapshot table stays about one row per loan. Memory holds one chunk.

Commands keep running during end of day. A command that moves one of the chunk's loans
between its load and its save makes the chunk's transaction fail on that loan's version; only
the loans whose stored version moved are re-loaded and re-decided (one query finds them), the
others' decisions stand, and the chunk is saved again — a bounded number of times, then the
loans that kept moving are set aside and closed one transaction each. A conflict-free chunk
costs exactly what it did before: one load, one save.

Crash safety comes from the domain, not from bookkeeping: each loan records its last closed
day, so a rerun closes only what is missing, and a chunk commits all or nothing. The crash
points a chunk meets, in order: ``eod.before_write``, ``eod.before_commit`` (its rows
inserted, the COMMIT not sent) and ``eod.after_commit`` (fresh snapshots not yet written).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any
from uuid import UUID

from domain.errors import LedgerError
from domain.loan import Loan
from ledger.eod.partition import WHOLE_BOOK, Partition
from ledger.faults import crash_point
from ledger.memory import collect_between_batches
from ledger.persistence import chunks as store
from ledger.persistence.store import project

if TYPE_CHECKING:
    from ledger.app.application import LoanLedger

Progress = Callable[[int], None]  # called with the loan-days just closed

log = logging.getLogger("ledger.eod")


class EndOfDayFailed(LedgerError):
    kind = "failed"


@dataclass
class Closed:
    """What a run, a worker or a chunk closed: loans visited, loan-days closed, events."""

    loans: int = 0
    loan_days: int = 0
    events: int = 0

    def __iadd__(self, other: Closed) -> Closed:
        self.loans += other.loans
        self.loan_days += other.loan_days
        self.events += other.events
        return self


class BulkCloser:
    """Closes the active loans of one partition, chunk by chunk, for one application."""

    def __init__(self, app: LoanLedger) -> None:
        self.app = app
        self.engine = app.engine
        self.chunk_size = app.settings.eod_chunk_size
        self.snapshot_after = app.settings.eod_snapshot_after
        self.retries = app.settings.command_retries
        self.mapper = app.mapper
        self.snapshot_mapper = app.snapshots.mapper if app.snapshots else app.mapper
        # Of the chunk being closed: each loan's latest snapshot version, and its version and
        # last closed day as loaded (what a conflict is checked against; loan-days count from).
        self.snapshot_versions: dict[UUID, int] = {}
        self.loaded: dict[UUID, tuple[int, date | None]] = {}
        self._saving_thread = 0
        self._committed = False

    def close(
        self, through: date, partition: Partition = WHOLE_BOOK, progress: Progress | None = None
    ) -> Closed:
        """Close every day through ``through`` for the partition's active loans; ``progress``
        gets the loan-days each chunk closed."""
        closed = Closed()
        with collect_between_batches() as collect:
            for ids in self.chunks(partition):
                chunk = self.close_chunk(ids, through)
                collect()
                closed += chunk
                if progress:
                    progress(chunk.loan_days)
        return closed

    def chunks(self, partition: Partition) -> Iterator[list[str]]:
        after: str | None = None
        while ids := store.active_loan_ids(
            self.engine, partition.lower, partition.upper, limit=self.chunk_size, after=after
        ):
            yield ids
            after = ids[-1]

    def close_chunk(self, ids: list[str], through: date) -> Closed:
        """Load, decide and append one chunk; loans that concurrent commands moved meanwhile
        are re-decided (``_save_chunk``), those that kept moving closed one by one."""
        self.snapshot_versions.clear()
        self.loaded.clear()
        loans = self.load([UUID(x) for x in ids])
        self._decide(loans, through)
        posted, left = self._save_chunk(loans, through)
        for loan_id in left:
            posted += self._close_alone(loan_id, loans, through)
        crash_point("eod.after_commit")
        self._snapshot_or_log(loans)
        days = 0
        for loan_id, loan in loans.items():
            since = self.loaded[loan_id][1]
            if since is not None and loan.last_closed_on is not None:
                days += (loan.last_closed_on - since).days
        return Closed(len(ids), days, posted)

    def load(self, ids: list[UUID]) -> dict[UUID, Loan]:
        """The chunk's loans as of their last stored event: two queries, then replay."""
        rows = store.load_chunk(self.engine, ids)
        to_snapshot, to_event = self.snapshot_mapper.to_domain_event, self.mapper.to_domain_event
        history: dict[UUID | str, list[Any]] = {  # StoredEvent ids are typed UUID | str
            loan_id: [to_snapshot(stored)] for loan_id, stored in rows.snapshots.items()
        }
        for stored in rows.events:
            history.setdefault(stored.originator_id, []).append(to_event(stored))
        loans: dict[UUID, Loan] = {}
        for loan_id in ids:  # loan-id order, as the directory listed them
            replayed = project(None, history.get(loan_id, ()))
            if isinstance(replayed, Loan):
                loans[loan_id] = replayed
                snapshot = rows.snapshots.get(loan_id)
                self.snapshot_versions[loan_id] = snapshot.originator_version if snapshot else 0
        return loans

    def _decide(self, loans: dict[UUID, Loan], through: date) -> None:
        for loan_id, loan in loans.items():
            self.loaded[loan_id] = (loan.version, loan.last_closed_on)
            loan.close_day(through)

    # -------------------------------------------------------------- saving, with conflicts
    def _save_chunk(self, loans: dict[UUID, Loan], through: date) -> tuple[int, list[UUID]]:
        """Append the chunk's new events in one transaction. When a concurrent command moved
        some of its loans, only those are re-decided and the chunk is saved again, up to
        ``command_retries`` times, then once more without every loan that moved meanwhile.
        Returns the events appended and the loans still to close, one transaction each."""
        appended = 0
        moved: set[UUID] = set()
        for attempt in range(self.retries + 1):
            aside = moved if attempt == self.retries else set()
            group = [
                loan for loan in loans.values() if loan.pending_events and loan.id not in aside
            ]
            if not group:
                break
            crash_point("eod.before_write")
            saved = self._try_save(group)
            if saved is not None:
                appended = saved
                break
            moved |= self._redecide_moved(group, loans, through)
        return appended, [loan.id for loan in loans.values() if loan.pending_events]

    def _close_alone(self, loan_id: UUID, loans: dict[UUID, Loan], through: date) -> int:
        """Close a loan that kept moving under its chunk in a transaction of its own, with
        its own bounded retries and a short, growing, jittered pause between them."""
        for attempt in range(self.retries + 1):
            loan = loans[loan_id]
            if not loan.pending_events:
                return 0  # a command closed its days meanwhile (inline catch-up)
            if attempt == self.retries:
                break
            saved = self._try_save([loan])
            if saved is not None:
                return saved
            # Pause before re-loading, never between load and save (that would widen the
            # window the next command lands in).
            time.sleep(random.random() * min(1.0, 0.01 * 2**attempt))
            self._redecide_moved([loan], loans, through)
        raise EndOfDayFailed(
            f"end of day could not close loan {loan_id} through {through}: commands changed it"
            f" under each of {self.retries} attempts; nothing of that loan was written and the"
            " clock was not advanced — rerun end of day",
            field="loan_id",
            rule="concurrent_modification",
        )

    def _try_save(self, group: list[Loan]) -> int | None:
        """Append the group's pending events in one transaction: how many, or ``None`` when
        a concurrent writer got there first — then nothing was written and the pending events
        are put back on their loans (``save_many`` drained them)."""
        pending = [(loan, list(loan.pending_events)) for loan in group]
        self._saving_thread, self._committed = threading.get_ident(), False
        try:
            # The kill point sits between the INSERTs and the COMMIT of the transaction.
            with store.commit_hooks(self.app, _before_commit, self._after_commit):
                return len(self.app.save_many(group))
        except Exception as error:
            if self._committed:
                # The events are in; what failed came after their COMMIT (the library's
                # interval snapshot, a cache): a later load replays a little more.
                log.warning("end of day: a snapshot after a chunk's commit failed: %s", error)
                return sum(len(kept) for _, kept in pending)
            if not store.is_write_conflict(error):
                raise
        for loan, kept in pending:
            loan.pending_events.extend(kept)
        return None

    def _after_commit(self, session: Any) -> None:
        if threading.get_ident() == self._saving_thread:  # not another thread's command
            self._committed = True

    def _redecide_moved(
        self, group: list[Loan], loans: dict[UUID, Loan], through: date
    ) -> set[UUID]:
        """Re-load and re-decide the group's loans whose stored version is no longer the one
        they were loaded at (one query finds them); the others keep their decisions."""
        stored = store.stored_versions(self.engine, [loan.id for loan in group])
        moved = [loan.id for loan in group if stored.get(loan.id, 0) != self.loaded[loan.id][0]]
        if moved:
            fresh = self.load(moved)
            self._decide(fresh, through)
            loans.update(fresh)
        return set(moved)

    # -------------------------------------------------------------- fresh snapshots
    def _snapshot_or_log(self, loans: dict[UUID, Loan]) -> None:
        try:
            self._snapshot(loans)
        except Exception as error:  # a cache: never fails the run
            log.warning(
                "end of day: fresh snapshots of a chunk were not written (%s); their"
                " loans replay a few more events until the next one",
                error,
            )

    def _snapshot(self, loans: dict[UUID, Loan]) -> None:
        """Replace the snapshot of loans that built up ``snapshot_after`` events since it.

        Runs after the chunk committed, in its own transaction: a snapshot is a cache of
        committed events, so losing this write to a crash (or an error: it is logged) only
        costs replay next time."""
        if not self.snapshot_after:
            return
        due = [
            loan
            for loan in loans.values()
            if loan.version - self.snapshot_versions.get(loan.id, 0) >= self.snapshot_after
        ]
        if not due:
            return
        stored = [self.snapshot_mapper.to_stored_event(Loan.Snapshot.take(loan)) for loan in due]
        with self.app.transaction() as session:
            store.replace_snapshots(session, stored)


def _before_commit(session: Any) -> None:
    crash_point("eod.before_commit")
