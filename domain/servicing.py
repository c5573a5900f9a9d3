"""Servicing state kept inside the Loan aggregate: statuses and per-installment balances."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any

ZERO = Decimal(0)


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


@dataclass(slots=True)
class InstallmentState:
    """One installment: scheduled amounts until it falls due, billed amounts after, and what
    has been paid against it."""

    number: int
    start_date: date
    due_date: date
    principal: Decimal
    interest: Decimal
    fell_due: bool = False
    principal_paid: Decimal = ZERO
    interest_paid: Decimal = ZERO

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
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InstallmentState:
        def as_date(v: Any) -> date:
            return v if isinstance(v, date) else date.fromisoformat(v)

        return cls(
            number=int(data["number"]),
            start_date=as_date(data["start_date"]),
            due_date=as_date(data["due_date"]),
            principal=Decimal(str(data["principal"])),
            interest=Decimal(str(data["interest"])),
            fell_due=bool(data.get("fell_due", False)),
            principal_paid=Decimal(str(data.get("principal_paid", "0"))),
            interest_paid=Decimal(str(data.get("interest_paid", "0"))),
        )
