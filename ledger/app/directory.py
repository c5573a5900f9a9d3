"""The loan directory: every loan's lifecycle status, in loan-id order.

End of day picks active loans from it without scanning the event log; ``ledger loan list``
reads it. It holds no balances (those live in projections) and is written in the same
transaction as the events that change a loan's status.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate
from sqlalchemy import CursorResult, Engine, select
from sqlalchemy.orm import Session

from domain.loan import Loan
from ledger.persistence.tables import loan_directory

#: The events after which a loan's directory row changes.
STATUS_EVENTS = (
    Loan.Applied,
    Loan.Approved,
    Loan.Rejected,
    Loan.Withdrawn,
    Loan.Disbursed,
    Loan.WrittenOff,
    Loan.Closed,
)


def index_loans(
    session: Session, aggregates: Sequence[Aggregate], recordings: Sequence[Any]
) -> None:
    """Upsert the directory row of each loan whose lifecycle status just changed."""
    changed = {
        r.domain_event.originator_id
        for r in recordings
        if isinstance(r.domain_event, STATUS_EVENTS)
    }
    now = datetime.now(UTC)
    for loan in aggregates:
        if not isinstance(loan, Loan) or loan.id not in changed:
            continue
        values = {
            "borrower_id": loan.borrower_id,
            "status": str(loan.status),
            "currency": loan.currency,
            "principal": loan.terms.principal,
            "applied_on": loan.applied_on,
            "updated_at": now,
        }
        updated: CursorResult[Any] = session.execute(  # type: ignore[assignment]
            loan_directory.update().where(loan_directory.c.loan_id == str(loan.id)).values(**values)
        )
        if updated.rowcount == 0:
            session.execute(loan_directory.insert().values(loan_id=str(loan.id), **values))


def loan_ids(
    engine: Engine, status: str | None = None, *, after: str = "", limit: int | None = None
) -> list[UUID]:
    """Loan ids in loan-id order, optionally of one status, after ``after``."""
    query = select(loan_directory.c.loan_id).where(loan_directory.c.loan_id > after)
    if status is not None:
        query = query.where(loan_directory.c.status == status)
    query = query.order_by(loan_directory.c.loan_id)
    if limit is not None:
        query = query.limit(limit)
    with Session(engine) as session:
        return [UUID(x) for x in session.execute(query).scalars()]
