"""PostgreSQL's COPY for read-model rows: in the batch's transaction, or in the background.

``copy_rows`` writes row dicts through the C ``csv`` writer; ``copy_text`` writes lines a
projection has already formatted in COPY's text format (cheaper for history rows: journal
lines, timelines). ``BackgroundCopy`` runs ``copy_text`` on a second connection and thread
during a rebuild, so the server ingests one batch while Python works on the next. All three
go through the driver's own cursor (``copy_expert``): PostgreSQL only; the callers
(``projections.base``: ``RowSet``, ``TableCache``, ``append_rows``, ``Batch.copy_text``) use
plain statements on SQLite.
"""

from __future__ import annotations

import csv
import io
import queue
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, Table
from sqlalchemy.sql.schema import ScalarElementColumnDefault


def copy_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """``COPY table FROM STDIN`` on the connection's own transaction (PostgreSQL only).

    Rows are formatted by the C ``csv`` writer: strings and dates quoted, numbers bare, and
    NULL as a bare ``\\N`` (so an empty string stays an empty string)."""
    if not rows:
        return
    columns = [c.name for c in table.columns]
    defaults = [
        c.default.arg if isinstance(c.default, ScalarElementColumnDefault) else None
        for c in table.columns
    ]
    pairs = list(zip(columns, defaults, strict=True))
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
    writer.writerows(
        [_NULL if v is None else v for v in (row.get(name, default) for name, default in pairs)]
        for row in rows
    )
    buffer.seek(0)
    names = ", ".join(f'"{c}"' for c in columns)
    _copy(conn, f"COPY \"{table.name}\" ({names}) FROM STDIN WITH (FORMAT csv, NULL '\\N')", buffer)


def copy_text(conn: Connection, table: Table, columns: Sequence[str], lines: Sequence[str]) -> None:
    """``COPY table (columns) FROM STDIN`` of lines already in PostgreSQL's text format
    (tab-separated, newline-terminated, ``\\N`` for NULL), for history rows that a caller
    can format faster than ``copy_rows`` (values must need no escaping: no tab, newline or
    backslash). PostgreSQL only."""
    if lines:
        _copy(conn, _copy_text_sql(table, columns), io.StringIO("".join(lines)))


def _copy_text_sql(table: Table, columns: Sequence[str]) -> str:
    names = ", ".join(f'"{c}"' for c in columns)
    return f'COPY "{table.name}" ({names}) FROM STDIN'


class BackgroundCopy:
    """A rebuild's ``copy_text`` on its own connection and thread (PostgreSQL), so the server
    ingests one batch's history rows while Python works on the next: the journal rebuild
    otherwise waits for COPY a seventh of its time.

    The rows commit in this connection's own transaction when the ``with`` block is left,
    not with each batch's position. That is safe only for a rebuild's shadow tables: nobody
    reads them before the swap, which comes after the block, and an interrupted rebuild
    starts again from scratch. Leaving the block waits for every submitted row and commits
    them (or, on an exception, rolls them back); an error in the thread is raised by the
    next ``submit`` or on leaving.
    """

    _END, _ABORT = object(), object()

    def __init__(self, engine: Engine) -> None:
        # A small queue: the producer waits rather than pile up unwritten batches.
        self._jobs: queue.Queue[Any] = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(engine,), name="rebuild-copy", daemon=True
        )
        self._thread.start()

    def submit(self, table: Table, columns: Sequence[str], lines: Sequence[str]) -> None:
        self._raise_error()
        if lines:
            self._jobs.put((_copy_text_sql(table, columns), "".join(lines)))

    def __enter__(self) -> BackgroundCopy:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: Any) -> None:
        if self._thread.is_alive():
            self._jobs.put(self._END if exc_type is None else self._ABORT)
            self._thread.join()
        if exc_type is None:
            self._raise_error()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise RuntimeError("background COPY of a rebuild failed") from self._error

    def _run(self, engine: Engine) -> None:
        try:
            with engine.begin() as conn:
                while (job := self._jobs.get()) is not self._END:
                    if job is self._ABORT:
                        raise _Aborted
                    sql, text = job
                    _copy(conn, sql, io.StringIO(text))
        except _Aborted:
            pass
        except BaseException as exc:  # raised in the producer's thread instead
            self._error = exc
            while self._jobs.get() not in (self._END, self._ABORT):
                pass  # keep taking jobs so the producer never blocks


class _Aborted(Exception):
    """Leaves the background COPY's transaction by rolling it back."""


def _copy(conn: Connection, sql: str, buffer: io.StringIO) -> None:
    raw = conn.connection.dbapi_connection
    assert raw is not None
    cursor: Any = raw.cursor()  # psycopg2's: copy_expert, and a context manager that closes
    with cursor:
        cursor.copy_expert(sql, buffer, size=COPY_CHUNK)


COPY_CHUNK = 1 << 20  # characters per read from the buffer (psycopg2's default is 8 KiB)


class _Null:
    """Written bare by the csv writer (it counts as a number), read by COPY as NULL."""

    def __float__(self) -> float:
        return 0.0

    def __str__(self) -> str:
        return "\\N"


_NULL = _Null()
