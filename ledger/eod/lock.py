"""One end of day at a time, across processes and hosts: ``EodLock``.

PostgreSQL advisory locks (released by the server when a process dies), or on SQLite a lock
row kept alive by a heartbeat and taken over from a dead or silent owner. The lock is a
database mechanism through and through, so its few statements stay beside it here.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import threading
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlalchemy.exc import OperationalError

from domain.errors import StateConflict
from ledger.eod.partition import WHOLE_BOOK, Partition
from ledger.persistence.tables import eod_lock


class EndOfDayRunning(StateConflict):
    """Another end of day holds the lock."""


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def _advisory_key(name: str) -> int:
    return int.from_bytes(
        hashlib.sha256(f"loan-ledger:{name}".encode()).digest()[:8], "big", signed=True
    )


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

    def __init__(
        self, engine: Engine, partition: Partition = WHOLE_BOOK, *, ttl: float = 60
    ) -> None:
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
                    field="through",
                    rule="one_end_of_day_at_a_time",
                )
            time.sleep(self.POLL)

    def release(self) -> None:
        if self.postgres:
            if self._conn is not None:
                for fn, key in reversed(self._held):
                    unlock = (
                        "pg_advisory_unlock_shared"
                        if fn.endswith("shared")
                        else ("pg_advisory_unlock")
                    )
                    self._conn.execute(text(f"SELECT {unlock}(:k)"), {"k": key})
                self._conn.close()
            self._conn, self._held = None, []
            return
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
        with self.engine.begin() as conn:
            conn.execute(
                delete(eod_lock).where(eod_lock.c.name == "eod", eod_lock.c.owner == self.owner)
            )

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
        wanted = (
            [("pg_try_advisory_lock", _advisory_key("eod"))]
            if self.partition.whole
            else [
                ("pg_try_advisory_lock_shared", _advisory_key("eod")),
                ("pg_try_advisory_lock", _advisory_key(f"eod:{self.partition.label}")),
            ]
        )
        for fn, key in wanted:
            if not self._conn.execute(text(f"SELECT {fn}(:k)"), {"k": key}).scalar():
                self.release()
                return False
            self._held.append((fn, key))
        return True

    # -- SQLite
    def _try_row(self) -> bool:
        now = _utcnow()
        row = {
            "name": "eod",
            "owner": self.owner,
            "acquired_at": now,
            "expires_at": now + timedelta(seconds=self.ttl),
        }
        try:
            with self.engine.begin() as conn:
                held = conn.execute(
                    select(eod_lock.c.owner, eod_lock.c.expires_at).where(eod_lock.c.name == "eod")
                ).first()
                if held is not None and not _stale(held.owner, held.expires_at, now):
                    return False
                if held is not None:  # take over from a dead or silent owner
                    conn.execute(
                        delete(eod_lock).where(
                            eod_lock.c.name == "eod", eod_lock.c.owner == held.owner
                        )
                    )
                conn.execute(insert(eod_lock).values(**row))
        except (SAIntegrityError, OperationalError):
            return False  # another process won the race (or holds the write lock)
        self._stop.clear()
        self._heartbeat = threading.Thread(
            target=self._beat, name="eod-lock-heartbeat", daemon=True
        )
        self._heartbeat.start()
        return True

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                with self.engine.begin() as conn:
                    conn.execute(
                        update(eod_lock)
                        .where(eod_lock.c.name == "eod", eod_lock.c.owner == self.owner)
                        .values(expires_at=_utcnow() + timedelta(seconds=self.ttl))
                    )
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
