"""Loan balances, installments and delinquency read models.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23

The same DDL as ``projections.balances`` and ``projections.delinquency`` declare (rebuilds
recreate the tables from those declarations, so the two must agree).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BALANCE_AMOUNTS = (
    "principal_not_due",
    "principal_overdue",
    "principal_outstanding",
    "interest_accrued",
    "interest_overdue",
    "penalty_outstanding",
    "fees_outstanding",
    "overpayment",
    "disbursed",
    "capitalized",
    "principal_paid",
    "interest_paid",
    "penalty_paid",
    "fees_paid",
    "written_off_principal",
    "recovered",
)


def upgrade() -> None:
    op.create_table(
        "loan_balances",
        sa.Column("loan_id", sa.String(36), primary_key=True),
        sa.Column("borrower_id", sa.String(64), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        *(sa.Column(name, sa.Numeric(20, 4), nullable=False) for name in BALANCE_AMOUNTS),
        sa.Column("last_business_date", sa.Date(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
    )
    op.create_index("loan_balances_status_idx", "loan_balances", ["status", "currency"])
    op.create_index("loan_balances_borrower_idx", "loan_balances", ["borrower_id"])
    op.create_table(
        "balances_summary",
        sa.Column("status", sa.String(16), primary_key=True),
        sa.Column("currency", sa.String(3), primary_key=True),
        sa.Column("loans", sa.BigInteger(), nullable=False),
        *(sa.Column(name, sa.Numeric(20, 4), nullable=False) for name in BALANCE_AMOUNTS),
    )

    op.create_table(
        "loan_delinquency",
        sa.Column("loan_id", sa.String(36), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("principal_outstanding", sa.Numeric(20, 4), nullable=False),
        sa.Column("dpd", sa.Integer(), nullable=False),
        sa.Column("bucket", sa.String(8), nullable=False),
        sa.Column("five_category", sa.String(16), nullable=False),
        sa.Column("ifrs9_stage", sa.Integer(), nullable=False),
        sa.Column("classified_dpd", sa.Integer(), nullable=False),
        sa.Column("oldest_unpaid_due_date", sa.Date(), nullable=True),
        sa.Column("overdue_since", sa.Date(), nullable=True),
        sa.Column("penalty_fees_unpaid", sa.Numeric(20, 4), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=True),
        sa.Column("observation_until", sa.Date(), nullable=True),
        sa.Column("last_transition", sa.BigInteger(), nullable=True),
        sa.Column("roll_state", sa.String(16), nullable=True),
        sa.Column("rolled_through", sa.Date(), nullable=True),
        sa.Column("rolled_state", sa.String(16), nullable=True),
        sa.Column("last_business_date", sa.Date(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
    )
    op.create_index("loan_delinquency_status_idx", "loan_delinquency", ["status", "bucket"])

    op.create_table(
        "loan_installments",
        sa.Column("loan_id", sa.String(36), primary_key=True),
        sa.Column("number", sa.Integer(), primary_key=True),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("principal_unpaid", sa.Numeric(20, 4), nullable=False),
        sa.Column("interest_unpaid", sa.Numeric(20, 4), nullable=False),
    )

    op.create_table(
        "delinquency_transitions",
        sa.Column("loan_id", sa.String(36), primary_key=True),
        sa.Column("position", sa.BigInteger(), primary_key=True),
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("from_bucket", sa.String(8), nullable=True),
        sa.Column("to_bucket", sa.String(8), nullable=False),
        sa.Column("from_category", sa.String(16), nullable=True),
        sa.Column("to_category", sa.String(16), nullable=False),
        sa.Column("from_stage", sa.Integer(), nullable=True),
        sa.Column("to_stage", sa.Integer(), nullable=False),
        sa.Column("dpd", sa.Integer(), nullable=False),
        sa.Column("roll_state", sa.String(16), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=True),
    )
    op.create_index(
        "delinquency_transitions_date_idx", "delinquency_transitions", ["business_date"]
    )

    op.create_table(
        "delinquency_summary",
        sa.Column("currency", sa.String(3), primary_key=True),
        sa.Column("bucket", sa.String(8), primary_key=True),
        sa.Column("five_category", sa.String(16), primary_key=True),
        sa.Column("ifrs9_stage", sa.Integer(), primary_key=True),
        sa.Column("loans", sa.BigInteger(), nullable=False),
        sa.Column("principal_outstanding", sa.Numeric(20, 4), nullable=False),
    )

    op.create_table(
        "delinquency_roll_counts",
        sa.Column("month_end", sa.Date(), primary_key=True),
        sa.Column("from_state", sa.String(16), primary_key=True),
        sa.Column("to_state", sa.String(16), primary_key=True),
        sa.Column("loans", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "delinquency_roll_counts",
        "delinquency_summary",
        "delinquency_transitions",
        "loan_installments",
        "loan_delinquency",
        "balances_summary",
        "loan_balances",
    ):
        op.drop_table(table)
