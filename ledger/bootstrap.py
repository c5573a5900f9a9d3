"""Composition root: the one place that builds the ledger from settings.

``build_ledger`` makes every constructor call — the application, the projection runner and its
projections — and hands back one ``ledger.service.Ledger``. Faces, the scheduler's host and the
tests all build it here, so the wiring the users run is the wiring the tests run.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from ledger.app.application import LoanLedger
from ledger.persistence import migrations
from ledger.service import Ledger
from ledger.settings import Settings, load_settings
from projections.base import Projection
from projections.runner import ProjectionRunner


def build_ledger(settings: Settings | None = None, *, upgrade: bool = False) -> Ledger:
    """The ledger on ``settings`` (default: the environment's). ``upgrade`` migrates the
    database first (creating it); otherwise it must exist and be migrated already."""
    settings = settings or load_settings()
    if upgrade:
        migrations.upgrade(settings.database_url)
    else:
        migrations.check_database_exists(settings.database_url)
    app = LoanLedger(settings)
    migrations.check_migrated(app.engine)
    return Ledger(app, partial(build_runner, app, settings))


def build_runner(app: LoanLedger, settings: Settings,
                 projections: Sequence[Projection] | None = None,
                 **options: Any) -> ProjectionRunner:
    """The projection runner over ``app``'s event store (every projection by default)."""
    return ProjectionRunner(app, projections, **options)


def upgrade_database(settings: Settings) -> str | None:
    """Create or migrate every table (event store and read models); the revision reached."""
    migrations.upgrade(settings.database_url)
    return migrations.current(settings.database_url)


def database_revision(settings: Settings) -> str | None:
    """The schema revision of the configured database (None: empty). Never creates one."""
    migrations.check_database_exists(settings.database_url)
    return migrations.current(settings.database_url)
