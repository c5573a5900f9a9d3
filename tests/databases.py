"""Scratch PostgreSQL databases for the tests, in one place (both conftests use it).

``PostgresServer`` connects to the server given by ``LEDGER_TEST_POSTGRES_URL`` (default
``postgresql+psycopg2://postgres@127.0.0.1:5432/test``) with an AUTOCOMMIT connection — CREATE
and DROP DATABASE cannot run in a transaction — on its ``postgres`` maintenance database if
there is one, else the configured database; it creates uniquely named databases and drops them
all at the end. ``reach_postgres`` skips with the reason shown when the server is unreachable,
unless ``LEDGER_REQUIRE_POSTGRES=1`` (CI), where it fails instead.
"""

from __future__ import annotations

import os
import secrets

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Engine, make_url

from ledger.persistence import migrations

DEFAULT_POSTGRES_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


def postgres_base_url() -> str:
    return os.environ.get("LEDGER_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def postgres_required() -> bool:
    return os.environ.get("LEDGER_REQUIRE_POSTGRES", "") not in ("", "0", "false", "no")


class PostgresServer:
    """Creates uniquely named databases on one server and drops them all at the end."""

    def __init__(self, base_url: str, prefix: str = "ledger_test") -> None:
        self.base_url = make_url(base_url)
        self.prefix = f"{prefix}_{secrets.token_hex(4)}"
        self.created: list[str] = []
        self.admin = self._connect_admin()

    def _connect_admin(self) -> Engine:
        last: Exception | None = None
        for database in ("postgres", self.base_url.database):
            engine = create_engine(
                self.base_url.set(database=database),
                isolation_level="AUTOCOMMIT",
                pool_pre_ping=True,
                connect_args={"connect_timeout": 5},
            )
            try:
                with engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
                return engine
            except Exception as exc:
                engine.dispose()
                last = exc
        assert last is not None
        raise last

    def create_database(self, *, migrated: bool = True) -> str:
        """A new empty database's URL (migrated to the head revision unless told not to)."""
        name = f"{self.prefix}_{len(self.created)}"
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        url = self.base_url.set(database=name).render_as_string(hide_password=False)
        if migrated:
            migrations.upgrade(url)
        return url

    def drop(self, url: str) -> None:
        """Drop one database this server created (connections to it are cut)."""
        name = str(make_url(url).database)
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.created.remove(name)

    def drop_all(self) -> None:
        with self.admin.connect() as conn:
            for name in reversed(self.created):
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.created.clear()

    def close(self) -> None:
        self.drop_all()
        self.admin.dispose()


def reach_postgres(prefix: str = "ledger_test") -> PostgresServer:
    """The test server, or a skip (a failure under LEDGER_REQUIRE_POSTGRES=1) with the reason."""
    base = postgres_base_url()
    try:
        return PostgresServer(base, prefix)
    except Exception as exc:
        reason = f"PostgreSQL not reachable at {make_url(base)!r}: {exc}".splitlines()[0]
        if postgres_required():
            pytest.fail(f"{reason} (LEDGER_REQUIRE_POSTGRES=1, so this is an error)", pytrace=False)
        pytest.skip(reason)


def truncate_all(engine: Engine) -> None:
    """Every table but alembic's emptied, identities restarted (PostgreSQL)."""
    tables = [t for t in inspect(engine).get_table_names() if t != "alembic_version"]
    if tables:
        with engine.begin() as conn:
            names = ", ".join(f'"{t}"' for t in tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY"))
