"""Advancing a projection to the head, and narrowing a failed batch down to its event.

``advance`` applies full batches until the log's head. When a batch fails on something an
event may be at fault for (not a lost connection, not another runner: ``event_may_be_at_fault``)
it rolls back and the same range is run again in halves, each half committed on its own, down
to one notification: everything before the bad event is applied, and the event named is the
first that fails by itself (``failed_event``). The normal path pays one ``try`` per batch; after
a failure, at most about 2·log₂(batch size) small transactions.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from sqlalchemy import Table

from projections.base import Projection
from projections.failures import FailedEvent, describe, is_environmental
from projections.positions import (
    ProjectionConflict,
    UnknownProjection,
    clear_failure,
    read_position,
    record_failure,
)

if TYPE_CHECKING:
    from projections.runner import ProjectionRunner

logger = logging.getLogger("ledger.projections")


def advance(
    runner: ProjectionRunner,
    projection: Projection,
    *,
    tracking_name: str | None = None,
    tables: Mapping[str, Table] | None = None,
    batch_size: int | None = None,
    first_size: int | None = None,
    on_batch: Callable[[int], None] | None = None,
    stop: threading.Event | None = None,
) -> tuple[int, FailedEvent | None]:
    """Apply batches until the head (or ``stop``); on a failed batch, apply the same range
    in halves, each committed on its own, until the first event that fails by itself.
    Return the notifications applied and that event (None if there was none); a live
    projection's failure is recorded on its tracking row."""
    full = batch_size or runner.batch_size
    size = first_size or full
    suspect = 0  # notifications from the position known to hold a failing event
    total = 0
    while stop is None or not stop.is_set():
        try:
            consumed = runner.run_batch(
                projection, tracking_name=tracking_name, tables=tables, batch_size=size
            )
        except Exception as exc:
            if not event_may_be_at_fault(exc):
                raise
            if size == 1:
                failed = failed_event(runner, projection, exc, tracking_name)
                if tracking_name is None:
                    _record(runner, failed)
                return total, failed
            if not suspect:  # no more than the log holds (ids bound the count)
                left = runner.head() - runner.position(tracking_name or projection.name)
                size = max(1, min(size, left))
            suspect, size = size, max(1, size // 2)
            continue
        if not consumed:
            if tracking_name is None:
                # At the head nothing stands in the way any more (say the failed event was
                # the last and was removed): a recorded failure goes.
                clear_failure(runner.engine, projection.name)
            break
        total += consumed
        if on_batch:
            on_batch(consumed)
        if suspect > consumed:  # the failure lies in the rest of the range
            suspect -= consumed
            size = max(1, suspect // 2)
        else:  # no suspect, or it did not fail again: full batches
            suspect, size = 0, full
    return total, None


def failed_event(
    runner: ProjectionRunner,
    projection: Projection,
    exc: BaseException,
    tracking_name: str | None = None,
    after: int | None = None,
) -> FailedEvent:
    """Describe the notification after the projection's committed position (or ``after``):
    the one that just failed on its own."""
    name = tracking_name or projection.name
    with runner.engine.connect() as conn:
        position = read_position(conn, name) if after is None else after
        rows = runner.log.read(conn, position, 1)
    reason = describe(exc)
    if not rows:  # gone meanwhile (deleted by hand?): say what is known
        return FailedEvent(
            projection.name, position + 1, "?", "?", 0, reason, rebuild=tracking_name is not None
        )
    notification_id, originator_id, version, topic = rows[0][:4]
    return FailedEvent(
        projection.name,
        int(notification_id),
        str(originator_id),
        str(topic),
        int(version),
        reason,
        rebuild=tracking_name is not None,
    )


def event_may_be_at_fault(exc: BaseException) -> bool:
    """Whether a failed batch may be failing on one of its events (so it is worth halving).
    Not when another runner moved the position or the database itself is in trouble
    (``is_environmental``): those are raised as they are."""
    if isinstance(exc, ProjectionConflict | UnknownProjection):
        return False
    # A rebuild's background COPY reports its thread's error as the cause.
    return not (
        is_environmental(exc) or (exc.__cause__ is not None and is_environmental(exc.__cause__))
    )


def _record(runner: ProjectionRunner, failed: FailedEvent) -> None:
    try:
        record_failure(runner.engine, failed)
    except Exception as exc:  # the failure is still raised or logged by the caller
        logger.warning(
            "could not record the failure of projection %s: %s", failed.projection, describe(exc)
        )
