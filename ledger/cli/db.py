"""``ledger db``: create, migrate and inspect the database schema."""

from __future__ import annotations

import typer

from ledger import bootstrap
from ledger.cli.common import handled, out, safe_url, settings

app = typer.Typer(no_args_is_help=True, help="Create and migrate the database schema.")


@app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate every table (event store and read models) through alembic."""
    with handled():
        revision = bootstrap.upgrade_database(settings())
        out.print(f"database at {safe_url(settings().database_url)} is at revision {revision}")


@app.command("current")
def db_current() -> None:
    """Show the schema revision of the configured database."""
    with handled():
        revision = bootstrap.database_revision(settings())
        out.print(
            f"{safe_url(settings().database_url)}: {revision or 'empty (run ledger db upgrade)'}"
        )
