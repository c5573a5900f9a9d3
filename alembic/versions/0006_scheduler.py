"""Scheduler job store and end-of-day lock.

* ``eod_runs``: one row per end-of-day run or partition run (the clock advances once every
  partition of a business date is done).
* ``eod_lock``: the lock row that keeps end of day single on SQLite (PostgreSQL uses advisory
  locks and never writes here).
* ``scheduler_jobs``: APScheduler 3.11's SQLAlchemyJobStore table with exactly the DDL the job
  store would create (``id`` Unicode(191) primary key, ``next_run_time`` Float(25) indexed,
  ``job_state`` LargeBinary), so the store finds it and never creates or alters it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "eod_runs",
        sa.Column("run_id", sa.String(36), primary_key=True),
        sa.Column("through", sa.Date(), nullable=False),
        sa.Column("partition", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("loans", sa.BigInteger(), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("eod_runs_through_idx", "eod_runs", ["through", "partition", "status"])
    op.create_table(
        "eod_lock",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "scheduler_jobs",
        sa.Column("id", sa.Unicode(191), primary_key=True),
        sa.Column("next_run_time", sa.Float(25)),
        sa.Column("job_state", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_scheduler_jobs_next_run_time", "scheduler_jobs", ["next_run_time"])


def downgrade() -> None:
    op.drop_index("ix_scheduler_jobs_next_run_time", "scheduler_jobs")
    op.drop_table("scheduler_jobs")
    op.drop_table("eod_lock")
    op.drop_index("eod_runs_through_idx", "eod_runs")
    op.drop_table("eod_runs")
