"""The record of end-of-day runs (``eod_runs``, for operators) and the business clock they
advance (``ledger_clock.closed_through``; ``ledger.app.clock`` reads it).

Partitions of one date finish on different hosts; the transaction that records one as done
first serializes itself against the others (``serialize_finishing``), so the last of them sees
every other's row and advances the clock in that same transaction.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.orm import Session

from ledger.persistence.tables import eod_runs, ledger_clock


def record_start(
    session: Session, run_id: str, *, through: date, partition: str, owner: str
) -> None:
    session.execute(
        insert(eod_runs).values(
            run_id=run_id,
            through=through,
            partition=partition,
            owner=owner,
            status="running",
            loans=0,
            events=0,
            started_at=datetime.now(UTC),
        )
    )


def serialize_finishing(session: Session) -> None:
    """PostgreSQL: hold finishing runs one at a time until this transaction ends (SQLite's
    single writer already does)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("LOCK TABLE eod_runs IN SHARE ROW EXCLUSIVE MODE"))


def record_finish(session: Session, run_id: str, status: str, loans: int, posted: int) -> None:
    session.execute(
        update(eod_runs)
        .where(eod_runs.c.run_id == run_id)
        .values(status=status, loans=loans, events=posted, finished_at=datetime.now(UTC))
    )


def partitions_done(session: Session, through: date, labels: list[str]) -> int:
    """How many of the partitions ``labels`` have a run done through ``through`` or later."""
    return int(
        session.execute(
            select(func.count(func.distinct(eod_runs.c.partition))).where(
                eod_runs.c.status == "done",
                eod_runs.c.through >= through,
                eod_runs.c.partition.in_(labels),
            )
        ).scalar_one()
    )


def advance_clock(session: Session, through: date) -> None:
    """Move the clock to ``through`` (never back)."""
    current = session.execute(select(ledger_clock.c.closed_through)).scalar()
    if current is None:
        session.execute(insert(ledger_clock).values(id=1, closed_through=through))
    elif through > current:
        session.execute(update(ledger_clock).values(closed_through=through))
