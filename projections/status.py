"""How fresh each projection is: its position, the log's head, the lag in events and in
seconds (since the oldest event it has not applied was recorded), and the event it stopped at.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.persistence import Mapper, Notification
from sqlalchemy import Connection, select

from projections.positions import tracking

if TYPE_CHECKING:
    from projections.runner import NotificationLog


@dataclass(frozen=True)
class ProjectionStatus:
    name: str
    position: int
    head: int
    lag_events: int
    lag_seconds: float
    updated_at: datetime | None
    #: The one-line failure at the event this projection cannot apply (None when it can go on).
    error: str | None = None
    error_position: int | None = None  # notification id of that event
    failed_at: datetime | None = None  # when it last failed there

    @property
    def failed(self) -> bool:
        return self.error is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "position": self.position,
            "head": self.head,
            "lag_events": self.lag_events,
            "lag_seconds": round(self.lag_seconds, 3),
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
            "error": self.error,
            "error_position": self.error_position,
            "failed_at": self.failed_at.isoformat() if self.failed_at else None,
        }


def read_status(
    conn: Connection, names: Sequence[str], log: NotificationLog, mapper: Mapper[UUID]
) -> list[ProjectionStatus]:
    """The status of each projection in ``names`` (their tracking rows must exist)."""
    head = log.head(conn)
    rows = {r.name: r for r in conn.execute(select(tracking))}
    result = []
    for name in names:
        row = rows[name]
        lag_seconds = 0.0
        if row.position < head:
            recorded = _recorded_at(conn, log, mapper, row.position) or _aware(row.updated_at)
            if recorded is not None:
                lag_seconds = max(0.0, (datetime.now(UTC) - recorded).total_seconds())
        result.append(
            ProjectionStatus(
                name,
                row.position,
                head,
                head - row.position,
                lag_seconds,
                _aware(row.updated_at),
                error=row.error,
                error_position=row.error_position,
                failed_at=_aware(row.failed_at),
            )
        )
    return result


def _recorded_at(
    conn: Connection, log: NotificationLog, mapper: Mapper[UUID], position: int
) -> datetime | None:
    """When the oldest event after ``position`` was recorded (None if it cannot be read:
    status must work exactly when an event does not decode)."""
    row = log.first_after(conn, position)
    if row is None:
        return None
    try:
        event: Any = mapper.to_domain_event(
            Notification(
                id=row[0],
                originator_id=row[1],
                originator_version=row[2],
                topic=row[3],
                state=bytes(row[4]),
            )
        )
        return _aware(event.timestamp)
    except Exception:
        return None


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value
