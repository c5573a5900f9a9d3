"""Event store recorders: eventsourcing-sqlalchemy's, with the hot paths in SQLAlchemy Core.

The library's recorders build an ORM query per aggregate read and add one ORM object per
event on write. Loading a loan and saving a chunk of end-of-day events are the ledger's hot
paths, so here reads are one Core SELECT and writes one multi-row INSERT … RETURNING id (ids
come back in insertion order, as the notification log requires). Same tables, same
transactions, same table lock on PostgreSQL (inserts commit in notification-id order).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification, StoredEvent
from eventsourcing_sqlalchemy.datastore import SQLAlchemyDatastore
from eventsourcing_sqlalchemy.factory import SQLAlchemyFactory
from eventsourcing_sqlalchemy.recorders import (
    SQLAlchemyAggregateRecorder,
    SQLAlchemyApplicationRecorder,
)
from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session


def _select_events(
    recorder: Any,
    originator_id: UUID | str,
    gt: int | None,
    lte: int | None,
    desc: bool,
    limit: int | None,
) -> list[StoredEvent]:
    table: Table = recorder.events_record_cls.__table__
    c = table.c
    query = select(c.originator_id, c.originator_version, c.topic, c.state).where(
        c.originator_id == originator_id
    )
    if gt is not None:
        query = query.where(c.originator_version > gt)
    if lte is not None:
        query = query.where(c.originator_version <= lte)
    query = query.order_by(c.originator_version.desc() if desc else c.originator_version)
    if limit is not None:
        query = query.limit(limit)
    with recorder.transaction(commit=False) as session:
        rows = session.execute(query).all()
    return [
        StoredEvent(originator_id=r[0], originator_version=r[1], topic=r[2], state=bytes(r[3]))
        for r in rows
    ]


class LedgerAggregateRecorder(SQLAlchemyAggregateRecorder):
    """Used for the snapshot store."""

    def select_events(
        self,
        originator_id: UUID | str,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> list[StoredEvent]:
        return _select_events(self, originator_id, gt, lte, desc, limit)

    def _insert_stored_events(
        self, session: Session, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        if stored_events:
            session.execute(insert(self.events_record_cls.__table__), _rows(stored_events))


class LedgerApplicationRecorder(SQLAlchemyApplicationRecorder):
    def select_events(
        self,
        originator_id: UUID | str,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> list[StoredEvent]:
        return _select_events(self, originator_id, gt, lte, desc, limit)

    def _insert_stored_events(
        self, session: Session, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int]:
        if not stored_events:
            return []
        table: Table = self.events_record_cls.__table__
        self._lock_table(session)
        result = session.execute(
            insert(table).returning(table.c.id, sort_by_parameter_order=True), _rows(stored_events)
        )
        ids = [row[0] for row in result]
        self._notify_channel(session)
        return ids

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> list[Notification]:
        table: Table = self.events_record_cls.__table__
        c = table.c
        query = select(c.id, c.originator_id, c.originator_version, c.topic, c.state)
        if start is not None:
            query = query.where(c.id >= start if inclusive_of_start else c.id > start)
        if stop is not None:
            query = query.where(c.id <= stop)
        if topics:
            query = query.where(c.topic.in_(topics))
        query = query.order_by(c.id).limit(limit)
        with self.transaction(commit=False) as session:
            rows = session.execute(query).all()
        return [
            Notification(
                id=r[0], originator_id=r[1], originator_version=r[2], topic=r[3], state=bytes(r[4])
            )
            for r in rows
        ]


def _rows(stored_events: Sequence[StoredEvent]) -> list[dict[str, Any]]:
    return [
        {
            "originator_id": e.originator_id,
            "originator_version": e.originator_version,
            "topic": e.topic,
            "state": e.state,
        }
        for e in stored_events
    ]


class LedgerDatastore(SQLAlchemyDatastore):
    """The library's datastore, with the engine options the ledger's bulk paths need."""

    def __init__(self, *, url: str | None = None, **kwargs: Any) -> None:
        if url and url.startswith("postgresql"):
            # Batch executemany UPDATE/DELETE into pages (projection flushes, EOD), instead of
            # one round trip per row; INSERTs already use multi-row VALUES.
            kwargs.setdefault("executemany_mode", "values_plus_batch")
            kwargs.setdefault("pool_pre_ping", True)
        elif url and url.startswith("sqlite") and ":memory:" not in url:
            # Another process holding the write lock is waited for, not failed at once.
            kwargs.setdefault("connect_args", {"timeout": 30})
        super().__init__(url=url, **kwargs)


class LedgerFactory(SQLAlchemyFactory):
    datastore_class = LedgerDatastore
    aggregate_recorder_class = LedgerAggregateRecorder
    application_recorder_class = LedgerApplicationRecorder
