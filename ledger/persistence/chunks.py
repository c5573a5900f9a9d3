"""End of day's reads and writes of a chunk of loans, and hooks on the event store's commit.

A chunk is a page of active loans (``active_loan_ids``, in loan-id order within a range). Its
state is read with two queries (``load_chunk``): the loans' snapshots, then the events after
each loan's latest one (a correlated ``max(originator_version)`` subquery instead of 500 OR'ed
conditions). This is end of day's hot path (about two thirds of its time), so rows are read as
plain DBAPI tuples from the cursor (no SQLAlchemy Row per event), and on PostgreSQL ids and
payloads are selected as text: ids map onto the chunk's own UUID objects (the driver's per-row
UUID parsing was a tenth of the load) and payloads skip bytea's hex encoding (half the bytes on
the wire, no hex parsing). SQLite hands back UUIDType's 16 bytes and the payload's bytes.

The chunk's events are appended by the application's ``save_many``; ``commit_hooks`` lets end
of day see that transaction's COMMIT (a crash point before it, "committed" after it), and
``replace_snapshots`` writes a loan's fresh snapshot in place of its older ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.persistence import OperationalError as StoreOperationalError
from sqlalchemy import Text, cast, delete, event, func, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from domain.loan.state import LoanStatus
from ledger.persistence.tables import events, loan_directory, snapshots


# ------------------------------------------------------------------ which loans
def active_loan_ids(
    engine: Engine, lower: str, upper: str | None, *, limit: int, after: str | None = None
) -> list[str]:
    """Up to ``limit`` active loans' ids in ``[lower, upper)`` (``upper`` None: to the end),
    in loan-id order; from ``lower`` on, or strictly after ``after`` (the last page's last)."""
    c = loan_directory.c
    query = select(c.loan_id).where(c.status == str(LoanStatus.ACTIVE))
    query = query.where(c.loan_id >= lower if after is None else c.loan_id > after)
    if upper is not None:
        query = query.where(c.loan_id < upper)
    query = query.order_by(c.loan_id).limit(limit)
    with engine.connect() as conn:
        return list(conn.execute(query).scalars())


def count_active_loans(engine: Engine, lower: str, upper: str | None) -> int:
    """Active loans in ``[lower, upper)``."""
    c = loan_directory.c
    query = (
        select(func.count())
        .select_from(loan_directory)
        .where(c.status == str(LoanStatus.ACTIVE), c.loan_id >= lower)
    )
    if upper is not None:
        query = query.where(c.loan_id < upper)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


# ------------------------------------------------------------------ a chunk's state
@dataclass(frozen=True)
class ChunkRows:
    """A chunk as stored: each loan's latest snapshot (none before its first), and the events
    after it in (loan, version) order."""

    snapshots: dict[UUID, StoredEvent]
    events: list[StoredEvent]


def load_chunk(engine: Engine, ids: list[UUID]) -> ChunkRows:
    """The chunk's latest snapshots and the events after them: two queries."""
    s, e = snapshots.c, events.c
    postgres = _postgres(engine)
    by_key = _keys(ids, postgres)

    def columns(c: Any) -> list[Any]:
        if postgres:
            return [
                cast(c.originator_id, Text),
                c.originator_version,
                c.topic,
                func.convert_from(c.state, "UTF8"),
            ]
        return [c.originator_id, c.originator_version, c.topic, c.state]

    latest_snapshot = (
        select(func.coalesce(func.max(s.originator_version), 0))
        .where(s.originator_id == e.originator_id)
        .scalar_subquery()
    )
    with engine.connect() as conn:
        snapshot_rows = conn.execute(
            select(*columns(s)).where(s.originator_id.in_(ids))
        ).cursor.fetchall()
        event_rows = conn.execute(
            select(*columns(e))
            .where(e.originator_id.in_(ids), e.originator_version > latest_snapshot)
            .order_by(e.originator_id, e.originator_version)
        ).cursor.fetchall()
    latest: dict[UUID, Any] = {}
    for row in snapshot_rows:
        loan_id = by_key[row[0]]
        if loan_id not in latest or row[1] > latest[loan_id][1]:
            latest[loan_id] = row
    return ChunkRows(
        snapshots={loan_id: _stored(loan_id, row) for loan_id, row in latest.items()},
        events=[_stored(by_key[row[0]], row) for row in event_rows],
    )


def stored_versions(engine: Engine, ids: list[UUID]) -> dict[UUID, int]:
    """Each loan's last stored version (loans without events are left out): one query."""
    e = events.c
    postgres = _postgres(engine)
    key = cast(e.originator_id, Text) if postgres else e.originator_id
    by_key = _keys(ids, postgres)
    with engine.connect() as conn:
        rows = conn.execute(
            select(key, func.max(e.originator_version))
            .where(e.originator_id.in_(ids))
            .group_by(e.originator_id)
        ).cursor.fetchall()
    return {by_key[row[0]]: row[1] for row in rows}


def replace_snapshots(session: Session, stored: list[StoredEvent]) -> None:
    """Write fresh snapshots in place of every older snapshot of their loans, in the caller's
    transaction (so the table stays about one row per loan)."""
    if not stored:
        return
    session.execute(
        delete(snapshots).where(snapshots.c.originator_id.in_([x.originator_id for x in stored]))
    )
    session.execute(
        insert(snapshots),
        [
            {
                "originator_id": x.originator_id,
                "originator_version": x.originator_version,
                "topic": x.topic,
                "state": x.state,
            }
            for x in stored
        ],
    )


def _postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def _keys(ids: list[UUID], postgres: bool) -> dict[Any, UUID]:
    # The raw rows' ids: text on PostgreSQL, UUIDType's 16 bytes on SQLite.
    return (
        {str(loan_id): loan_id for loan_id in ids}
        if postgres
        else {loan_id.bytes: loan_id for loan_id in ids}
    )


def _stored(loan_id: UUID, row: Any) -> StoredEvent:
    state = row[3]
    return StoredEvent(
        originator_id=loan_id,
        originator_version=row[1],
        topic=row[2],
        state=state.encode() if isinstance(state, str) else bytes(state),
    )


# ------------------------------------------------------------------ the chunk's commit
SessionHook = Callable[[Session], None]


@contextmanager
def commit_hooks(
    app: Application[Any], before_commit: SessionHook, after_commit: SessionHook
) -> Iterator[None]:
    """Call the hooks around every COMMIT of the application's event store while inside:
    ``before_commit`` between a transaction's INSERTs and its COMMIT, ``after_commit`` once
    it is in. They see every thread's transactions (filter by thread if that matters)."""
    session_maker = app.factory.datastore.session_maker  # type: ignore[attr-defined]
    event.listen(session_maker, "before_commit", before_commit)
    event.listen(session_maker, "after_commit", after_commit)
    try:
        yield
    finally:
        event.remove(session_maker, "after_commit", after_commit)
        event.remove(session_maker, "before_commit", before_commit)


def is_write_conflict(error: BaseException) -> bool:
    """Another writer got there first: a second event for the same (loan, version) on the
    unique index, or — SQLite — the single writer still busy after the busy timeout."""
    if isinstance(error, IntegrityError | SAIntegrityError):
        return True
    return isinstance(
        error, StoreOperationalError | OperationalError
    ) and "database is locked" in str(error)
