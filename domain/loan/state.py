"""A loan's servicing state: its status, its installments' balances and ``LoanState``, the typed
list of every attribute the Loan aggregate keeps.

``LoanState`` is what a snapshot stores and restores (the codec reads it by its annotations), so
a name or a type changed here changes the stored form; ``Loan.__init__`` sets exactly these
attributes (a test holds the two together). Installments are kept in due-date order, billed ones
first; a restructure or a write-off lowers an installment's billed amounts to what was paid,
never below, and says so in ``closed_by``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypedDict

from domain.allocation import Component
from domain.terms import LoanTerms

ZERO = Decimal(0)
#: The components a repayment pays (``LoanState.paid``'s keys); iterating an Enum is slow and
#: every load does it.
COMPONENTS = tuple(c.value for c in Component)


class LoanStatus(StrEnum):
    APPLIED = "applied"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"
    ACTIVE = "active"
    CLOSED = "closed"
    WRITTEN_OFF = "written_off"


class RestructureKind(StrEnum):
    EXTENSION = "extension"  # 展期: more months on the remaining principal
    REAMORTIZATION = "reamortization"  # a new remaining term
    RATE_CHANGE = "rate_change"
    CAPITALIZATION = "capitalization"  # arrears (interest, penalty, fees) become principal


#: How an installment was closed other than by payments (``InstallmentState.closed_by``).
RESTRUCTURED = "restructured"  # its unpaid principal went back into a restructured plan
CAPITALIZED = "capitalized"  # … together with its unpaid interest, capitalized as principal
WRITTEN_OFF = "written_off"  # what was unpaid on it was written off


@dataclass(slots=True)
class InstallmentState:
    """One installment: scheduled amounts until it falls due, billed amounts after, and what
    has been paid against it.

    A restructure or write-off closes an installment by lowering its billed amounts to what was
    paid; ``closed_by`` records that it was closed so ("" when it was not), so a display can
    tell it from one the borrower paid (``state``)."""

    number: int
    start_date: date
    due_date: date
    principal: Decimal
    interest: Decimal
    fell_due: bool = False
    principal_paid: Decimal = ZERO
    interest_paid: Decimal = ZERO
    closed_by: str = ""  # "", RESTRUCTURED, CAPITALIZED or WRITTEN_OFF

    @property
    def principal_unpaid(self) -> Decimal:
        return self.principal - self.principal_paid if self.fell_due else ZERO

    @property
    def interest_unpaid(self) -> Decimal:
        return self.interest - self.interest_paid if self.fell_due else ZERO

    @property
    def total(self) -> Decimal:
        return self.principal + self.interest

    @property
    def is_settled(self) -> bool:
        return self.fell_due and self.principal_unpaid == 0 and self.interest_unpaid == 0

    @property
    def state(self) -> str:
        """For display: "scheduled" (not fallen due), "due" (fallen due, something unpaid),
        "paid" (settled by payments), or how it was closed otherwise: "restructured",
        "capitalized", "written_off" (a write-off also closes installments not yet due)."""
        if not self.fell_due:
            return self.closed_by or "scheduled"
        if self.principal != self.principal_paid or self.interest != self.interest_paid:
            return "due"
        return self.closed_by or "paid"

    def as_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "start_date": self.start_date.isoformat(),
            "due_date": self.due_date.isoformat(),
            "principal": str(self.principal),
            "interest": str(self.interest),
            "fell_due": self.fell_due,
            "principal_paid": str(self.principal_paid),
            "interest_paid": str(self.interest_paid),
            "closed_by": self.closed_by,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InstallmentState:
        # Replay builds every installment of every schedule through here: plain lookups and
        # constructor calls, no helpers (Decimal() takes str and Decimal alike).
        start, due = data["start_date"], data["due_date"]
        return cls(
            int(data["number"]),
            start if type(start) is date else date.fromisoformat(start),
            due if type(due) is date else date.fromisoformat(due),
            Decimal(data["principal"]),
            Decimal(data["interest"]),
            bool(data.get("fell_due", False)),
            Decimal(data.get("principal_paid", ZERO)),
            Decimal(data.get("interest_paid", ZERO)),
            data.get("closed_by", ""),  # absent before it was kept, and in schedules
        )


class LoanState(TypedDict):
    """Every attribute a Loan keeps, with its type: what a snapshot stores and restores.

    ``Loan.__init__`` sets exactly these (a test holds the two together)."""

    terms: LoanTerms
    borrower_id: str
    currency: str
    annual_rate: Decimal
    status: LoanStatus
    applied_on: date
    approved_on: date | None
    disbursed_on: date | None
    closed_on: date | None
    written_off_on: date | None
    last_closed_on: date | None
    accrued_through: date | None
    penalty_through: date | None
    disbursed: Decimal
    capitalized: Decimal
    installments: list[InstallmentState]
    principal_not_due: Decimal
    interest_accrued: Decimal
    interest_accrued_total: Decimal
    period_exact_closed: Decimal
    interest_settled_in_period: Decimal
    segment_start: date | None
    penalty_outstanding: Decimal
    penalty_accrued_total: Decimal
    penalty_carry: Decimal
    fees_outstanding: Decimal
    fees_charged_total: Decimal
    paid: dict[str, Decimal]
    overpayment: Decimal
    recovered: Decimal
    written_off: dict[str, Decimal]
    overdue_since: date | None
    observation_until: date | None
    restructure_count: int
    classification: dict[str, Any]
