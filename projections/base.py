"""What every projection is: a read model built from the event log, one batch at a time.

A projection receives a ``Batch`` of decoded events in notification order and writes its rows
through ``batch.conn``, inside the transaction that also advances its tracking position, so a
crash never double-counts or skips. ``batch.tables`` maps each logical table name to the table to
write: the live table normally, a shadow table while a rebuild (``projections.rebuild``) builds
a fresh copy.

Rules for read-model tables (so rebuilds can swap them in): declare them on ``metadata`` below,
give them a primary key, and name indexes ``<table>_<purpose>_idx``; no other named constraints.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar
from uuid import UUID

from sqlalchemy import Connection, MetaData, Table, and_, bindparam, select, tuple_

from projections.copy import BackgroundCopy, copy_rows, copy_text

#: Every read-model table (and ``projections.positions.tracking``) is declared on it.
metadata = MetaData()

IN_CHUNK = 500  # keys per IN (…) list
ROW_CACHE_LIMIT = 250_000  # rows per table a rebuild keeps between batches


class AggregateIds(dict[int, str]):
    """``UUID.int`` -> ``str(UUID)``, each made once per batch instead of once per event:
    ``str(UUID)`` is slow, and a UUID as a dict key hashes and compares in Python, its int
    in C."""

    def __missing__(self, key: int) -> str:
        value = self[key] = str(UUID(int=key))
        return value


@dataclass
class Batch:
    conn: Connection
    events: list[Any]  # decoded domain events of this projection's topics, in log order
    positions: list[int]  # the notification id of each event
    tables: Mapping[str, Table]  # logical table name -> table to write (live or shadow)
    last_position: int  # the batch's last notification id (including ignored events)
    #: Rows kept between the batches of a rebuild (the only writer of its shadow tables);
    #: None when running live.
    cache: dict[str, TableCache] | None = None
    #: ``ids[event.originator_id.int]``: the id as the string read models key on.
    ids: AggregateIds = field(default_factory=AggregateIds)
    #: A rebuild's background COPY on PostgreSQL (``projections.copy``); None otherwise.
    copier: BackgroundCopy | None = None

    def table(self, name: str) -> Table:
        return self.tables[name]

    def copy_text(self, name: str, columns: Sequence[str], lines: Sequence[str]) -> None:
        """Append pre-formatted rows to table ``name`` (``projections.copy.copy_text``;
        PostgreSQL only): in the background during a rebuild, else in this batch's
        transaction."""
        if self.copier is not None:
            self.copier.submit(self.table(name), columns, lines)
        else:
            copy_text(self.conn, self.table(name), columns, lines)

    def rowset(self, name: str, *, cached: bool = False) -> RowSet:
        """A RowSet on table ``name``. ``cached`` (for per-entity tables that are only ever
        written through RowSets) lets a rebuild keep rows in memory between batches."""
        cache = None
        if cached and self.cache is not None:
            cache = self.cache.setdefault(name, TableCache())
            if len(cache.rows) > ROW_CACHE_LIMIT:
                # Bounded memory: write what is pending, then read from the table again.
                cache.write_pending(self.conn, self.table(name))
                cache.rows.clear()
        return RowSet(self.conn, self.table(name), cache=cache)


@dataclass
class TableCache:
    """A rebuild's rows of one per-entity table, kept between batches.

    A rebuild writes fresh shadow tables that nobody reads until the swap, and starts from
    scratch if interrupted; so changed rows wait here (``pending``) and are written once, when
    the cache fills or the rebuild ends, instead of once per batch.
    """

    rows: dict[Hashable, dict[str, Any]] = field(default_factory=dict)
    pending: set[Hashable] = field(default_factory=set)

    def write_pending(self, conn: Connection, table: Table) -> None:
        keys = list(self.pending)
        if not keys:
            return
        delete_keys(conn, table, keys)
        rows = [self.rows[k] for k in keys]
        if conn.dialect.name == "postgresql":
            copy_rows(conn, table, rows)
        else:
            conn.execute(table.insert(), rows)
        self.pending.clear()


def delete_keys(conn: Connection, table: Table, keys: Sequence[Hashable]) -> None:
    cols = list(table.primary_key.columns)
    for start in range(0, len(keys), IN_CHUNK):
        chunk = keys[start : start + IN_CHUNK]
        where = cols[0].in_(chunk) if len(cols) == 1 else tuple_(*cols).in_(chunk)
        conn.execute(table.delete().where(where))


class Projection(ABC):
    """One read model. Subclasses set ``name`` and ``tables`` and implement ``process``."""

    name: ClassVar[str]
    tables: ClassVar[tuple[Table, ...]]
    #: Topics this projection reads; other events only advance its position (not decoded).
    topics: ClassVar[frozenset[str] | None] = None

    @abstractmethod
    def process(self, batch: Batch) -> None:
        """Apply the batch's events to the read model through ``batch.conn``."""

    def wants(self, topic: str) -> bool:
        return self.topics is None or topic in self.topics


Handler = Callable[[Any, Any], None]


