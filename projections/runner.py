"""The projection runner: reads the event store's notification log in batches.

For each batch, in ONE transaction: read the projection's position, read the next events after
it, let the projection write its rows, and advance the position — conditionally on it being
unchanged, so two runners of the same projection can never both apply a batch. A crash anywhere
rolls the whole batch back; the rerun starts from the last committed position. Nothing is ever
counted twice or skipped.

``rebuild`` replays the whole log into shadow tables (``<table>__rebuild``) under a separate
tracking name, then, in one transaction, applies the last events, drops the live tables, renames
the shadows into place and moves the position: readers see the old tables or the new ones,
never a half-built one.

An event a projection cannot apply (it does not decode, a posting rule refuses it, the database
refuses a row) never leaves it silently stuck: the failed batch rolls back and the same range is
run again in halves, each in its own transaction, down to one notification, so everything before
the bad event is applied and committed and the bad one is named — position, aggregate, topic,
version and reason — in one line (``ProjectionFailed``, ``projections.failures``), recorded on
the projection's tracking row until it advances past that event. The normal path pays nothing
for this: one ``try`` around each batch; the halving runs only after a failure.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification
from sqlalchemy import (
    Connection,
    MetaData,
    Table,
    case,
    func,
    insert,
    null,
    select,
    text,
    update,
)

from domain.errors import LedgerError
from ledger.faults import crash_point
from ledger.memory import collect_between_batches
from ledger.persistence.tables import events as events_table
from projections.base import BackgroundCopy, Batch, Projection, TableCache, tracking
from projections.failures import FailedEvent, ProjectionFailed, describe, is_environmental

REBUILD_SUFFIX = "__rebuild"
INDEX_BUILD_MEMORY = "512MB"  # PostgreSQL's maintenance_work_mem while a rebuild swaps
RETRY_SECONDS = 30.0  # run_forever: first retry of a failed projection …
MAX_RETRY_SECONDS = 300.0  # … doubling up to this

logger = logging.getLogger("ledger.projections")

__all__ = ["FailedEvent", "ProjectionConflict", "ProjectionFailed", "ProjectionRunner",
           "ProjectionStatus", "UnknownProjection", "read_log"]


class ProjectionConflict(LedgerError):
    kind = "conflict"


class UnknownProjection(LedgerError):
    kind = "not_found"


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
        return {"name": self.name, "position": self.position, "head": self.head,
                "lag_events": self.lag_events, "lag_seconds": round(self.lag_seconds, 3),
                "updated_at": self.updated_at.isoformat() if self.updated_at else None,
                "error": self.error, "error_position": self.error_position,
                "failed_at": self.failed_at.isoformat() if self.failed_at else None}


class ProjectionRunner:
    def __init__(self, app: Any, projections: Sequence[Projection] | None = None,
                 batch_size: int = 5000, rebuild_batch_size: int = 20_000) -> None:
        from projections.registry import all_projections

        self.app = app
        self.engine = app.engine
        self.mapper = app.mapper
        self.projections = (list(projections) if projections is not None
                            else all_projections(app.settings))
        self.batch_size = batch_size
        # A rebuild is the only writer of its shadow tables and has the whole log to read:
        # bigger batches touch each loan's row once per several days of events, not per event.
        self.rebuild_batch_size = max(rebuild_batch_size, batch_size)

    # ------------------------------------------------------------------- lookup
    def get(self, name: str) -> Projection:
        for projection in self.projections:
            if projection.name == name:
                return projection
        known = ", ".join(p.name for p in self.projections)
        raise UnknownProjection(f"no projection named {name!r}; known: {known}",
                                field="name", rule="known_projection")

    def selected(self, names: Iterable[str] | None) -> list[Projection]:
        return [self.get(n) for n in names] if names else list(self.projections)

    # ----------------------------------------------------------------- one batch
    def run_batch(self, projection: Projection, *, tracking_name: str | None = None,
                  tables: Mapping[str, Table] | None = None,
                  conn: Connection | None = None, batch_size: int | None = None,
                  cache: dict[str, Any] | None = None,
                  copier: BackgroundCopy | None = None) -> int:
        """Apply the next batch; return how many notifications it consumed (0: caught up)."""
        if conn is None:
            with self.engine.begin() as own:
                consumed = self.run_batch(projection, tracking_name=tracking_name,
                                          tables=tables, conn=own, batch_size=batch_size,
                                          cache=cache, copier=copier)
            if consumed:
                self._after_commit()
            return consumed
        name = tracking_name or projection.name
        position = _position(conn, name)
        rows = read_log(conn, position, batch_size or self.batch_size)
        if not rows:
            return 0
        decoded, positions = [], []
        to_event = self.mapper.to_domain_event
        for r in rows:
            if projection.wants(r[3]):
                decoded.append(to_event(Notification(
                    id=r[0], originator_id=r[1], originator_version=r[2], topic=r[3],
                    state=bytes(r[4]))))
                positions.append(r[0])
        last = rows[-1][0]
        if decoded:
            live = {t.name: t for t in projection.tables}
            projection.process(Batch(conn=conn, events=decoded, positions=positions,
                                     tables=dict(tables or live), last_position=last,
                                     cache=cache, copier=copier))
        crash_point("projection_inside_batch")  # rows written, position not yet: must roll back
        advanced = conn.execute(
            update(tracking).where(tracking.c.name == name)
            .where(tracking.c.position == position)
            .values(position=last, updated_at=datetime.now(UTC), **_cleared_past(last)))
        if advanced.rowcount != 1:
            raise ProjectionConflict(
                f"projection {name} was advanced by another runner; batch rolled back",
                field="name", rule="single_runner")
        return len(rows)

    def _after_commit(self) -> None:
        crash_point("projection_between_batches")

    def catch_up(self, names: Iterable[str] | None = None,
                 progress: Callable[[str, int], None] | None = None) -> dict[str, int]:
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
            done[projection.name], failed = self._advance(projection, on_batch=on_batch)
            if failed is not None:
                failures.append(failed)
        if failures:
            raise ProjectionFailed(failures, done=done)
        return done

    def run_forever(self, stop: threading.Event, poll_seconds: float = 0.5,
                    names: Iterable[str] | None = None,
                    retry_seconds: float = RETRY_SECONDS,
                    max_retry_seconds: float = MAX_RETRY_SECONDS) -> None:
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
            behind = [p for p in selected
                      if retry_at.get(p.name, now) <= now and self.position(p.name) < head]
            for projection in behind:
                name = projection.name
                _, failed = self._advance(projection, stop=stop,
                                          first_size=1 if name in retry_at else None)
                if failed is None:
                    if retry_at.pop(name, None) is not None:
                        delays.pop(name, None)
                        logger.info("projection %s applies events again", name)
                    continue
                delay = delays[name] = (min(delays[name] * 2, max_retry_seconds)
                                        if name in delays else retry_seconds)
                retry_at[name] = time.monotonic() + delay
                logger.error("%s; next attempt in %.3g s", failed.line(), delay)
            if not behind:
                stop.wait(poll_seconds)

    def _advance(self, projection: Projection, *, tracking_name: str | None = None,
                 tables: Mapping[str, Table] | None = None, batch_size: int | None = None,
                 first_size: int | None = None, on_batch: Callable[[int], None] | None = None,
                 stop: threading.Event | None = None) -> tuple[int, FailedEvent | None]:
        """Apply batches until the head (or ``stop``); on a failed batch, apply the same range
        in halves, each committed on its own, until the first event that fails by itself.
        Return the notifications applied and that event (None if there was none); a live
        projection's failure is recorded on its tracking row."""
        full = batch_size or self.batch_size
        size = first_size or full
        suspect = 0  # notifications from the position known to hold a failing event
        total = 0
        while stop is None or not stop.is_set():
            try:
                consumed = self.run_batch(projection, tracking_name=tracking_name,
                                          tables=tables, batch_size=size)
            except Exception as exc:
                if not _event_may_be_at_fault(exc):
                    raise
                if size == 1:
                    failed = self._failed_event(projection, exc, tracking_name)
                    if tracking_name is None:
                        self._record(failed)
                    return total, failed
                if not suspect:  # no more than the log holds (ids bound the count)
                    left = self.head() - self.position(tracking_name or projection.name)
                    size = max(1, min(size, left))
                suspect, size = size, max(1, size // 2)
                continue
            if not consumed:
                if tracking_name is None:
                    self._clear_error(projection.name)
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

    def _clear_error(self, name: str) -> None:
        """At the head nothing stands in the way any more (say the failed event was the last
        and was removed): a recorded failure goes. A read unless there is one to clear."""
        with self.engine.connect() as conn:
            recorded = conn.execute(select(tracking.c.error_position)
                                    .where(tracking.c.name == name)).scalar()
        if recorded is not None:
            with self.engine.begin() as conn:
                conn.execute(update(tracking).where(tracking.c.name == name)
                             .values(error=None, error_position=None, failed_at=None))

    def _failed_event(self, projection: Projection, exc: BaseException,
                      tracking_name: str | None = None, after: int | None = None
                      ) -> FailedEvent:
        """Describe the notification after the projection's committed position (or
        ``after``): the one that just failed on its own."""
        name = tracking_name or projection.name
        with self.engine.connect() as conn:
            position = _position(conn, name) if after is None else after
            rows = read_log(conn, position, 1)
        reason = describe(exc)
        if not rows:  # gone meanwhile (deleted by hand?): say what is known
            return FailedEvent(projection.name, position + 1, "?", "?", 0, reason,
                               rebuild=tracking_name is not None)
        notification_id, originator_id, version, topic = rows[0][:4]
        return FailedEvent(projection.name, int(notification_id), str(originator_id),
                           str(topic), int(version), reason, rebuild=tracking_name is not None)

    def _record(self, failed: FailedEvent) -> None:
        """Write the failure on the projection's tracking row, in its own transaction."""
        try:
            with self.engine.begin() as conn:
                conn.execute(update(tracking).where(tracking.c.name == failed.projection)
                             .values(error=failed.line(), error_position=failed.position,
                                     failed_at=datetime.now(UTC)))
        except Exception as exc:  # the failure is still raised or logged by the caller
            logger.warning("could not record the failure of projection %s: %s",
                           failed.projection, describe(exc))

    # ------------------------------------------------------------------- status
    def ensure_tracking(self, names: Iterable[str] | None = None) -> None:
        wanted = list(names) if names is not None else [p.name for p in self.projections]
        with self.engine.begin() as conn:
            have = set(conn.execute(select(tracking.c.name)).scalars())
            missing = [{"name": n, "position": 0, "updated_at": datetime.now(UTC)}
                       for n in wanted if n not in have]
            if missing:
                conn.execute(insert(tracking), missing)

    def head(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.max(events_table.c.id))).scalar() or 0)

    def position(self, name: str) -> int:
        with self.engine.connect() as conn:
            return _position(conn, name)

    def status(self) -> list[ProjectionStatus]:
        """Each projection's position, the head, its lag, and the event it failed at (if
        it did: ``error`` is the one-line failure, set until it advances past that event)."""
        self.ensure_tracking()
        with self.engine.connect() as conn:
            head = int(conn.execute(select(func.max(events_table.c.id))).scalar() or 0)
            rows = {r.name: r for r in conn.execute(select(tracking))}
            result = []
            for p in self.projections:
                row = rows[p.name]
                lag_seconds = 0.0
                if row.position < head:
                    recorded = self._recorded_at(conn, row.position) or _aware(row.updated_at)
                    if recorded is not None:
                        lag_seconds = max(0.0, (datetime.now(UTC) - recorded).total_seconds())
                result.append(ProjectionStatus(
                    p.name, row.position, head, head - row.position, lag_seconds,
                    _aware(row.updated_at), error=row.error,
                    error_position=row.error_position, failed_at=_aware(row.failed_at)))
        return result

    def _recorded_at(self, conn: Connection, position: int) -> datetime | None:
        """When the oldest event this projection has not seen was recorded (None if it
        cannot be read: status must work exactly when an event does not decode)."""
        c = events_table.c
        row = conn.execute(select(c.id, c.originator_id, c.originator_version, c.topic, c.state)
                           .where(c.id > position).order_by(c.id).limit(1)).first()
        if row is None:
            return None
        try:
            event = self.mapper.to_domain_event(Notification(
                id=row[0], originator_id=row[1], originator_version=row[2], topic=row[3],
                state=bytes(row[4])))
            return _aware(event.timestamp)
        except Exception:
            return None

    # ------------------------------------------------------------------ rebuild
    def rebuild(self, name: str,
                progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
        """Replay the whole log into fresh tables, then swap them in atomically.

        If an event cannot be applied, ``ProjectionFailed`` names it (``rebuild`` set on its
        ``FailedEvent``); the live tables and positions stay as they were and the shadow
        tables are dropped. Finding that event replays the log again up to the failed batch
        (then that batch in halves), so a failed rebuild takes up to about twice as long."""
        projection = self.get(name)
        self.ensure_tracking()
        started = time.perf_counter()
        shadow_md = MetaData()
        shadows = {t.name: _shadow(t, shadow_md) for t in projection.tables}
        try:
            try:
                events, position = self._rebuild(projection, shadows, progress)
            except _ReplayFailed as replay:
                failed = self._locate_rebuild_failure(projection, shadows, replay.error)
                raise ProjectionFailed([failed]) from replay.error
        except BaseException:
            self._drop_shadows(projection, shadows)
            raise
        seconds = time.perf_counter() - started
        return {"name": name, "events": events, "position": position, "seconds": seconds,
                "events_per_second": events / seconds if seconds else 0.0}

    def _rebuild(self, projection: Projection, shadows: Mapping[str, Table],
                 progress: Callable[[int, int], None] | None) -> tuple[int, int]:
        name, rebuild_name = projection.name, projection.name + REBUILD_SUFFIX
        self._start_shadows(projection, shadows)
        head = self.head()
        events = 0
        cache: dict[str, TableCache] = {}  # rows between batches; dies with a failed rebuild
        # PostgreSQL: history rows are copied on a second connection while the next batch is
        # worked on, and committed before the swap below (BackgroundCopy).
        copying = (BackgroundCopy(self.engine) if self.engine.dialect.name == "postgresql"
                   else nullcontext())
        with _replaying(), copying as copier, collect_between_batches() as collect:
            while consumed := self.run_batch(projection, tracking_name=rebuild_name,
                                             tables=shadows, cache=cache, copier=copier,
                                             batch_size=self.rebuild_batch_size):
                collect()
                events += consumed
                if progress:
                    progress(consumed, head)
        with self.engine.begin() as conn:
            # Claim the live position first: a live runner's concurrent batch now fails its
            # conditional update and rolls back instead of writing into the dropped tables.
            conn.execute(update(tracking).where(tracking.c.name == name)
                         .values(updated_at=datetime.now(UTC)))
            with _replaying():
                while consumed := self.run_batch(projection, tracking_name=rebuild_name,
                                                 tables=shadows, conn=conn, cache=cache,
                                                 batch_size=self.rebuild_batch_size):
                    events += consumed
            for table_name, table_cache in cache.items():
                table_cache.write_pending(conn, shadows[table_name])
            if conn.dialect.name == "postgresql":
                # The swap builds every index of the fresh tables; with the default 64 MB
                # the journal's sort spills to disk (600,000 lines: 1.2 s, here 0.6 s).
                conn.execute(text(f"SET LOCAL maintenance_work_mem = '{INDEX_BUILD_MEMORY}'"))
            position = _position(conn, rebuild_name)
            for live in projection.tables:
                _swap(conn, live, shadows[live.name])
            conn.execute(update(tracking).where(tracking.c.name == name)
                         .values(position=position, updated_at=datetime.now(UTC),
                                 **_cleared_past(position)))
            conn.execute(tracking.delete().where(tracking.c.name == rebuild_name))
        return events, position

    def _start_shadows(self, projection: Projection, shadows: Mapping[str, Table]) -> None:
        """Empty shadow tables and a rebuild position of 0."""
        rebuild_name = projection.name + REBUILD_SUFFIX
        with self.engine.begin() as conn:
            for shadow in shadows.values():
                shadow.drop(conn, checkfirst=True)
                shadow.create(conn)
            conn.execute(tracking.delete().where(tracking.c.name == rebuild_name))
            conn.execute(insert(tracking).values(name=rebuild_name, position=0,
                                                 updated_at=datetime.now(UTC)))

    def _drop_shadows(self, projection: Projection, shadows: Mapping[str, Table]) -> None:
        """After a failed rebuild: drop what it built (best effort; the failure is raised)."""
        try:
            with self.engine.begin() as conn:
                for shadow in shadows.values():
                    shadow.drop(conn, checkfirst=True)
                conn.execute(tracking.delete()
                             .where(tracking.c.name == projection.name + REBUILD_SUFFIX))
        except Exception as exc:
            logger.warning("could not drop the shadow tables of projection %s: %s",
                           projection.name, describe(exc))

    def _locate_rebuild_failure(self, projection: Projection, shadows: Mapping[str, Table],
                                error: Exception) -> FailedEvent:
        """Find the event a failed rebuild could not apply.

        The failed pass's rows between batches (its cache) and its background COPY are lost,
        so the log is replayed again, as fast, up to the position it had committed (with COPY
        in each batch's own transaction, so a failure belongs to its batch), and from there
        on one batch at a time without the cache, halving a failed batch (``_advance``)."""
        rebuild_name = projection.name + REBUILD_SUFFIX
        limit = self.position(rebuild_name)
        for _ in range(3):  # a failure before ``limit`` moves it back: replay to there
            self._start_shadows(projection, shadows)
            cache: dict[str, TableCache] = {}
            try:
                self._replay_until(projection, shadows, cache, limit)
            except Exception as exc:
                if not _event_may_be_at_fault(exc):
                    raise
                error, limit = exc, self.position(rebuild_name)
                continue
            with self.engine.begin() as conn:
                for table_name, table_cache in cache.items():
                    table_cache.write_pending(conn, shadows[table_name])
            _, failed = self._advance(projection, tracking_name=rebuild_name, tables=shadows,
                                      batch_size=self.rebuild_batch_size)
            if failed is not None:
                return failed
            break
        # It did not fail again one event at a time: name the first event after the last
        # committed batch, and say so.
        failed = self._failed_event(projection, error, rebuild_name, after=limit)
        return FailedEvent(failed.projection, failed.position, failed.aggregate_id,
                           failed.topic, failed.version,
                           f"{failed.reason} (in the batch from here; not reproduced one "
                           "event at a time)", rebuild=True)

    def _replay_until(self, projection: Projection, shadows: Mapping[str, Table],
                      cache: dict[str, TableCache], limit: int) -> None:
        """Rebuild batches (with the cache) that end exactly at notification ``limit``."""
        rebuild_name = projection.name + REBUILD_SUFFIX
        c = events_table.c
        with collect_between_batches() as collect:
            position = 0
            while position < limit:
                with self.engine.connect() as conn:
                    left = int(conn.execute(select(func.count()).where(
                        c.id > position, c.id <= limit)).scalar_one())
                if not left or not self.run_batch(
                        projection, tracking_name=rebuild_name, tables=shadows, cache=cache,
                        batch_size=min(left, self.rebuild_batch_size)):
                    return
                collect()
                position = self.position(rebuild_name)


_READ_LOG = ("SELECT id, originator_id, originator_version, topic, state"
             f' FROM "{events_table.name}" WHERE id > %s ORDER BY id LIMIT %s')


def read_log(conn: Connection, after: int, limit: int) -> Sequence[Any]:
    """The next ``limit`` rows of the notification log after id ``after``, in id order, as
    (id, originator_id, originator_version, topic, state) tuples."""
    if conn.dialect.name == "postgresql":
        # Through the driver's own cursor, in the same transaction: SQLAlchemy's result rows
        # and type processors cost as much again as the query (measured 90k against 165k rows
        # per second). The dialect registers psycopg2's UUID type, so ids arrive as UUIDs.
        raw = conn.connection.dbapi_connection
        assert raw is not None
        with raw.cursor() as cursor:
            cursor.execute(_READ_LOG, (after, limit))
            rows: list[Any] = cursor.fetchall()
        assert not rows or isinstance(rows[0][1], UUID)
        return rows
    c = events_table.c
    return conn.execute(select(c.id, c.originator_id, c.originator_version, c.topic, c.state)
                        .where(c.id > after).order_by(c.id).limit(limit)).all()


def _position(conn: Connection, name: str) -> int:
    value = conn.execute(select(tracking.c.position).where(tracking.c.name == name)).scalar()
    if value is None:
        raise UnknownProjection(f"projection {name} has no tracking row", field="name",
                                rule="tracked")
    return int(value)


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _shadow(table: Table, md: MetaData) -> Table:
    shadow = table.to_metadata(md, name=table.name + REBUILD_SUFFIX)
    shadow.indexes.clear()  # built after the swap, under their real names
    return shadow


def _swap(conn: Connection, live: Table, shadow: Table) -> None:
    live.drop(conn, checkfirst=True)
    conn.execute(text(f'ALTER TABLE "{shadow.name}" RENAME TO "{live.name}"'))
    if conn.dialect.name == "postgresql":
        # Keep the primary key's index under the name alembic gave it.
        conn.execute(text(f'ALTER INDEX IF EXISTS "{shadow.name}_pkey" '
                          f'RENAME TO "{live.name}_pkey"'))
    for index in live.indexes:
        index.create(conn)


def _cleared_past(position: int) -> dict[str, Any]:
    """Tracking values that clear a recorded failure once ``position`` is past its event."""
    past = tracking.c.error_position <= position
    return {column: case((past, null()), else_=tracking.c[column])
            for column in ("error", "error_position", "failed_at")}


def _event_may_be_at_fault(exc: BaseException) -> bool:
    """Whether a failed batch may be failing on one of its events (so it is worth halving).
    Not when another runner moved the position or the database itself is in trouble
    (``is_environmental``): those are raised as they are."""
    if isinstance(exc, ProjectionConflict | UnknownProjection):
        return False
    # A rebuild's background COPY reports its thread's error as the cause.
    return not (is_environmental(exc)
                or (exc.__cause__ is not None and is_environmental(exc.__cause__)))


class _ReplayFailed(Exception):
    """A rebuild's batch failed with ``error`` (see ``rebuild``)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


@contextmanager
def _replaying() -> Iterator[None]:
    """Marks a failure of the rebuild's batches (not of its DDL or swap) as ``_ReplayFailed``."""
    try:
        yield
    except Exception as exc:
        if not _event_may_be_at_fault(exc):
            raise
        raise _ReplayFailed(exc) from exc
