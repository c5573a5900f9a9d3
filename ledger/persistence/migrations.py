"""Run the alembic migrations programmatically (``ledger db upgrade``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, inspect
from sqlalchemy.engine import make_url

from domain.errors import LedgerError

# The migrations live at the top of the checkout (``alembic/``), beside the ledger package.
SCRIPT_LOCATION = Path(__file__).resolve().parents[2] / "alembic"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def current(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


class SchemaNotReady(LedgerError):
    """The database is missing, or has no ledger tables yet (`ledger db upgrade` makes them)."""

    kind = "conflict"


def sqlite_file(database_url: str) -> Path | None:
    """The file of a file-backed SQLite URL (None for PostgreSQL or an in-memory database)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def check_database_exists(database_url: str) -> None:
    """Refuse to open a SQLite file that is not there: connecting would create an empty
    one, so a mistyped path or a read command run in the wrong directory would leave a
    stray ``ledger.db`` behind."""
    path = sqlite_file(database_url)
    if path is not None and not path.exists():
        raise SchemaNotReady(
            f"there is no ledger database at {path}: run `ledger db upgrade`"
            " first to create it (or set LEDGER_DATABASE_URL)",
            field="database_url",
            rule="migrated",
        )


def check_migrated(engine: Engine) -> None:
    """The ledger's tables are there (the schema was migrated at least once)."""
    if not inspect(engine).has_table("command_log"):
        raise SchemaNotReady(
            f"the database at {engine.url.render_as_string(hide_password=True)} has no"
            " ledger tables: run `ledger db upgrade` first",
            field="database_url",
            rule="migrated",
        )
