"""The projection runner: reads the event store's notification log in batches.

For each batch, in ONE transaction: read the projection's position, read the next events after
it, let the projection write its rows, and advance the position — conditionally on it being
unchanged, so two runners of the same projection can never both apply a batch. A crash anywhere
rolls the whole batch back; the rerun starts from the last committed position. Nothing is ever
counted twice or skipped.

``rebuild`` replays the whole log into shadow tables (``<table>__rebuild``) under a separate
tracking name, then, in one transaction, applies the last events, drops the live tables, renames
the shadows into place and moves the position: readers see the old tables or the new ones,
never a half-built one (``projections.rebuild``).

An event a projection cannot apply (it does not decode, a posting rule refuses it, the database
refuses a row) never leaves it silently stuck: the failed batch rolls back and the same range is
run again in halves, each in its own transaction, down to one notification, so everything before
the bad event is applied and committed and the bad one is named — position, aggregate, topic,
version and reason — in one line (``ProjectionFailed``, ``projections.failures``), recorded on
the projection's tracking row until it advances past that event (``projections.bisection``,
``projections.positions``). The normal path pays nothing for this: one ``try`` around each
batch; the halving runs only after a failure.

The runner is given everything it works with (the composition root, ``ledger.bootstrap``, wires
it): the engine, the mapper that decodes stored events, the log it reads (a ``NotificationLog``;
the ledger's is ``ledger.persistence.log.EventLog``), the projections, the batch sizes, a fault
hook called at named points (``LEDGER_FAULT_CRASH`` crash tests) and the garbage-collection hook
of the bulk paths. It imports nothing of the ledger.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from functools import partial
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.persistence import Mapper, Notification
from sqlalchemy import Connection, Engine, Table

from projections.base import Batch, Projection, TableCache
from projections.bisection import advance
from projections.copy import BackgroundCopy
from projections.failures import FailedEvent, ProjectionFailed
from projections.positions import (
    ProjectionConflict,
    UnknownProjection,
    advance_position,
    ensure_tracked,
    read_position,
)
from projections.rebuild import rebuild_projection
from projections.status import ProjectionStatus, read_status

RETRY_SECONDS = 30.0  # run_forever: first retry of a failed projection …
MAX_RETRY_SECONDS = 300.0  # … doubling up to this

logger = logging.getLogger("ledger.projections")

__all__ = [
    "FailedEvent",
    "NotificationLog",
    "ProjectionConflict",
    "ProjectionFailed",
    "ProjectionRunner",
    "ProjectionStatus",
    "UnknownProjection",
]

#: (id, originator_id, originator_version, topic, state): one stored event and its position.
LogRow = Sequence[Any]
#: ``with collect_between_batches() as collect``: call ``collect()`` after each batch.
Collector = Callable[[], AbstractContextManager[Callable[[], object]]]


class NotificationLog(Protocol):
    """The reads of the event log the runner needs, each on the caller's connection."""

    def read(self, conn: Connection, after: int, limit: int) -> Sequence[LogRow]:
        """The next ``limit`` rows after id ``after``, in id order."""

    def head(self, conn: Connection) -> int:
        """The id of the last recorded event (0: empty)."""

    def first_after(self, conn: Connection, position: int) -> LogRow | None:
        """The first row after id ``position`` (None at the head)."""

    def count(self, conn: Connection, after: int, through: int) -> int:
        """How many rows have ids in ``(after, through]``."""


def no_fault(point: str) -> None:
    """The default fault hook: nothing happens at ``point``."""


@contextmanager
def automatic_collection() -> Iterator[Callable[[], object]]:
    """The default garbage-collection hook: leave the collector as it is."""
    yield lambda: None


