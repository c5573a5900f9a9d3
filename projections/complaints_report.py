"""Complaint reports over the complaint-history read model (``projections.complaints``).

Complaints still open are judged against the ledger's open business day (given by the
service), so stored rows never depend on the wall clock.
"""

from __future__ import annotations

from collections import Counter
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, select

from domain.complaint import ComplaintStatus
from domain.errors import ValidationError
from projections.base import Report
from projections.complaints import ComplaintHistory, complaint_events, complaints

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
