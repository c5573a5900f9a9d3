"""The Complaint aggregate: a borrower's complaint about a loan, from filing to resolution.

Linked to its loan and borrower by id only; the complaint history read model joins them.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Any, TypedDict
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate
from eventsourcing.domain import Snapshot as BaseSnapshot
from eventsourcing.utils import register_topic

from domain.errors import ComplaintStateError, InvalidDate, ValidationError


class ComplaintStatus(StrEnum):
    FILED = "filed"
    ACKNOWLEDGED = "acknowledged"
    ESCALATED = "escalated"
    RESOLVED = "resolved"


CATEGORIES = frozenset(
    {
        "billing",
        "collection_practice",
        "interest_calculation",
        "fees",
        "service",
        "privacy",
        "fraud",
        "other",
    }
)


def _required(value: str, field: str) -> str:
    if not value or not value.strip():
        raise ValidationError(f"{field} must not be empty", field=field, rule="required")
    return value.strip()


class ComplaintState(TypedDict):
    """Every attribute a Complaint keeps (what a snapshot stores and restores)."""

    loan_id: str
    borrower_id: str
    category: str
    description: str
    filed_on: date
    last_step_on: date
    status: ComplaintStatus
    acknowledged_on: date | None
    resolved_on: date | None
    handler: str
    escalation_level: int
    reopen_count: int


class Complaint(Aggregate):
    TOPIC = "complaint"
    State = ComplaintState

    class Event(Aggregate.Event):
        TOPIC = "complaint.Event"

    class Snapshot(BaseSnapshot):
        TOPIC = "complaint.Snapshot"

    class Filed(Aggregate.Created):
        TOPIC = "complaint.Filed"
        loan_id: str
        borrower_id: str
        category: str
        description: str
        business_date: date

    class Acknowledged(Aggregate.Event):
        TOPIC = "complaint.Acknowledged"
        business_date: date
        handler: str

        def apply(self, complaint: Complaint) -> None:
            complaint.last_step_on = self.business_date
            complaint.status = ComplaintStatus.ACKNOWLEDGED
            complaint.acknowledged_on = self.business_date
            complaint.handler = self.handler

    class Escalated(Aggregate.Event):
        TOPIC = "complaint.Escalated"
        business_date: date
        level: int
        reason: str

        def apply(self, complaint: Complaint) -> None:
            complaint.last_step_on = self.business_date
            complaint.status = ComplaintStatus.ESCALATED
            complaint.escalation_level = self.level

    class Resolved(Aggregate.Event):
        TOPIC = "complaint.Resolved"
        business_date: date
        resolution: str

        def apply(self, complaint: Complaint) -> None:
            complaint.last_step_on = self.business_date
            complaint.status = ComplaintStatus.RESOLVED
            complaint.resolved_on = self.business_date

    class Reopened(Aggregate.Event):
        TOPIC = "complaint.Reopened"
        business_date: date
        reason: str

        def apply(self, complaint: Complaint) -> None:
            complaint.last_step_on = self.business_date
            complaint.status = ComplaintStatus.ACKNOWLEDGED
            complaint.resolved_on = None
            complaint.reopen_count += 1

    def __init__(
        self, loan_id: str, borrower_id: str, category: str, description: str, business_date: date
    ) -> None:
        self.loan_id = loan_id
        self.borrower_id = borrower_id
        self.category = category
        self.description = description
        self.filed_on = business_date
        self.last_step_on = business_date  # no step may be dated before the one before it
        self.status = ComplaintStatus.FILED
        self.acknowledged_on: date | None = None
        self.resolved_on: date | None = None
        self.handler = ""
        self.escalation_level = 0
        self.reopen_count = 0

    @staticmethod
    def create_id(*_: Any, **__: Any) -> UUID:
        return uuid4()

    @classmethod
    def file(
        cls,
        *,
        loan_id: UUID,
        borrower_id: str,
        category: str,
        description: str,
        business_date: date,
        complaint_id: UUID | None = None,
    ) -> Complaint:
        if category not in CATEGORIES:
            raise ValidationError(
                f"category {category!r} is not one of {', '.join(sorted(CATEGORIES))}",
                field="category",
                rule="complaint_category",
            )
        return cls._create(
            cls.Filed,
            id=complaint_id,
            loan_id=str(loan_id),
            borrower_id=_required(borrower_id, "borrower_id"),
            category=category,
            description=_required(description, "description"),
            business_date=business_date,
        )

    def acknowledge(self, business_date: date, handler: str) -> None:
        self._check(ComplaintStatus.FILED, "acknowledge")
        self._check_date(business_date)
        self.trigger_event(
            self.Acknowledged, business_date=business_date, handler=_required(handler, "handler")
        )

    def escalate(self, business_date: date, reason: str) -> None:
        if self.status == ComplaintStatus.RESOLVED:
            raise ComplaintStateError(
                "cannot escalate a resolved complaint; reopen it first",
                field="complaint_id",
                rule="complaint_open",
            )
        self._check_date(business_date)
        self.trigger_event(
            self.Escalated,
            business_date=business_date,
            level=self.escalation_level + 1,
            reason=_required(reason, "reason"),
        )

    def resolve(self, business_date: date, resolution: str) -> None:
        if self.status == ComplaintStatus.RESOLVED:
            raise ComplaintStateError(
                "the complaint is already resolved", field="complaint_id", rule="complaint_open"
            )
        self._check_date(business_date)
        self.trigger_event(
            self.Resolved,
            business_date=business_date,
            resolution=_required(resolution, "resolution"),
        )

    def reopen(self, business_date: date, reason: str) -> None:
        self._check(ComplaintStatus.RESOLVED, "reopen")
        self._check_date(business_date)
        self.trigger_event(
            self.Reopened, business_date=business_date, reason=_required(reason, "reason")
        )

    def _check(self, required: ComplaintStatus, action: str) -> None:
        if self.status != required:
            raise ComplaintStateError(
                f"cannot {action} a complaint that is {self.status}; it must be {required}",
                field="complaint_id",
                rule=f"status_{action}",
            )

    def _check_date(self, business_date: date) -> None:
        if business_date < self.last_step_on:
            raise InvalidDate(
                f"business_date {business_date} is before {self.last_step_on},"
                f" the date of the complaint's last step",
                field="business_date",
                rule="not_backdated",
            )


# The library registers pinned topics of nested *events* only; snapshots need it done by hand,
# or a fresh process could not read a stored snapshot.
register_topic(Complaint.Snapshot.TOPIC, Complaint.Snapshot)
