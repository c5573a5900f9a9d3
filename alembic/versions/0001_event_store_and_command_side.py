"""Event store, snapshots, command log, loan directory and ledger clock.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy_utils.types.uuid import UUIDType

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "ledger_events",
        sa.Column("id", BIGINT, primary_key=True, autoincrement=True),
        sa.Column("originator_id", UUIDType(), nullable=False),
        sa.Column("originator_version", BIGINT, nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=False),
    )
    op.create_index(
        "ledger_events_aggregate_idx",
        "ledger_events",
        ["originator_id", "originator_version"],
        unique=True,
    )
    op.create_table(
        "ledger_snapshots",
        sa.Column("originator_id", UUIDType(), primary_key=True),
        sa.Column("originator_version", BIGINT, primary_key=True),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "command_log",
        sa.Column("idempotency_key", sa.String(200), primary_key=True),
        sa.Column("command", sa.String(64), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("aggregate_id", sa.String(36), nullable=True),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "loan_directory",
        sa.Column("loan_id", sa.String(36), primary_key=True),
        sa.Column("borrower_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("principal", sa.Numeric(20, 4), nullable=False),
        sa.Column("applied_on", sa.Date(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("loan_directory_status_idx", "loan_directory", ["status", "loan_id"])
    op.create_index("loan_directory_borrower_idx", "loan_directory", ["borrower_id"])
    op.create_table(
        "ledger_clock",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("closed_through", sa.Date(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ledger_clock")
    op.drop_index("loan_directory_borrower_idx", "loan_directory")
    op.drop_index("loan_directory_status_idx", "loan_directory")
    op.drop_table("loan_directory")
    op.drop_table("command_log")
    op.drop_table("ledger_snapshots")
    op.drop_index("ledger_events_aggregate_idx", "ledger_events")
    op.drop_table("ledger_events")
