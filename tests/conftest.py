"""Shared fixtures: every integration test runs on SQLite and on PostgreSQL.

* ``database_url`` is parametrized over ``sqlite`` (a fresh file per test) and ``postgresql``
  (one uniquely named database per test session, migrated once, its tables emptied before each
  test). PostgreSQL tests skip with a visible reason when the server is unreachable, unless
  ``LEDGER_REQUIRE_POSTGRES=1`` (CI), where they fail instead.
* ``make_database_url`` hands out further fresh, migrated databases of the same kind (for
  comparisons such as "crashed and rerun" against "uninterrupted").
* ``make_ledger`` / ``ledger_app`` build ledgers through the composition root
  (``ledger.bootstrap.build_ledger``, a ``ledger.service.Ledger``, as the faces do) and close
  them. The use cases' internals are at ``ledger.app`` for the few tests that need them.
* The PostgreSQL server and its scratch databases: ``tests/databases.py`` (shared with the e2e
  fixtures).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import Engine

from ledger.app.commands import parse_command
from ledger.bootstrap import build_ledger
from ledger.persistence import migrations
from ledger.persistence.tables import command_log, events
from ledger.service import Ledger
from ledger.settings import Settings
from tests.databases import PostgresServer, reach_postgres, truncate_all


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = reach_postgres()
    yield server
    server.close()


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


@pytest.fixture(scope="session")
def postgres_pool(postgres_server: PostgresServer) -> Iterator[DatabasePool]:
    pool = DatabasePool(postgres_server)
    yield pool
    pool.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_database_url(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Callable[[], str]:
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
def make_ledger() -> Iterator[Callable[..., Ledger]]:
    """Build ledgers through the composition root (``make_ledger(url, **settings)``), as the
    faces do; closed at teardown."""
    built: list[Ledger] = []

    def make(url: str, **settings: Any) -> Ledger:
        ledger = build_ledger(Settings(database_url=url, **settings))
        built.append(ledger)
        return ledger

    yield make
    for ledger in built:
        ledger.close()


@pytest.fixture
def ledger_app(database_url: str, make_ledger: Callable[..., Ledger]) -> Ledger:
    return make_ledger(database_url)


def count_rows(app: Ledger, table: Any = events) -> int:
    """Rows in ``table`` (default: ledger_events) of the app's database."""
    with app.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


@pytest.fixture
def count_events() -> Callable[[Ledger], int]:
    """``count_events(app)``: rows in ledger_events."""
    return lambda app: count_rows(app, events)


@pytest.fixture
def count_commands() -> Callable[[Ledger], int]:
    """``count_commands(app)``: rows in command_log."""
    return lambda app: count_rows(app, command_log)


def submit(app: Ledger, type_: str, **fields: Any) -> dict[str, Any]:
    """Send one command as an integration would (a JSON-like dict, amounts as strings)."""
    fields.setdefault("idempotency_key", f"{type_}-{uuid4()}")
    for name, value in fields.items():
        if isinstance(value, date | UUID):
            fields[name] = str(value)
    return app.execute(parse_command({"type": type_, **fields}))


def open_loan(
    app: Ledger,
    *,
    borrower_id: str = "B1",
    principal: str = "100000",
    currency: str = "CNY",
    annual_rate: str = "0.12",
    term: int = 12,
    day_count: str = "30/360",
    method: str = "annuity",
    applied_on: date = date(2026, 1, 5),
    approved_on: date = date(2026, 1, 6),
    disbursed_on: date = date(2026, 1, 10),
    first_due: date = date(2026, 2, 10),
    **apply_fields: Any,
) -> UUID:
    """Given an active loan: applied, approved and disbursed."""
    applied = submit(
        app,
        "apply_for_loan",
        borrower_id=borrower_id,
        principal=principal,
        currency=currency,
        annual_rate=annual_rate,
        term=term,
        day_count=day_count,
        method=method,
        business_date=applied_on,
        **apply_fields,
    )
    loan_id = UUID(applied["aggregate_id"])
    submit(app, "approve_loan", loan_id=loan_id, business_date=approved_on)
    submit(app, "disburse_loan", loan_id=loan_id, business_date=disbursed_on, first_due=first_due)
    return loan_id


@pytest.fixture(name="submit")
def submit_fixture() -> Callable[..., dict[str, Any]]:
    """``submit(app, "receive_repayment", loan_id=..., amount="10", ...)``."""
    return submit


@pytest.fixture(name="open_loan")
def open_loan_fixture() -> Callable[..., UUID]:
    """``open_loan(app, **overrides)``: apply, approve and disburse; returns the loan id."""
    return open_loan
