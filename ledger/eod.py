"""End of day in bulk: close business days for the whole book, chunk by chunk.

A chunk is a few hundred active loans in loan-id order. Its state is loaded with two queries
(the loans' latest snapshots, then the events after them), decoded with the application's
mapper and replayed in memory; ``Loan.close_day`` decides; every new event of the chunk is
appended by ``LoanLedger.save_many`` in ONE transaction (notification ids, the unique
(loan, version) index and the library's interval snapshots stay exactly as for a command).
Loans that built up ``eod_snapshot_after`` events since their snapshot get a fresh one, which
replaces the old, so tomorrow's load replays a handful of events and the snapshot table stays
about one row per loan.

Commands keep running during end of day. A command that moves one of the chunk's loans
between its load and its save makes the chunk's transaction fail on that loan's version; only
the loans whose stored version moved are re-loaded and re-decided (one query finds them), the
others' decisions stand, and the chunk is saved again — a bounded number of times, then the
loans that kept moving are set aside and closed one transaction each. A conflict-free chunk
costs exactly what it did before: one load, one save.

Crash safety comes from the domain, not from bookkeeping: each loan records its last closed
day, so a rerun closes only what is missing, and a chunk commits all or nothing. The ledger
clock moves only after every chunk (and every partition) is done.

Partitions split the loan-id space into N equal ranges (loan ids are uuid4, so ranges hold
equal shares). ``workers=N`` runs them as N local processes under one lock; ``partition=k/N``
runs one of them, e.g. on another host, and the last partition to finish advances the clock.
One end of day at a time: a PostgreSQL advisory lock (or a lock row on SQLite).
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.persistence import OperationalError as StoreOperationalError
from sqlalchemy import Text, cast, delete, event, func, insert, select, text, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlalchemy.exc import OperationalError

from domain.errors import InvalidDate, LedgerError, StateConflict, ValidationError
from domain.loan import Loan
from domain.servicing import LoanStatus
from ledger.app.application import EodSummary, LoanLedger, project
from ledger.faults import crash_point
from ledger.memory import collect_between_batches
from ledger.persistence.tables import (
    eod_lock,
    eod_runs,
    events,
    ledger_clock,
    loan_directory,
    snapshots,
)

ONE_DAY = timedelta(days=1)
UUID_SPACE = 1 << 128
Progress = Callable[[int], None]  # called with the loan-days just closed

log = logging.getLogger("ledger.eod")


class EndOfDayRunning(StateConflict):
    """Another end of day holds the lock."""


class EndOfDayFailed(LedgerError):
    kind = "failed"


# ------------------------------------------------------------------ partitions
@dataclass(frozen=True)
class Partition:
    """Partition ``number`` of ``count`` (1-based, as written: ``2/4``): an equal slice of the
    loan-id space, as a [lower, upper) range of the directory's loan-id strings."""

    number: int = 1
    count: int = 1

    @classmethod
    def parse(cls, text_: str) -> Partition:
        number, _, count = text_.partition("/")
        try:
            partition = cls(int(number), int(count))
        except ValueError:
            partition = cls(0, 0)
        if not 1 <= partition.number <= partition.count <= 1024:
            raise ValidationError(f"partition must be k/N with 1 ≤ k ≤ N ≤ 1024, got {text_!r}",
                                  field="partition", rule="k_of_n")
        return partition

    @property
    def label(self) -> str:
        return f"{self.number}/{self.count}"

    @property
    def whole(self) -> bool:
        return self.count == 1

    @property
    def lower(self) -> str:
        return str(UUID(int=(self.number - 1) * UUID_SPACE // self.count))

    @property
    def upper(self) -> str | None:
        if self.number == self.count:
            return None
        return str(UUID(int=self.number * UUID_SPACE // self.count))

    def split(self, workers: int) -> list[Partition]:
        assert self.whole, "only the whole book is split across local workers"
        return [Partition(k, workers) for k in range(1, workers + 1)]


WHOLE_BOOK = Partition()


def count_active(ledger: LoanLedger, partition: Partition = WHOLE_BOOK) -> int:
    """Active loans in the partition."""
    c = loan_directory.c
    query = select(func.count()).select_from(loan_directory).where(
        c.status == str(LoanStatus.ACTIVE), c.loan_id >= partition.lower)
    if partition.upper is not None:
        query = query.where(c.loan_id < partition.upper)
    with ledger.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def count_loan_days(ledger: LoanLedger, through: date,
                    partition: Partition = WHOLE_BOOK) -> int | None:
    """The loan-days a run through ``through`` closes in the partition: the total for the
    progress callback, which counts loan-days (a loan closing three missing days counts 3).

    Known once the ledger clock is set: every active loan has then closed through the clock
    (a loan disbursed on the open day counts from the day before, which is the clock), so the
    total is active loans × days from the clock to ``through`` — exact for a run that finds
    the book as the last run left it. It stays an estimate, never an error, when: a rerun
    after a crash finds loans already closed (the bar ends short of its total); a loan
    disbursed on the open day after the last run passed its chunk lags a day behind the clock
    (one day more than counted); a book loaded before the first close with later dates (a
    disbursement, a command's inline catch-up) has loans ahead of the clock (counted days
    they do not close); commands disburse or pay off loans while the run goes on.
    ``None`` when the clock is not set (before the first end of day every loan counts from its
    own disbursement, which only its events tell): show progress without a total."""
    closed = ledger.closed_through()
    if closed is None:
        return None
    days = (through - closed).days
    return count_active(ledger, partition) * days if days > 0 else 0


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


def _is_conflict(error: BaseException) -> bool:
    """Another writer got there first: a second event for the same (loan, version) on the
    unique index, or — SQLite — the single writer still busy after the busy timeout."""
    if isinstance(error, IntegrityError | SAIntegrityError):
        return True
    return (isinstance(error, StoreOperationalError | OperationalError)
            and "database is locked" in str(error))


# ------------------------------------------------------------------ the bulk path
class BulkCloser:
    """Closes the active loans of one partition, chunk by chunk, for one application."""

    def __init__(self, ledger: LoanLedger) -> None:
        self.ledger = ledger
        self.chunk_size = ledger.settings.eod_chunk_size
        self.snapshot_after = ledger.settings.eod_snapshot_after
        self.retries = ledger.settings.command_retries
        self.mapper = ledger.mapper
        self.snapshot_mapper = ledger.snapshots.mapper if ledger.snapshots else ledger.mapper
        # Of the chunk being closed: each loan's latest snapshot version, and its version and
        # last closed day as loaded (what a conflict is checked against; loan-days count from).
        self.snapshot_versions: dict[UUID, int] = {}
        self.loaded: dict[UUID, tuple[int, date | None]] = {}
        self._saving_thread = 0
        self._committed = False

    def close(self, through: date, partition: Partition = WHOLE_BOOK,
              progress: Progress | None = None) -> Closed:
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
        c = loan_directory.c
        after = partition.lower
        first = True
        while True:
            query = select(c.loan_id).where(c.status == str(LoanStatus.ACTIVE))
            query = query.where(c.loan_id >= after if first else c.loan_id > after)
            if partition.upper is not None:
                query = query.where(c.loan_id < partition.upper)
            query = query.order_by(c.loan_id).limit(self.chunk_size)
            with self.ledger.engine.connect() as conn:
                ids = list(conn.execute(query).scalars())
            if not ids:
                return
            yield ids
            after, first = ids[-1], False

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

    def _decide(self, loans: dict[UUID, Loan], through: date) -> None:
        for loan_id, loan in loans.items():
            self.loaded[loan_id] = (loan.version, loan.last_closed_on)
            loan.close_day(through)

    def _save_chunk(self, loans: dict[UUID, Loan], through: date) -> tuple[int, list[UUID]]:
        """Append the chunk's new events in one transaction. When a concurrent command moved
        some of its loans, only those are re-decided and the chunk is saved again, up to
        ``command_retries`` times, then once more without every loan that moved meanwhile.
        Returns the events appended and the loans still to close, one transaction each."""
        appended = 0
        moved: set[UUID] = set()
        for attempt in range(self.retries + 1):
            aside = moved if attempt == self.retries else set()
            group = [loan for loan in loans.values()
                     if loan.pending_events and loan.id not in aside]
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
            time.sleep(random.random() * min(1.0, 0.01 * 2 ** attempt))
            self._redecide_moved([loan], loans, through)
        raise EndOfDayFailed(
            f"end of day could not close loan {loan_id} through {through}: commands changed it"
            f" under each of {self.retries} attempts; nothing of that loan was written and the"
            " clock was not advanced — rerun end of day", field="loan_id",
            rule="concurrent_modification")

    def _try_save(self, group: list[Loan]) -> int | None:
        """Append the group's pending events in one transaction: how many, or ``None`` when
        a concurrent writer got there first — then nothing was written and the pending events
        are put back on their loans (``save_many`` drained them)."""
        pending = [(loan, list(loan.pending_events)) for loan in group]
        self._saving_thread, self._committed = threading.get_ident(), False
        try:
            return len(self._save(group))
        except Exception as error:
            if self._committed:
                # The events are in; what failed came after their COMMIT (the library's
                # interval snapshot, a cache): a later load replays a little more.
                log.warning("end of day: a snapshot after a chunk's commit failed: %s", error)
                return sum(len(kept) for _, kept in pending)
            if not _is_conflict(error):
                raise
        for loan, kept in pending:
            loan.pending_events.extend(kept)
        return None

    def _save(self, loans: list[Loan]) -> list[Any]:
        # The kill point sits between the INSERTs and the COMMIT of the chunk's transaction.
        session_maker = self.ledger.factory.datastore.session_maker  # type: ignore[attr-defined]
        event.listen(session_maker, "before_commit", _before_commit)
        event.listen(session_maker, "after_commit", self._after_commit)
        try:
            return self.ledger.save_many(loans)
        finally:
            event.remove(session_maker, "after_commit", self._after_commit)
            event.remove(session_maker, "before_commit", _before_commit)

    def _after_commit(self, session: Any) -> None:
        if threading.get_ident() == self._saving_thread:  # not another thread's command
            self._committed = True

    def _redecide_moved(self, group: list[Loan], loans: dict[UUID, Loan],
                        through: date) -> set[UUID]:
        """Re-load and re-decide the group's loans whose stored version is no longer the one
        they were loaded at (one query finds them); the others keep their decisions."""
        stored = self._stored_versions([loan.id for loan in group])
        moved = [loan.id for loan in group if stored.get(loan.id, 0) != self.loaded[loan.id][0]]
        if moved:
            fresh = self.load(moved)
            self._decide(fresh, through)
            loans.update(fresh)
        return set(moved)

    def _stored_versions(self, ids: list[UUID]) -> dict[UUID, int]:
        e = events.c
        key = cast(e.originator_id, Text) if self._postgres else e.originator_id
        by_key = self._keys(ids)
        with self.ledger.engine.connect() as conn:
            rows = conn.execute(select(key, func.max(e.originator_version))
                                .where(e.originator_id.in_(ids))
                                .group_by(e.originator_id)).cursor.fetchall()
        return {by_key[row[0]]: row[1] for row in rows}

    @property
    def _postgres(self) -> bool:
        return self.ledger.engine.dialect.name == "postgresql"

    def _keys(self, ids: list[UUID]) -> dict[Any, UUID]:
        # The raw rows' ids: text on PostgreSQL, UUIDType's 16 bytes on SQLite.
        return ({str(loan_id): loan_id for loan_id in ids} if self._postgres else
                {loan_id.bytes: loan_id for loan_id in ids})

    def load(self, ids: list[UUID]) -> dict[UUID, Loan]:
        """The chunk's loans as of their last stored event: two queries, then replay."""
        s, e = snapshots.c, events.c
        # On PostgreSQL ids and payloads come back as text: ids map onto the chunk's UUID
        # objects (the driver's per-row UUID parsing was a tenth of the load) and payloads
        # skip bytea's hex encoding (half the bytes on the wire, no hex parsing).
        postgres = self._postgres
        by_key = self._keys(ids)

        def columns(c: Any) -> list[Any]:
            if postgres:
                return [cast(c.originator_id, Text), c.originator_version, c.topic,
                        func.convert_from(c.state, "UTF8")]
            return [c.originator_id, c.originator_version, c.topic, c.state]

        # The events after each loan's latest snapshot (all of them when it has none).
        latest_snapshot = (select(func.coalesce(func.max(s.originator_version), 0))
                           .where(s.originator_id == e.originator_id).scalar_subquery())
        with self.ledger.engine.connect() as conn:
            # Plain DBAPI tuples (the result's cursor): no Row object per event.
            snapshot_rows = conn.execute(select(*columns(s)).where(s.originator_id.in_(ids))
                                         ).cursor.fetchall()
            event_rows = conn.execute(select(*columns(e))
                                      .where(e.originator_id.in_(ids),
                                             e.originator_version > latest_snapshot)
                                      .order_by(e.originator_id, e.originator_version)
                                      ).cursor.fetchall()
        latest: dict[UUID, Any] = {}
        for row in snapshot_rows:
            loan_id = by_key[row[0]]
            if loan_id not in latest or row[1] > latest[loan_id][1]:
                latest[loan_id] = row
        to_event = self.mapper.to_domain_event
        history: dict[UUID, list[Any]] = {}
        for loan_id, row in latest.items():
            history[loan_id] = [self.snapshot_mapper.to_domain_event(_stored(loan_id, row))]
        for row in event_rows:
            loan_id = by_key[row[0]]
            history.setdefault(loan_id, []).append(to_event(_stored(loan_id, row)))
        loans: dict[UUID, Loan] = {}
        for loan_id in ids:  # loan-id order, as the directory listed them
            replayed = project(None, history.get(loan_id, ()))
            if isinstance(replayed, Loan):
                loans[loan_id] = replayed
                self.snapshot_versions[loan_id] = latest[loan_id][1] if loan_id in latest else 0
        return loans

    def _snapshot_or_log(self, loans: dict[UUID, Loan]) -> None:
        try:
            self._snapshot(loans)
        except Exception as error:  # a cache: never fails the run
            log.warning("end of day: fresh snapshots of a chunk were not written (%s); their"
                        " loans replay a few more events until the next one", error)

    def _snapshot(self, loans: dict[UUID, Loan]) -> None:
        """Replace the snapshot of loans that built up ``snapshot_after`` events since it.

        Runs after the chunk committed, in its own transaction: a snapshot is a cache of
        committed events, so losing this write to a crash (or an error: it is logged) only
        costs replay next time."""
        if not self.snapshot_after:
            return
        due = [loan for loan in loans.values()
               if loan.version - self.snapshot_versions.get(loan.id, 0) >= self.snapshot_after]
        if not due:
            return
        stored = [self.snapshot_mapper.to_stored_event(Loan.Snapshot.take(loan)) for loan in due]
        with self.ledger.transaction() as session:
            session.execute(delete(snapshots).where(
                snapshots.c.originator_id.in_([loan.id for loan in due])))
            session.execute(insert(snapshots), [
                {"originator_id": x.originator_id, "originator_version": x.originator_version,
                 "topic": x.topic, "state": x.state} for x in stored])


def _before_commit(session: Any) -> None:
    crash_point("eod.before_commit")


def _stored(loan_id: UUID, row: Any) -> StoredEvent:
    state = row[3]
    return StoredEvent(originator_id=loan_id, originator_version=row[1], topic=row[2],
                       state=state.encode() if isinstance(state, str) else bytes(state))


# ------------------------------------------------------------------ one EOD at a time
def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def _advisory_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"loan-ledger:{name}".encode()).digest()[:8],
                          "big", signed=True)


class EodLock:
    """Keeps end of day single across processes and hosts.

    PostgreSQL: session advisory locks on a dedicated connection, released by the server if
    the process dies. A whole-book run takes the ``eod`` key exclusively; a partition run
    takes it shared plus its partition's key exclusively, so partitions run side by side but
    never beside a whole-book run or a second run of the same partition.
    SQLite: a row in ``eod_lock`` with an owner (host:pid:token) and an expiry a heartbeat
    thread keeps pushing forward; a row whose owner died (same host, pid gone) or that expired
    is taken over."""

    POLL = 0.2

    def __init__(self, engine: Engine, partition: Partition = WHOLE_BOOK, *,
                 ttl: float = 60) -> None:
        self.engine = engine
        self.partition = partition
        self.ttl = ttl
        self.owner = _owner()
        self.postgres = engine.dialect.name == "postgresql"
        self._conn: Connection | None = None
        self._held: list[tuple[str, int]] = []
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def acquire(self, wait: float = 0) -> None:
        deadline = time.monotonic() + wait
        while not self._try():
            if time.monotonic() >= deadline:
                raise EndOfDayRunning(
                    f"another end of day is running ({self._holder()}); it finishes what this"
                    " one would do — retry later, or pass --wait SECONDS to queue behind it",
                    field="through", rule="one_end_of_day_at_a_time")
            time.sleep(self.POLL)

    def release(self) -> None:
        if self.postgres:
            if self._conn is not None:
                for fn, key in reversed(self._held):
                    unlock = "pg_advisory_unlock_shared" if fn.endswith("shared") else (
                        "pg_advisory_unlock")
                    self._conn.execute(text(f"SELECT {unlock}(:k)"), {"k": key})
                self._conn.close()
            self._conn, self._held = None, []
            return
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
        with self.engine.begin() as conn:
            conn.execute(delete(eod_lock).where(eod_lock.c.name == "eod",
                                                eod_lock.c.owner == self.owner))

    def __enter__(self) -> EodLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    # -- PostgreSQL
    def _try(self) -> bool:
        return self._try_postgres() if self.postgres else self._try_row()

    def _try_postgres(self) -> bool:
        if self._conn is None:
            self._conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        wanted = ([("pg_try_advisory_lock", _advisory_key("eod"))] if self.partition.whole else
                  [("pg_try_advisory_lock_shared", _advisory_key("eod")),
                   ("pg_try_advisory_lock", _advisory_key(f"eod:{self.partition.label}"))])
        for fn, key in wanted:
            if not self._conn.execute(text(f"SELECT {fn}(:k)"), {"k": key}).scalar():
                self.release()
                return False
            self._held.append((fn, key))
        return True

    # -- SQLite
    def _try_row(self) -> bool:
        now = _utcnow()
        row = {"name": "eod", "owner": self.owner, "acquired_at": now,
               "expires_at": now + timedelta(seconds=self.ttl)}
        try:
            with self.engine.begin() as conn:
                held = conn.execute(select(eod_lock.c.owner, eod_lock.c.expires_at)
                                    .where(eod_lock.c.name == "eod")).first()
                if held is not None and not _stale(held.owner, held.expires_at, now):
                    return False
                if held is not None:  # take over from a dead or silent owner
                    conn.execute(delete(eod_lock).where(eod_lock.c.name == "eod",
                                                        eod_lock.c.owner == held.owner))
                conn.execute(insert(eod_lock).values(**row))
        except (SAIntegrityError, OperationalError):
            return False  # another process won the race (or holds the write lock)
        self._stop.clear()
        self._heartbeat = threading.Thread(target=self._beat, name="eod-lock-heartbeat",
                                           daemon=True)
        self._heartbeat.start()
        return True

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                with self.engine.begin() as conn:
                    conn.execute(update(eod_lock).where(
                        eod_lock.c.name == "eod", eod_lock.c.owner == self.owner).values(
                        expires_at=_utcnow() + timedelta(seconds=self.ttl)))
            except OperationalError:
                continue  # busy database: the next beat comes well before expiry

    def _holder(self) -> str:
        if self.postgres:
            return "the PostgreSQL advisory lock is held by another session"
        with self.engine.connect() as conn:
            owner = conn.execute(select(eod_lock.c.owner)).scalar()
        return f"lock held by {owner}" if owner else "lock busy"


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)  # SQLite keeps naive datetimes


def _stale(owner: str, expires_at: datetime, now: datetime) -> bool:
    if expires_at.replace(tzinfo=None) < now:
        return True
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


# ------------------------------------------------------------------ the run
def run_end_of_day(ledger: LoanLedger, through: date, *, workers: int | None = None,
                   partition: Partition = WHOLE_BOOK, progress: Progress | None = None,
                   wait: float | None = None, skip_if_closed: bool = False) -> EodSummary:
    """Close every business day up to ``through``: under the EOD lock, chunk by chunk (in
    ``workers`` local processes, or for one ``partition``), then advance the clock once every
    partition of ``through`` is done.

    ``skip_if_closed``: a scheduler's run finds the clock already there (another scheduler
    closed the day) and does nothing."""
    settings = ledger.settings
    workers = workers or settings.eod_workers
    if workers > 1 and not partition.whole:
        raise ValidationError("--workers splits the whole book; with --partition run one"
                              " process per partition", field="workers", rule="whole_book")
    started = time.perf_counter()
    _check_through(ledger, through)
    lock = EodLock(ledger.engine, partition, ttl=settings.eod_lock_ttl)
    lock.acquire(settings.eod_lock_wait if wait is None else wait)
    try:
        closed = _check_through(ledger, through)  # again: the clock may have moved meanwhile
        if skip_if_closed and closed is not None and closed >= through:
            return EodSummary(closed_from=None, closed_through=closed, loans=0, events=0,
                              seconds=time.perf_counter() - started, partition=partition.label,
                              clock_advanced=False, skipped=True)
        run_id = _start_run(ledger, through, partition, lock.owner)
        try:
            if workers > 1:
                done = _run_workers(ledger, through, workers, progress)
            else:
                done = BulkCloser(ledger).close(through, partition, progress)
        except BaseException:
            with suppress(Exception):  # best effort: the original error is what matters
                _finish_run(ledger, run_id, "failed", 0, 0)
            raise
        crash_point("eod.before_clock")
        advanced = _finish_run(ledger, run_id, "done", done.loans, done.events, through=through,
                               partition=partition)
    finally:
        lock.release()
    return EodSummary(closed_from=closed + ONE_DAY if closed else None, closed_through=through,
                      loans=done.loans, loan_days=done.loan_days, events=done.events,
                      seconds=time.perf_counter() - started, partition=partition.label,
                      workers=workers, clock_advanced=advanced)


def _check_through(ledger: LoanLedger, through: date) -> date | None:
    closed = ledger.closed_through()
    if closed is not None and through < closed:
        raise InvalidDate(f"already closed through {closed}; cannot close {through}",
                          field="through", rule="not_before_closed")
    return closed


def _start_run(ledger: LoanLedger, through: date, partition: Partition, owner: str) -> str:
    run_id = str(uuid4())
    with ledger.transaction() as session:
        session.execute(insert(eod_runs).values(
            run_id=run_id, through=through, partition=partition.label, owner=owner,
            status="running", loans=0, events=0, started_at=datetime.now(UTC)))
    return run_id


def _finish_run(ledger: LoanLedger, run_id: str, status: str, loans: int, posted: int, *,
                through: date | None = None, partition: Partition = WHOLE_BOOK) -> bool:
    """Mark the run; if it completes the set of partitions for ``through``, advance the clock
    in the same transaction. Returns whether the clock now stands at ``through``."""
    with ledger.transaction() as session:
        if ledger.engine.dialect.name == "postgresql":
            # Serializes finishing partitions, so the last one sees all the others' rows.
            session.execute(text("LOCK TABLE eod_runs IN SHARE ROW EXCLUSIVE MODE"))
        session.execute(update(eod_runs).where(eod_runs.c.run_id == run_id).values(
            status=status, loans=loans, events=posted, finished_at=datetime.now(UTC)))
        if status != "done" or through is None:
            return False
        if not partition.whole:
            labels = [f"{k}/{partition.count}" for k in range(1, partition.count + 1)]
            done = session.execute(
                select(func.count(func.distinct(eod_runs.c.partition))).where(
                    eod_runs.c.status == "done", eod_runs.c.through >= through,
                    eod_runs.c.partition.in_(labels))).scalar_one()
            if done < partition.count:
                return False
        current = session.execute(select(ledger_clock.c.closed_through)).scalar()
        if current is None:
            session.execute(insert(ledger_clock).values(id=1, closed_through=through))
        elif through > current:
            session.execute(update(ledger_clock).values(closed_through=through))
        return True


# ------------------------------------------------------------------ local workers
def _run_workers(ledger: LoanLedger, through: date, workers: int,
                 progress: Progress | None) -> Closed:
    """Run the whole book as ``workers`` processes, one loan-id range each, each with its own
    engine. Returns when all are done; raises if any failed (the clock is then left alone)."""
    import multiprocessing
    import queue as queue_module

    context = multiprocessing.get_context("spawn")  # no inherited engines or sockets
    messages: Any = context.Queue()
    settings = ledger.settings.model_dump()
    processes = [context.Process(target=_worker, name=f"eod-worker-{p.label}",
                                 args=(settings, through, p.number, p.count, messages))
                 for p in WHOLE_BOOK.split(workers)]
    for process in processes:
        process.start()
    results: dict[int, Closed] = {}
    failures: list[str] = []
    while len(results) + len(failures) < workers:
        try:
            kind, number, *payload = messages.get(timeout=0.5)
        except queue_module.Empty:
            if all(p.exitcode is not None for p in processes):
                break  # every worker is gone; one that was killed never reported
            continue
        if kind == "progress" and progress:
            progress(payload[0])  # loan-days
        elif kind == "done":
            results[number] = Closed(*payload)
        elif kind == "failed":
            failures.append(f"partition {number}/{workers}: {payload[0]}")
    for process in processes:
        process.join()
    missing = [p.name for p in processes if p.exitcode != 0]
    if failures or missing or len(results) < workers:
        raise EndOfDayFailed(
            "end of day failed in a worker (" + "; ".join(failures or missing) + "); the"
            " clock was not advanced — rerun: closed loans post nothing twice",
            field="workers", rule="all_partitions_done")
    total = Closed()
    for closed in results.values():
        total += closed
    return total


def _worker(settings: dict[str, Any], through: date, number: int, count: int,
            messages: Any) -> None:
    from ledger.settings import Settings

    ledger = LoanLedger(Settings(**settings))
    try:
        closed = BulkCloser(ledger).close(
            through, Partition(number, count), lambda n: messages.put(("progress", number, n)))
        messages.put(("done", number, closed.loans, closed.loan_days, closed.events))
    except Exception as e:  # reported to the parent, which fails the run
        messages.put(("failed", number, f"{type(e).__name__}: {e}"))
        raise SystemExit(1) from None
    finally:
        ledger.close()
        ledger.engine.dispose()
