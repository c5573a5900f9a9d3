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

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from domain.complaint import Complaint, ComplaintStatus
from projections.base import Batch, Dispatching, RowSet, append_rows, metadata

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
