"""Each projection's tracking row: how far it has read the log, and the event it failed at.

``projection_tracking`` (migrations 0002, 0007) has one row per projection (and one per
rebuild under way, ``<name>__rebuild``). The position is written in the transaction that
writes the batch's rows, conditionally on it being unchanged since the batch read it
(``advance``), so two runners of the same projection never both apply a batch. A failure is
recorded on the row in its own transaction and cleared once the position moves past it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Engine,
    String,
    Table,
    Text,
    case,
    insert,
    null,
    select,
    update,
)

from domain.errors import LedgerError
from projections.base import metadata
from projections.failures import FailedEvent

#: Each projection's position in the notification log, written with its rows; and the event
#: it last failed to apply, if any (migration 0007; cleared once it advances past that event).
tracking = Table(
    "projection_tracking",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("position", BigInteger(), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("error", Text(), nullable=True),
    Column("error_position", BigInteger(), nullable=True),
    Column("failed_at", DateTime(timezone=True), nullable=True),
)


class ProjectionConflict(LedgerError):
    """Another runner advanced the projection meanwhile: this batch rolled back."""

    kind = "conflict"


class UnknownProjection(LedgerError):
    kind = "not_found"


def read_position(conn: Connection, name: str) -> int:
    value = conn.execute(select(tracking.c.position).where(tracking.c.name == name)).scalar()
    if value is None:
        raise UnknownProjection(
            f"projection {name} has no tracking row", field="name", rule="tracked"
        )
    return int(value)


def advance_position(conn: Connection, name: str, start: int, end: int) -> None:
    """Move ``name`` from ``start`` to ``end`` in the batch's transaction, clearing a failure
    recorded at or before ``end``; ``ProjectionConflict`` if it is no longer at ``start``."""
    advanced = conn.execute(
        update(tracking)
        .where(tracking.c.name == name)
        .where(tracking.c.position == start)
        .values(position=end, updated_at=datetime.now(UTC), **cleared_past(end))
    )
    if advanced.rowcount != 1:
        raise ProjectionConflict(
            f"projection {name} was advanced by another runner; batch rolled back",
            field="name",
            rule="single_runner",
        )


def cleared_past(position: int) -> dict[str, Any]:
    """Tracking values that clear a recorded failure once ``position`` is past its event."""
    past = tracking.c.error_position <= position
    return {
        column: case((past, null()), else_=tracking.c[column])
        for column in ("error", "error_position", "failed_at")
    }


def ensure_tracked(engine: Engine, names: Iterable[str]) -> None:
    """A tracking row at position 0 for each of ``names`` that has none."""
    with engine.begin() as conn:
        have = set(conn.execute(select(tracking.c.name)).scalars())
        missing = [
            {"name": n, "position": 0, "updated_at": datetime.now(UTC)}
            for n in names
            if n not in have
        ]
        if missing:
            conn.execute(insert(tracking), missing)


def start_at_zero(conn: Connection, name: str) -> None:
    """A fresh tracking row for ``name`` at position 0 (a rebuild's)."""
    conn.execute(tracking.delete().where(tracking.c.name == name))
    conn.execute(insert(tracking).values(name=name, position=0, updated_at=datetime.now(UTC)))


def record_failure(engine: Engine, failed: FailedEvent) -> None:
    """Write the failure on the projection's tracking row, in its own transaction."""
    with engine.begin() as conn:
        conn.execute(
            update(tracking)
            .where(tracking.c.name == failed.projection)
            .values(
                error=failed.line(), error_position=failed.position, failed_at=datetime.now(UTC)
            )
        )


def clear_failure(engine: Engine, name: str) -> None:
    """Clear a recorded failure of ``name`` (a read, unless there is one to clear)."""
    with engine.connect() as conn:
        recorded = conn.execute(
            select(tracking.c.error_position).where(tracking.c.name == name)
        ).scalar()
    if recorded is not None:
        with engine.begin() as conn:
            conn.execute(
                update(tracking)
                .where(tracking.c.name == name)
                .values(error=None, error_position=None, failed_at=None)
            )
