"""Shared fixtures: every integration test runs on SQLite and on PostgreSQL.

* ``database_url`` is parametrized over ``sqlite`` (a fresh file per test) and ``postgresql``
  (one uniquely named database per test session, migrated once, its tables emptied before each
  test). PostgreSQL tests skip with a visible reason when the server is unreachable, unless
  ``LEDGER_REQUIRE_POSTGRES=1`` (CI), where they fail instead.
* ``make_database_url`` hands out further fresh, migrated databases of the same kind (for
  comparisons such as "crashed and rerun" against "uninterrupted").
* ``make_ledger`` / ``ledger_app`` build LoanLedger instances and dispose of their engines.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from sqlalchemy import create_engine, func, inspect, select, text
from sqlalchemy.engine import Engine, make_url

from ledger.app.application import LoanLedger
from ledger.app.commands import parse_command
from ledger.persistence import migrations
from ledger.persistence.tables import command_log, events
from ledger.settings import Settings

DEFAULT_POSTGRES_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


def postgres_base_url() -> str:
    return os.environ.get("LEDGER_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def postgres_required() -> bool:
    return os.environ.get("LEDGER_REQUIRE_POSTGRES", "") not in ("", "0", "false", "no")


class PostgresServer:
    """Creates uniquely named databases on one server and drops them all at the end."""

    def __init__(self, base_url: str) -> None:
        self.base_url = make_url(base_url)
        self.prefix = f"ledger_test_{secrets.token_hex(4)}"
        self.created: list[str] = []
        self.admin = self._connect_admin()

    def _connect_admin(self) -> Engine:
        # CREATE/DROP DATABASE cannot run in a transaction; try the server's `postgres`
        # maintenance database first, then the configured one.
        last: Exception | None = None
        for database in ("postgres", self.base_url.database):
            engine = create_engine(self.base_url.set(database=database),
                                   isolation_level="AUTOCOMMIT", pool_pre_ping=True,
                                   connect_args={"connect_timeout": 5})
            try:
                with engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
                return engine
            except Exception as exc:
                engine.dispose()
                last = exc
        assert last is not None
        raise last

    def create_database(self) -> str:
        name = f"{self.prefix}_{len(self.created)}"
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        url = self.base_url.set(database=name).render_as_string(hide_password=False)
        migrations.upgrade(url)
        return url

    def drop_all(self) -> None:
        with self.admin.connect() as conn:
            for name in reversed(self.created):
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.admin.dispose()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    base = postgres_base_url()
    try:
        server = PostgresServer(base)
    except Exception as exc:
        reason = f"PostgreSQL not reachable at {make_url(base)!r}: {exc}".splitlines()[0]
        if postgres_required():
            pytest.fail(f"{reason} (LEDGER_REQUIRE_POSTGRES=1, so this is an error)",
                        pytrace=False)
        pytest.skip(reason)
    try:
        yield server
    finally:
        server.drop_all()


class DatabasePool:
    """Migrated PostgreSQL databases reused across tests: emptied, never re-created."""

    def __init__(self, server: PostgresServer) -> None:
        self.server = server
        self.urls: list[str] = []
        self.engines: dict[str, Engine] = {}

    def get(self, index: int) -> str:
        while len(self.urls) <= index:
            url = self.server.create_database()
            self.urls.append(url)
            self.engines[url] = create_engine(url)
        url = self.urls[index]
        truncate_all(self.engines[url])
        return url

    def dispose(self) -> None:
        for engine in self.engines.values():
            engine.dispose()


def truncate_all(engine: Engine) -> None:
    tables = [t for t in inspect(engine).get_table_names() if t != "alembic_version"]
    if tables:
        with engine.begin() as conn:
            names = ", ".join(f'"{t}"' for t in tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY"))


@pytest.fixture(scope="session")
def postgres_pool(postgres_server: PostgresServer) -> Iterator[DatabasePool]:
    pool = DatabasePool(postgres_server)
    yield pool
    pool.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_database_url(backend: str, request: pytest.FixtureRequest,
                      tmp_path: Path) -> Callable[[], str]:
    """Each call returns another fresh, migrated, empty database of the test's backend."""
    count = 0

    def make() -> str:
        nonlocal count
        index, count = count, count + 1
        if backend == "sqlite":
            url = f"sqlite:///{tmp_path / f'ledger_{index}.db'}"
            migrations.upgrade(url)
            return url
        pool: DatabasePool = request.getfixturevalue("postgres_pool")
        return pool.get(index)

    return make


@pytest.fixture
def database_url(make_database_url: Callable[[], str]) -> str:
    return make_database_url()


@pytest.fixture
def make_ledger() -> Iterator[Callable[..., LoanLedger]]:
    """Build LoanLedger instances (``make_ledger(url, **settings)``); closed at teardown."""
    built: list[LoanLedger] = []

    def make(url: str, **settings: Any) -> LoanLedger:
        app = LoanLedger(Settings(database_url=url, **settings))
        built.append(app)
        return app

    yield make
    for app in built:
        app.close()
        app.engine.dispose()


@pytest.fixture
def ledger_app(database_url: str, make_ledger: Callable[..., LoanLedger]) -> LoanLedger:
    return make_ledger(database_url)


def count_rows(app: LoanLedger, table: Any = events) -> int:
    """Rows in ``table`` (default: ledger_events) of the app's database."""
    with app.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


@pytest.fixture
def count_events() -> Callable[[LoanLedger], int]:
    """``count_events(app)``: rows in ledger_events."""
    return lambda app: count_rows(app, events)


@pytest.fixture
def count_commands() -> Callable[[LoanLedger], int]:
    """``count_commands(app)``: rows in command_log."""
    return lambda app: count_rows(app, command_log)


def submit(app: LoanLedger, type_: str, **fields: Any) -> dict[str, Any]:
    """Send one command as an integration would (a JSON-like dict, amounts as strings)."""
    fields.setdefault("idempotency_key", f"{type_}-{uuid4()}")
    for name, value in fields.items():
        if isinstance(value, date | UUID):
            fields[name] = str(value)
    return app.execute(parse_command({"type": type_, **fields}))


def open_loan(app: LoanLedger, *, borrower_id: str = "B1", principal: str = "100000",
              currency: str = "CNY", annual_rate: str = "0.12", term: int = 12,
              day_count: str = "30/360", method: str = "annuity",
              applied_on: date = date(2026, 1, 5), approved_on: date = date(2026, 1, 6),
              disbursed_on: date = date(2026, 1, 10), first_due: date = date(2026, 2, 10),
              **apply_fields: Any) -> UUID:
    """Given an active loan: applied, approved and disbursed."""
    applied = submit(app, "apply_for_loan", borrower_id=borrower_id, principal=principal,
                     currency=currency, annual_rate=annual_rate, term=term,
                     day_count=day_count, method=method, business_date=applied_on,
                     **apply_fields)
    loan_id = UUID(applied["aggregate_id"])
    submit(app, "approve_loan", loan_id=loan_id, business_date=approved_on)
    submit(app, "disburse_loan", loan_id=loan_id, business_date=disbursed_on,
           first_due=first_due)
    return loan_id


@pytest.fixture(name="submit")
def submit_fixture() -> Callable[..., dict[str, Any]]:
    """``submit(app, "receive_repayment", loan_id=..., amount="10", ...)``."""
    return submit


@pytest.fixture(name="open_loan")
def open_loan_fixture() -> Callable[..., UUID]:
    """``open_loan(app, **overrides)``: apply, approve and disburse; returns the loan id."""
    return open_loan
