"""Complaint history read models.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Mirrors projections/complaints.py (rebuilds create shadow copies from that metadata).
    op.create_table(
        "complaints",
        sa.Column("complaint_id", sa.String(36), primary_key=True),
        sa.Column("loan_id", sa.String(36), nullable=False),
        sa.Column("borrower_id", sa.String(64), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("filed_on", sa.Date(), nullable=False),
        sa.Column("acknowledged_on", sa.Date(), nullable=True),
        sa.Column("resolved_on", sa.Date(), nullable=True),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        sa.Column("reopen_count", sa.Integer(), nullable=False),
        sa.Column("days_to_acknowledge", sa.Integer(), nullable=True),
        sa.Column("days_to_resolve", sa.Integer(), nullable=True),
        sa.Column("ack_due_on", sa.Date(), nullable=False),
        sa.Column("resolve_due_on", sa.Date(), nullable=False),
        sa.Column("ack_sla_breached", sa.Boolean(), nullable=False),
        sa.Column("resolve_sla_breached", sa.Boolean(), nullable=False),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.Column("last_event", sa.String(16), nullable=False),
        sa.Column("last_event_on", sa.Date(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
    )
    op.create_index("complaints_loan_idx", "complaints", ["loan_id"])
    op.create_index("complaints_borrower_idx", "complaints", ["borrower_id"])
    op.create_index("complaints_status_idx", "complaints", ["status"])
    op.create_table(
        "complaint_events",
        sa.Column("complaint_id", sa.String(36), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("loan_id", sa.String(36), nullable=False),
        sa.Column("borrower_id", sa.String(64), nullable=False),
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
    )
    op.create_index("complaint_events_loan_idx", "complaint_events", ["loan_id", "position"])
    op.create_index(
        "complaint_events_borrower_idx", "complaint_events", ["borrower_id", "position"]
    )


def downgrade() -> None:
    op.drop_table("complaint_events")
    op.drop_table("complaints")
