"""Projection failures: the event a projection cannot apply, and why.

Three nullable columns on ``projection_tracking``, written in their own transaction when a
projection stops at an event it cannot apply (``projections.runner.ProjectionFailed``) and
cleared by the batch that next advances the projection past that event:

* ``error``: the one-line failure (projection, position, aggregate, topic, version, reason);
* ``error_position``: the notification id of that event;
* ``failed_at``: when the failure was last met (retries refresh it).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("projection_tracking", sa.Column("error", sa.Text(), nullable=True))
    op.add_column(
        "projection_tracking", sa.Column("error_position", sa.BigInteger(), nullable=True)
    )
    op.add_column(
        "projection_tracking", sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    # Batch mode: SQLite drops columns by copying the table.
    with op.batch_alter_table("projection_tracking") as batch:
        batch.drop_column("failed_at")
        batch.drop_column("error_position")
        batch.drop_column("error")
