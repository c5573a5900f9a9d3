"""Composition root: the one place that builds the application from settings.

Tests and entry points inject what they need here (a database URL, product settings).
"""

from __future__ import annotations

from sqlalchemy import inspect

from domain.errors import LedgerError
from ledger import migrations
from ledger.application import LoanLedger
from ledger.settings import Settings


class SchemaNotReady(LedgerError):
    kind = "conflict"


def build_app(settings: Settings | None = None, *, upgrade: bool = False) -> LoanLedger:
    settings = settings or Settings()
    if upgrade:
        migrations.upgrade(settings.database_url)
    app = LoanLedger(settings)
    if not inspect(app.engine).has_table("command_log"):
        raise SchemaNotReady(
            f"the database at {app.engine.url.render_as_string(hide_password=True)} has no"
            " ledger tables: run `ledger db upgrade` first", field="database_url",
            rule="migrated")
    return app
