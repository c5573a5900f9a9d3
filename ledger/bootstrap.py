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


def build_runner(
    app: LoanLedger,
    settings: Settings,
    projections: Sequence[Projection] | None = None,
    **options: Any,
) -> ProjectionRunner:
    """The projection runner over ``app``'s event store (every projection by default): the
    engine, the mapper that decodes, the log reader, the projections with the settings
    values they need, the crash tests' fault points and the bulk paths' GC hook."""
    from ledger.faults import crash_point
    from ledger.memory import collect_between_batches
    from ledger.persistence.log import EventLog
    from projections.registry import all_projections

    if projections is None:
        projections = all_projections(
            ack_sla_days=settings.complaint_ack_sla_business_days,
            resolve_sla_days=settings.complaint_resolve_sla_days,
        )
    return ProjectionRunner(
        app.engine,
        app.mapper,
        EventLog(app.engine),
        projections,
        fault=crash_point,
        collect_between_batches=collect_between_batches,
        **options,
    )


def upgrade_database(settings: Settings) -> str | None:
    """Create or migrate every table (event store and read models); the revision reached."""
    migrations.upgrade(settings.database_url)
    return migrations.current(settings.database_url)


def database_revision(settings: Settings) -> str | None:
    """The schema revision of the configured database (None: empty). Never creates one."""
    migrations.check_database_exists(settings.database_url)
    return migrations.current(settings.database_url)
