"""Double-entry journal read model.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


AMOUNT = sa.Numeric(20, 4)
LOAN_COLUMNS = (
    "principal_not_due",
    "principal_due",
    "accrued_interest",
    "interest_receivable",
    "penalty_receivable",
    "fees_receivable",
    "overpayments",
)


def upgrade() -> None:
    op.create_table(
        "journal_entries",
        sa.Column("position", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("line", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("loan_id", sa.String(36), nullable=False),
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("event_type", sa.String(32), nullable=False),
        sa.Column("account", sa.String(8), nullable=False),
        sa.Column("debit", AMOUNT, nullable=False),
        sa.Column("credit", AMOUNT, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
    )
    op.create_index("journal_entries_loan_idx", "journal_entries", ["loan_id", "position"])
    op.create_index("journal_entries_date_idx", "journal_entries", ["business_date"])
    op.create_table(
        "account_balances",
        sa.Column("account", sa.String(8), primary_key=True),
        sa.Column("currency", sa.String(3), primary_key=True),
        sa.Column("debit_total", AMOUNT, nullable=False),
        sa.Column("credit_total", AMOUNT, nullable=False),
        sa.Column("balance", AMOUNT, nullable=False),
    )
    op.create_table(
        "journal_loans",
        sa.Column("loan_id", sa.String(36), primary_key=True),
        sa.Column("currency", sa.String(3), nullable=False),
        *(sa.Column(name, AMOUNT, nullable=False) for name in LOAN_COLUMNS),
    )


def downgrade() -> None:
    op.drop_table("journal_loans")
    op.drop_table("account_balances")
    op.drop_index("journal_entries_date_idx", table_name="journal_entries")
    op.drop_index("journal_entries_loan_idx", table_name="journal_entries")
    op.drop_table("journal_entries")
