"""Composition root: the one place that builds the application from settings.

Tests and entry points inject what they need here (a database URL, product settings).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from domain.errors import LedgerError
from ledger.app.application import LoanLedger
from ledger.persistence import migrations
from ledger.settings import Settings, load_settings


class SchemaNotReady(LedgerError):
    kind = "conflict"


def sqlite_file(database_url: str) -> Path | None:
    """The file of a file-backed SQLite URL (None for PostgreSQL or an in-memory database)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def check_database_exists(settings: Settings) -> None:
    """Refuse to open a SQLite file that is not there: connecting would create an empty
    one, so a mistyped path or a read command run in the wrong directory would leave a
    stray ``ledger.db`` behind."""
    path = sqlite_file(settings.database_url)
    if path is not None and not path.exists():
        raise SchemaNotReady(f"there is no ledger database at {path}: run `ledger db upgrade`"
                             " first to create it (or set LEDGER_DATABASE_URL)",
                             field="database_url", rule="migrated")


def build_app(settings: Settings | None = None, *, upgrade: bool = False) -> LoanLedger:
    settings = settings or load_settings()
    if upgrade:
        migrations.upgrade(settings.database_url)
    else:
        check_database_exists(settings)
    app = LoanLedger(settings)
    if not inspect(app.engine).has_table("command_log"):
        raise SchemaNotReady(
            f"the database at {app.engine.url.render_as_string(hide_password=True)} has no"
            " ledger tables: run `ledger db upgrade` first", field="database_url",
            rule="migrated")
    return app