class Dispatching(Projection):
    """A projection whose ``process_event`` dispatches on the event class.

    ``handlers`` maps event classes to methods taking (event, position, state), position being
    the event's notification id; ``begin`` loads what the batch needs in bulk and returns the
    state; ``end`` writes it back in bulk.
    """

    handlers: ClassVar[Mapping[type, str]] = {}

    def process(self, batch: Batch) -> None:
        state = self.begin(batch)
        for event, position in zip(batch.events, batch.positions, strict=True):
            self.process_event(event, position, state)
        self.end(batch, state)

    def process_event(self, event: Any, position: int, state: Any) -> None:
        method = self.handlers.get(type(event))
        if method is not None:
            getattr(self, method)(event, position, state)

    @abstractmethod
    def begin(self, batch: Batch) -> Any: ...

    @abstractmethod
    def end(self, batch: Batch, state: Any) -> None: ...


@dataclass
class RowSet:
    """Rows of one table keyed by its primary key, loaded in bulk and written back in bulk.

    ``load`` reads every wanted row with a few ``IN`` queries; handlers read and change rows
    as plain dicts; ``flush`` writes changed rows with one executemany UPDATE and new rows with
    one multi-row INSERT.
    """

    conn: Connection
    table: Table
    cache: TableCache | None = None
    rows: dict[Hashable, dict[str, Any]] = field(default_factory=dict)
    new: set[Hashable] = field(default_factory=set)
    dirty: set[Hashable] = field(default_factory=set)

    @property
    def key_columns(self) -> list[Any]:
        return list(self.table.primary_key.columns)

    def _key(self, row: Mapping[Any, Any]) -> Hashable:
        cols = self.key_columns
        if len(cols) == 1:
            return row[cols[0].name]  # type: ignore[no-any-return]
        return tuple(row[c.name] for c in cols)

    def load(self, keys: Iterable[Hashable]) -> None:
        wanted = [k for k in set(keys) if k not in self.rows]
        if self.cache is not None:
            cached = self.cache.rows
            for k in wanted:
                if k in cached:
                    self.rows[k] = cached[k]
            wanted = [k for k in wanted if k not in cached]
        cols = self.key_columns
        for start in range(0, len(wanted), IN_CHUNK):
            chunk = wanted[start : start + IN_CHUNK]
            where = cols[0].in_(chunk) if len(cols) == 1 else tuple_(*cols).in_(chunk)
            for row in self.conn.execute(select(self.table).where(where)).mappings():
                key = self._key(row)
                self.rows[key] = dict(row)
                if self.cache is not None:
                    self.cache.rows[key] = self.rows[key]

    def get(self, key: Hashable) -> dict[str, Any] | None:
        return self.rows.get(key)

    def add(self, row: dict[str, Any]) -> dict[str, Any]:
        key = self._key(row)
        self.rows[key] = row
        self.new.add(key)
        if self.cache is not None:
            self.cache.rows[key] = row
        return row

    def changed(self, key: Hashable) -> None:
        if key not in self.new:
            self.dirty.add(key)

    def flush(self) -> None:
        if self.cache is not None:  # a rebuild: written once, later (see TableCache)
            self.cache.pending |= self.new | self.dirty
        elif self.conn.dialect.name == "postgresql":
            self._replace_by_copy()
        else:
            self._write_by_statements()
        self.new.clear()
        self.dirty.clear()

    def _replace_by_copy(self) -> None:
        # One DELETE per 500 changed keys and one COPY for every changed or new row: far
        # cheaper on PostgreSQL than an UPDATE statement (and a round trip) per row.
        dirty = list(self.dirty)
        delete_keys(self.conn, self.table, dirty)
        copy_rows(self.conn, self.table, [self.rows[k] for k in (*dirty, *self.new)])

    def _write_by_statements(self) -> None:
        if self.new:
            self.conn.execute(self.table.insert(), [self.rows[k] for k in self.new])
        if self.dirty:
            cols = self.key_columns
            values: dict[str, Any] = {
                c.name: bindparam(f"v_{c.name}") for c in self.table.columns if not c.primary_key
            }
            stmt = (
                self.table.update()
                .where(and_(*(c == bindparam(f"k_{c.name}") for c in cols)))
                .values(values)
            )
            params = []
            for key in self.dirty:
                row = self.rows[key]
                p = {f"v_{c.name}": row[c.name] for c in self.table.columns if not c.primary_key}
                p.update({f"k_{c.name}": row[c.name] for c in cols})
                params.append(p)
            self.conn.execute(stmt, params)


def append_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert history rows (timelines, journal lines, transitions) in bulk."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        copy_rows(conn, table, rows)
    else:
        conn.execute(table.insert(), list(rows))


@dataclass
class Report:
    """What a report command prints: rows from read-model tables (never the event store), and
    the projections they come from, whose freshness is printed beside them."""

    title: str
    columns: list[str]
    rows: list[dict[str, Any]]
    sources: tuple[str, ...]
    totals: dict[str, Any] = field(default_factory=dict)