class ProjectionRunner:
    """Serves ``projections`` from ``log``, each batch in one transaction with its position."""

    def __init__(
        self,
        engine: Engine,
        mapper: Mapper[UUID],
        log: NotificationLog,
        projections: Sequence[Projection],
        *,
        batch_size: int = 5000,
        rebuild_batch_size: int = 20_000,
        fault: Callable[[str], None] = no_fault,
        collect_between_batches: Collector = automatic_collection,
    ) -> None:
        self.engine = engine
        self.mapper = mapper
        self.log = log
        self.projections = list(projections)
        self.batch_size = batch_size
        # A rebuild is the only writer of its shadow tables and has the whole log to read:
        # bigger batches touch each loan's row once per several days of events, not per event.
        self.rebuild_batch_size = max(rebuild_batch_size, batch_size)
        #: Called with a point's name where a crash test may kill the process.
        self.fault = fault
        #: Wraps a rebuild's batches (``ledger.memory``: automatic GC off, collected between).
        self.collect_between_batches = collect_between_batches

    # ------------------------------------------------------------------- lookup
    def get(self, name: str) -> Projection:
        for projection in self.projections:
            if projection.name == name:
                return projection
        known = ", ".join(p.name for p in self.projections)
        raise UnknownProjection(
            f"no projection named {name!r}; known: {known}", field="name", rule="known_projection"
        )

    def selected(self, names: Iterable[str] | None) -> list[Projection]:
        return [self.get(n) for n in names] if names else list(self.projections)

    # ----------------------------------------------------------------- one batch
    def run_batch(
        self,
        projection: Projection,
        *,
        tracking_name: str | None = None,
        tables: Mapping[str, Table] | None = None,
        conn: Connection | None = None,
        batch_size: int | None = None,
        cache: dict[str, TableCache] | None = None,
        copier: BackgroundCopy | None = None,
    ) -> int:
        """Apply the next batch; return how many notifications it consumed (0: caught up)."""
        if conn is None:
            with self.engine.begin() as own:
                consumed = self.run_batch(
                    projection,
                    tracking_name=tracking_name,
                    tables=tables,
                    conn=own,
                    batch_size=batch_size,
                    cache=cache,
                    copier=copier,
                )
            if consumed:
                self.fault("projection_between_batches")
            return consumed
        name = tracking_name or projection.name
        position = read_position(conn, name)
        rows = self.log.read(conn, position, batch_size or self.batch_size)
        if not rows:
            return 0
        decoded, positions = [], []
        to_event = self.mapper.to_domain_event
        for r in rows:
            if projection.wants(r[3]):
                decoded.append(
                    to_event(
                        Notification(
                            id=r[0],
                            originator_id=r[1],
                            originator_version=r[2],
                            topic=r[3],
                            state=bytes(r[4]),
                        )
                    )
                )
                positions.append(r[0])
        last: int = rows[-1][0]
        if decoded:
            live = {t.name: t for t in projection.tables}
            projection.process(
                Batch(
                    conn=conn,
                    events=decoded,
                    positions=positions,
                    tables=dict(tables or live),
                    last_position=last,
                    cache=cache,
                    copier=copier,
                )
            )
        self.fault("projection_inside_batch")  # rows written, position not yet: must roll back
        advance_position(conn, name, position, last)
        return len(rows)

    def catch_up(
        self, names: Iterable[str] | None = None, progress: Callable[[str, int], None] | None = None
    ) -> dict[str, int]:
        """Run every selected projection until it has read the whole log; return how many
        notifications each applied.

        A projection that meets an event it cannot apply stops just before it (everything
        earlier committed) and the others still run to the head; then one ``ProjectionFailed``
        names every failed projection's event (``failures``, one line each) and carries these
        counts (``done``)."""
        self.ensure_tracking()
        done: dict[str, int] = {}
        failures: list[FailedEvent] = []
        for projection in self.selected(names):
            on_batch = partial(progress, projection.name) if progress else None
            done[projection.name], failed = advance(self, projection, on_batch=on_batch)
            if failed is not None:
                failures.append(failed)
        if failures:
            raise ProjectionFailed(failures, done=done)
        return done

    def run_forever(
        self,
        stop: threading.Event,
        poll_seconds: float = 0.5,
        names: Iterable[str] | None = None,
        retry_seconds: float = RETRY_SECONDS,
        max_retry_seconds: float = MAX_RETRY_SECONDS,
    ) -> None:
        """Keep projections current until ``stop`` is set: tight polling of the log head
        (works on SQLite and PostgreSQL alike; an idle poll is one indexed MAX query).

        A projection that cannot apply an event is logged (one line, logger
        ``ledger.projections``) and left alone for ``retry_seconds``, doubling up to
        ``max_retry_seconds`` while it keeps failing; the others are served meanwhile. A retry
        starts with the failed event alone, so it costs one small transaction."""
        self.ensure_tracking()
        selected = self.selected(names)
        retry_at: dict[str, float] = {}  # name -> time.monotonic() of its next attempt
        delays: dict[str, float] = {}
        while not stop.is_set():
            head = self.head()
            now = time.monotonic()
            behind = [
                p
                for p in selected
                if retry_at.get(p.name, now) <= now and self.position(p.name) < head
            ]
            for projection in behind:
                name = projection.name
                _, failed = advance(
                    self, projection, stop=stop, first_size=1 if name in retry_at else None
                )
                if failed is None:
                    if retry_at.pop(name, None) is not None:
                        delays.pop(name, None)
                        logger.info("projection %s applies events again", name)
                    continue
                delay = delays[name] = (
                    min(delays[name] * 2, max_retry_seconds) if name in delays else retry_seconds
                )
                retry_at[name] = time.monotonic() + delay
                logger.error("%s; next attempt in %.3g s", failed.line(), delay)
            if not behind:
                stop.wait(poll_seconds)

    def rebuild(
        self, name: str, progress: Callable[[int, int], None] | None = None
    ) -> dict[str, Any]:
        """Replay the whole log into fresh tables, then swap them in atomically
        (``projections.rebuild``).

        If an event cannot be applied, ``ProjectionFailed`` names it (``rebuild`` set on its
        ``FailedEvent``); the live tables and positions stay as they were and the shadow
        tables are dropped. Finding that event replays the log again up to the failed batch
        (then that batch in halves), so a failed rebuild takes up to about twice as long."""
        return rebuild_projection(self, self.get(name), progress)

    # ------------------------------------------------------------------- status
    def ensure_tracking(self, names: Iterable[str] | None = None) -> None:
        ensure_tracked(
            self.engine, list(names) if names is not None else [p.name for p in self.projections]
        )

    def head(self) -> int:
        with self.engine.connect() as conn:
            return self.log.head(conn)

    def position(self, name: str) -> int:
        with self.engine.connect() as conn:
            return read_position(conn, name)

    def status(self) -> list[ProjectionStatus]:
        """Each projection's position, the head, its lag, and the event it failed at (if
        it did: ``error`` is the one-line failure, set until it advances past that event)."""
        self.ensure_tracking()
        with self.engine.connect() as conn:
            return read_status(conn, [p.name for p in self.projections], self.log, self.mapper)
