"""End of day in bulk: close business days for the whole book, chunk by chunk.

A chunk is a few hundred active loans in loan-id order. Its state is loaded with two queries
(the loans' latest snapshots, then the events after them), decoded with the application's
mapper and replayed in memory; ``Loan.close_day`` decides; every new event of the chunk is
appended by ``LoanLedger.save_many`` in ONE transaction (notification ids, the unique
(loan, version) index and the library's interval snapshots stay exactly as for a command).
Loans that built up ``eod_snapshot_after`` events since their snapshot get a fresh one, which
replaces the old, so tomorrow's load replays a handful of events and the snapshot table stays
about one row per loan.

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
import os
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
from sqlalchemy import Text, cast, delete, event, func, insert, select, text, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlalchemy.exc import OperationalError

from domain.errors import InvalidDate, LedgerError, StateConflict, ValidationError
from domain.loan import Loan
from domain.servicing import LoanStatus
from ledger.application import EodSummary, LoanLedger, project
from ledger.faults import crash_point
from ledger.memory import collect_between_batches
from ledger.tables import eod_lock, eod_runs, events, ledger_clock, loan_directory, snapshots

ONE_DAY = timedelta(days=1)
UUID_SPACE = 1 << 128
Progress = Callable[[int], None]


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
    """Active loans in the partition (for a progress bar's total)."""
    c = loan_directory.c
    query = select(func.count()).select_from(loan_directory).where(
        c.status == str(LoanStatus.ACTIVE), c.loan_id >= partition.lower)
    if partition.upper is not None:
        query = query.where(c.loan_id < partition.upper)
    with ledger.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


# ------------------------------------------------------------------ the bulk path
class BulkCloser:
    """Closes the active loans of one partition, chunk by chunk, for one application."""

    def __init__(self, ledger: LoanLedger) -> None:
        self.ledger = ledger
        self.chunk_size = ledger.settings.eod_chunk_size
        self.snapshot_after = ledger.settings.eod_snapshot_after
        self.mapper = ledger.mapper
        self.snapshot_mapper = ledger.snapshots.mapper if ledger.snapshots else ledger.mapper
        self.snapshot_versions: dict[UUID, int] = {}  # of the chunk being closed

    def close(self, through: date, partition: Partition = WHOLE_BOOK,
              progress: Progress | None = None) -> tuple[int, int]:
        """Close every day through ``through`` for the partition's active loans: (loans, events)."""
        loans = posted = 0
        with collect_between_batches() as collect:
            for ids in self.chunks(partition):
                posted += self.close_chunk(ids, through)
                collect()
                loans += len(ids)
                if progress:
                    progress(len(ids))
        return loans, posted

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

    def close_chunk(self, ids: list[str], through: date) -> int:
        """Load, decide and append one chunk; a concurrent command on one of its loans makes
        the transaction fail on that loan's version, and the chunk is re-decided."""
        for attempt in range(self.ledger.settings.command_retries):
            self.snapshot_versions.clear()
            loans = self.load([UUID(x) for x in ids])
            for loan in loans.values():
                loan.close_day(through)
            changed = [loan for loan in loans.values() if loan.pending_events]
            crash_point("eod.before_write")
            try:
                recordings = self._save(changed) if changed else []
            except (IntegrityError, SAIntegrityError):
                if attempt + 1 == self.ledger.settings.command_retries:
                    raise
                continue
            crash_point("eod.after_commit")
            self._snapshot(loans)
            return len(recordings)
        raise AssertionError("unreachable")  # pragma: no cover

    def _save(self, loans: list[Loan]) -> list[Any]:
        # The kill point sits between the INSERTs and the COMMIT of the chunk's transaction.
        session_maker = self.ledger.factory.datastore.session_maker  # type: ignore[attr-defined]
        event.listen(session_maker, "before_commit", _before_commit)
        try:
            return self.ledger.save_many(loans)
        finally:
            event.remove(session_maker, "before_commit", _before_commit)

    def load(self, ids: list[UUID]) -> dict[UUID, Loan]:
        """The chunk's loans as of their last stored event: two queries, then replay."""
        s, e = snapshots.c, events.c
        # On PostgreSQL ids and payloads come back as text: ids map onto the chunk's UUID
        # objects (the driver's per-row UUID parsing was a tenth of the load) and payloads
        # skip bytea's hex encoding (half the bytes on the wire, no hex parsing).
        postgres = self.ledger.engine.dialect.name == "postgresql"
        # The raw rows' ids: text on PostgreSQL, UUIDType's 16 bytes on SQLite.
        by_key = ({str(loan_id): loan_id for loan_id in ids} if postgres else
                  {loan_id.bytes: loan_id for loan_id in ids})

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

    def _snapshot(self, loans: dict[UUID, Loan]) -> None:
        """Replace the snapshot of loans that built up ``snapshot_after`` events since it.

        Runs after the chunk committed, in its own transaction: a snapshot is a cache of
        committed events, so losing this write to a crash only costs replay next time."""
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
                loans, posted = _run_workers(ledger, through, workers, progress)
            else:
                loans, posted = BulkCloser(ledger).close(through, partition, progress)
        except BaseException:
            with suppress(Exception):  # best effort: the original error is what matters
                _finish_run(ledger, run_id, "failed", 0, 0)
            raise
        crash_point("eod.before_clock")
        advanced = _finish_run(ledger, run_id, "done", loans, posted, through=through,
                               partition=partition)
    finally:
        lock.release()
    return EodSummary(closed_from=closed + ONE_DAY if closed else None, closed_through=through,
                      loans=loans, events=posted, seconds=time.perf_counter() - started,
                      partition=partition.label, workers=workers, clock_advanced=advanced)


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
                 progress: Progress | None) -> tuple[int, int]:
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
    results: dict[int, tuple[int, int]] = {}
    failures: list[str] = []
    while len(results) + len(failures) < workers:
        try:
            kind, number, *payload = messages.get(timeout=0.5)
        except queue_module.Empty:
            if all(p.exitcode is not None for p in processes):
                break  # every worker is gone; one that was killed never reported
            continue
        if kind == "progress" and progress:
            progress(payload[0])
        elif kind == "done":
            results[number] = (payload[0], payload[1])
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
    return (sum(r[0] for r in results.values()), sum(r[1] for r in results.values()))


def _worker(settings: dict[str, Any], through: date, number: int, count: int,
            messages: Any) -> None:
    from ledger.settings import Settings

    ledger = LoanLedger(Settings(**settings))
    try:
        loans, posted = BulkCloser(ledger).close(
            through, Partition(number, count), lambda n: messages.put(("progress", number, n)))
        messages.put(("done", number, loans, posted))
    except Exception as e:  # reported to the parent, which fails the run
        messages.put(("failed", number, f"{type(e).__name__}: {e}"))
        raise SystemExit(1) from None
    finally:
        ledger.close()
        ledger.engine.dispose()
