"""Complaint histories: one row per complaint, and a timeline of every step per loan and borrower.

Service levels (``ack_sla_days``, ``resolve_sla_days``: the composition root passes the settings
``complaint_ack_sla_business_days`` and ``complaint_resolve_sla_days``) count from the filing
date. The ledger has no holiday calendar yet, so business days are calendar days.
Each row stores its due dates, computed with the service levels in force when it was projected; a
breach is recorded when the late step happens. A first resolution without any acknowledgement also
stops the acknowledgement clock (it answers the borrower); an escalation does not. Complaints
still open are judged by the report against the ledger's open business day, which its caller
passes (``business_date``), so stored rows never depend on the wall clock. New service levels
reach old complaints through ``projections rebuild complaints``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, ClassVar
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Date,
    Index,
    Integer,
    String,
    Table,
    Text,
    select,
)

from domain.complaint import Complaint, ComplaintStatus
from domain.errors import ValidationError
from projections.base import Batch, Dispatching, Report, RowSet, append_rows, metadata

complaints = Table(
    "complaints",
    metadata,
    Column("complaint_id", String(36), primary_key=True),
    Column("loan_id", String(36), nullable=False),
    Column("borrower_id", String(64), nullable=False),
    Column("category", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("filed_on", Date(), nullable=False),
    Column("acknowledged_on", Date(), nullable=True),
    Column("resolved_on", Date(), nullable=True),  # the latest resolution; None once reopened
    Column("escalation_level", Integer(), nullable=False),
    Column("reopen_count", Integer(), nullable=False),
    Column("days_to_acknowledge", Integer(), nullable=True),
    Column("days_to_resolve", Integer(), nullable=True),  # filing to the latest resolution
    Column("ack_due_on", Date(), nullable=False),
    Column("resolve_due_on", Date(), nullable=False),
    Column("ack_sla_breached", Boolean(), nullable=False),  # recorded at the late step
    Column("resolve_sla_breached", Boolean(), nullable=False),
    Column("event_count", Integer(), nullable=False),
    Column("last_event", String(16), nullable=False),
    Column("last_event_on", Date(), nullable=False),
    Column("position", BigInteger(), nullable=False),  # notification id of the last event
    Index("complaints_loan_idx", "loan_id"),
    Index("complaints_borrower_idx", "borrower_id"),
    Index("complaints_status_idx", "status"),
)

complaint_events = Table(
    "complaint_events",
    metadata,
    Column("complaint_id", String(36), primary_key=True),
    Column("version", Integer(), primary_key=True),
    Column("position", BigInteger(), nullable=False),
    Column("loan_id", String(36), nullable=False),
    Column("borrower_id", String(64), nullable=False),
    Column("business_date", Date(), nullable=False),
    Column("event", String(16), nullable=False),
    Column("detail", Text(), nullable=False),
    Index("complaint_events_loan_idx", "loan_id", "position"),
    Index("complaint_events_borrower_idx", "borrower_id", "position"),
)


@dataclass
class _State:
    rows: RowSet
    timeline: list[dict[str, Any]] = field(default_factory=list)


class ComplaintHistory(Dispatching):
    name = "complaints"
    tables = (complaints, complaint_events)
    topics = frozenset(
        cls.TOPIC
        for cls in (
            Complaint.Filed,
            Complaint.Acknowledged,
            Complaint.Escalated,
            Complaint.Resolved,
            Complaint.Reopened,
        )
    )
    handlers: ClassVar[dict[type, str]] = {
        Complaint.Filed: "filed",
        Complaint.Acknowledged: "acknowledged",
        Complaint.Escalated: "escalated",
        Complaint.Resolved: "resolved",
        Complaint.Reopened: "reopened",
    }

    def __init__(self, *, ack_sla_days: int, resolve_sla_days: int) -> None:
        """Service levels in days from filing: to acknowledge, and to resolve."""
        self.ack_sla = timedelta(days=ack_sla_days)
        self.resolve_sla = timedelta(days=resolve_sla_days)

    def begin(self, batch: Batch) -> _State:
        rows = batch.rowset("complaints", cached=True)
        rows.load({str(e.originator_id) for e in batch.events})
        return _State(rows=rows)

    def end(self, batch: Batch, state: _State) -> None:
        state.rows.flush()
        append_rows(batch.conn, batch.table("complaint_events"), state.timeline)

    # ------------------------------------------------------------------ handlers
    def filed(self, e: Complaint.Filed, position: int, state: _State) -> None:
        row = state.rows.add(
            {
                "complaint_id": str(e.originator_id),
                "loan_id": e.loan_id,
                "borrower_id": e.borrower_id,
                "category": e.category,
                "status": ComplaintStatus.FILED.value,
                "filed_on": e.business_date,
                "acknowledged_on": None,
                "resolved_on": None,
                "escalation_level": 0,
                "reopen_count": 0,
                "days_to_acknowledge": None,
                "days_to_resolve": None,
                "ack_due_on": e.business_date + self.ack_sla,
                "resolve_due_on": e.business_date + self.resolve_sla,
                "ack_sla_breached": False,
                "resolve_sla_breached": False,
                "event_count": 0,
                "last_event": "",
                "last_event_on": e.business_date,
                "position": position,
            }
        )
        self._step(state, row, e, position, f"{e.category}: {e.description}")

    def acknowledged(self, e: Complaint.Acknowledged, position: int, state: _State) -> None:
        row = self._row(state, e)
        row["status"] = ComplaintStatus.ACKNOWLEDGED.value
        self._answer(row, e.business_date)
        self._step(state, row, e, position, f"handler {e.handler}")

    def escalated(self, e: Complaint.Escalated, position: int, state: _State) -> None:
        row = self._row(state, e)
        row["status"] = ComplaintStatus.ESCALATED.value
        row["escalation_level"] = e.level
        self._step(state, row, e, position, f"level {e.level}: {e.reason}")

    def resolved(self, e: Complaint.Resolved, position: int, state: _State) -> None:
        row = self._row(state, e)
        row["status"] = ComplaintStatus.RESOLVED.value
        if row["acknowledged_on"] is None and row["reopen_count"] == 0:
            # First resolved without an acknowledgement: the answer stops the acknowledgement
            # clock (a later reopen and resolution do not restart it).
            row["ack_sla_breached"] = e.business_date > row["ack_due_on"]
        row["resolved_on"] = e.business_date
        row["days_to_resolve"] = (e.business_date - row["filed_on"]).days
        # Sticky: a reopened complaint resolved on time once still breached if it ever was late.
        row["resolve_sla_breached"] = (
            row["resolve_sla_breached"] or e.business_date > row["resolve_due_on"]
        )
        self._step(state, row, e, position, e.resolution)

    def reopened(self, e: Complaint.Reopened, position: int, state: _State) -> None:
        row = self._row(state, e)
        row["status"] = ComplaintStatus.ACKNOWLEDGED.value  # as the aggregate does
        row["resolved_on"] = None
        row["days_to_resolve"] = None
        row["reopen_count"] += 1
        self._step(state, row, e, position, e.reason)

    # ------------------------------------------------------------------- helpers
    @staticmethod
    def _row(state: _State, e: Any) -> dict[str, Any]:
        row = state.rows.get(str(e.originator_id))
        if row is None:
            raise LookupError(
                f"complaint {e.originator_id} has no Filed event before"
                f" version {e.originator_version}"
            )
        return row

    @staticmethod
    def _answer(row: dict[str, Any], on: date) -> None:
        row["acknowledged_on"] = on
        row["days_to_acknowledge"] = (on - row["filed_on"]).days
        row["ack_sla_breached"] = on > row["ack_due_on"]

    @staticmethod
    def _step(state: _State, row: dict[str, Any], e: Any, position: int, detail: str) -> None:
        name = type(e).__name__
        row["event_count"] += 1
        row["last_event"] = name
        row["last_event_on"] = e.business_date
        row["position"] = position
        state.rows.changed(row["complaint_id"])
        state.timeline.append(
            {
                "complaint_id": row["complaint_id"],
                "version": e.originator_version,
                "position": position,
                "loan_id": row["loan_id"],
                "borrower_id": row["borrower_id"],
                "business_date": e.business_date,
                "event": name,
                "detail": detail,
            }
        )


# ----------------------------------------------------------------------- reports
REPORT_COLUMNS = [
    "complaint_id",
    "loan_id",
    "borrower_id",
    "category",
    "status",
    "filed_on",
    "acknowledged_on",
    "resolved_on",
    "escalation_level",
    "reopen_count",
    "days_to_acknowledge",
    "days_to_resolve",
    "ack_sla_breached",
    "resolve_sla_breached",
    "event_count",
    "last_event",
    "last_event_on",
]
CENT = Decimal("0.01")


def complaints_report(
    conn: Connection,
    *,
    business_date: date,
    borrower_id: str | None = None,
    loan_id: str | UUID | None = None,
    **_: Any,
) -> Report:
    """One row per complaint, with SLA breaches judged on ``business_date``, the ledger's open
    business day (``Ledger.report`` passes it).

    A complaint still open breaches a service level once that day is past its due date; the
    breach flags in each row and the totals include those, beside the ones recorded at a late step.
    """
    query = select(complaints).order_by(complaints.c.filed_on, complaints.c.complaint_id)
    if borrower_id is not None:
        query = query.where(complaints.c.borrower_id == borrower_id)
    if loan_id is not None:
        query = query.where(complaints.c.loan_id == str(loan_id))
    rows = []
    open_by_borrower: Counter[str] = Counter()
    open_by_loan: Counter[str] = Counter()
    overdue_ack = overdue_resolve = breached_ack = breached_resolve = 0
    for stored in conn.execute(query).mappings():
        row = dict(stored)
        is_open = row["status"] != ComplaintStatus.RESOLVED.value
        if is_open:
            open_by_borrower[row["borrower_id"]] += 1
            open_by_loan[row["loan_id"]] += 1
            unanswered = row["acknowledged_on"] is None and row["reopen_count"] == 0
            if unanswered and not row["ack_sla_breached"] and business_date > row["ack_due_on"]:
                row["ack_sla_breached"] = True
                overdue_ack += 1
            if not row["resolve_sla_breached"] and business_date > row["resolve_due_on"]:
                row["resolve_sla_breached"] = True
                overdue_resolve += 1
        row["open"] = is_open
        breached_ack += row["ack_sla_breached"]
        breached_resolve += row["resolve_sla_breached"]
        rows.append(row)
    totals = {
        "business_date": business_date,
        "complaints": len(rows),
        "open": sum(open_by_loan.values()),
        "resolved": len(rows) - sum(open_by_loan.values()),
        "ack_sla_breaches": breached_ack,
        "ack_sla_overdue_open": overdue_ack,
        "resolve_sla_breaches": breached_resolve,
        "resolve_sla_overdue_open": overdue_resolve,
        "avg_days_to_acknowledge": _average(r["days_to_acknowledge"] for r in rows),
        "avg_days_to_resolve": _average(r["days_to_resolve"] for r in rows),
        "open_by_borrower": dict(sorted(open_by_borrower.items())),
        "open_by_loan": dict(sorted(open_by_loan.items())),
    }
    return Report(
        title=f"Complaints as of business day {business_date}",
        columns=REPORT_COLUMNS,
        rows=rows,
        sources=(ComplaintHistory.name,),
        totals=totals,
    )


def complaint_timeline(
    conn: Connection,
    *,
    loan_id: str | UUID | None = None,
    borrower_id: str | None = None,
    complaint_id: str | UUID | None = None,
) -> list[dict[str, Any]]:
    """Every complaint step of a loan, a borrower or one complaint, in log order."""
    query = select(complaint_events).order_by(complaint_events.c.position)
    if loan_id is None and borrower_id is None and complaint_id is None:
        raise ValidationError(
            "give loan_id, borrower_id or complaint_id", field="loan_id", rule="timeline_filter"
        )
    if loan_id is not None:
        query = query.where(complaint_events.c.loan_id == str(loan_id))
    if borrower_id is not None:
        query = query.where(complaint_events.c.borrower_id == borrower_id)
    if complaint_id is not None:
        query = query.where(complaint_events.c.complaint_id == str(complaint_id))
    return [dict(r) for r in conn.execute(query).mappings()]


def _average(values: Any) -> Decimal | None:
    present = [v for v in values if v is not None]
    if not present:
        return None
    return (Decimal(sum(present)) / len(present)).quantize(CENT, rounding=ROUND_HALF_EVEN)
