"""Command schemas: what integrations send (JSONL batch, HTTP, CLI), validated at the edge.

Amounts are decimal strings; floats are refused so no binary rounding sneaks into money. Every
command carries an idempotency key; a retry with the same key returns the first outcome.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from domain.errors import ValidationError
from domain.money import to_decimal
from domain.servicing import RestructureKind


def _decimal(value: Any) -> Decimal:
    return to_decimal(value, field="amount")


Amount = Annotated[Decimal, BeforeValidator(_decimal)]


class Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    idempotency_key: str = Field(min_length=1, max_length=200)
    business_date: date | None = None  # defaults to the ledger's open business day


class LoanCommand(Command):
    loan_id: UUID


class ApplyForLoan(Command):
    type: Literal["apply_for_loan"] = "apply_for_loan"
    loan_id: UUID | None = None
    borrower_id: str = Field(min_length=1, max_length=64)
    principal: Amount
    currency: str = "CNY"
    annual_rate: Amount
    term: int
    method: str = "annuity"
    day_count: str = "ACT/365F"
    grace_days: int | None = None
    penalty_markup: Amount | None = None
    waterfall: str | None = None
    prepayment: str | None = None


class ApproveLoan(LoanCommand):
    type: Literal["approve_loan"] = "approve_loan"


class RejectLoan(LoanCommand):
    type: Literal["reject_loan"] = "reject_loan"
    reason: str = Field(min_length=1)


class WithdrawApplication(LoanCommand):
    type: Literal["withdraw_application"] = "withdraw_application"
    reason: str = "withdrawn by borrower"


class DisburseLoan(LoanCommand):
    type: Literal["disburse_loan"] = "disburse_loan"
    first_due: date | None = None


class ReceiveRepayment(LoanCommand):
    type: Literal["receive_repayment"] = "receive_repayment"
    amount: Amount
    currency: str
    reference: str = ""


class ChargeFee(LoanCommand):
    type: Literal["charge_fee"] = "charge_fee"
    amount: Amount
    kind: str = Field("service", min_length=1, max_length=32)


class RestructureLoan(LoanCommand):
    type: Literal["restructure_loan"] = "restructure_loan"
    kind: RestructureKind
    extend_months: int | None = None
    new_term: int | None = None
    new_annual_rate: Amount | None = None
    capitalize_arrears: bool = False


class WriteOffLoan(LoanCommand):
    type: Literal["write_off_loan"] = "write_off_loan"
    reason: str = Field(min_length=1)


class ReceiveRecovery(LoanCommand):
    type: Literal["receive_recovery"] = "receive_recovery"
    amount: Amount
    currency: str
    reference: str = ""


class FileComplaint(Command):
    type: Literal["file_complaint"] = "file_complaint"
    complaint_id: UUID | None = None
    loan_id: UUID
    category: str
    description: str = Field(min_length=1)


class ComplaintCommand(Command):
    complaint_id: UUID


class AcknowledgeComplaint(ComplaintCommand):
    type: Literal["acknowledge_complaint"] = "acknowledge_complaint"
    handler: str = Field(min_length=1)


class EscalateComplaint(ComplaintCommand):
    type: Literal["escalate_complaint"] = "escalate_complaint"
    reason: str = Field(min_length=1)


class ResolveComplaint(ComplaintCommand):
    type: Literal["resolve_complaint"] = "resolve_complaint"
    resolution: str = Field(min_length=1)


class ReopenComplaint(ComplaintCommand):
    type: Literal["reopen_complaint"] = "reopen_complaint"
    reason: str = Field(min_length=1)


AnyCommand = Annotated[
    ApplyForLoan | ApproveLoan | RejectLoan | WithdrawApplication | DisburseLoan
    | ReceiveRepayment | ChargeFee | RestructureLoan | WriteOffLoan | ReceiveRecovery
    | FileComplaint | AcknowledgeComplaint | EscalateComplaint | ResolveComplaint
    | ReopenComplaint,
    Field(discriminator="type"),
]
_adapter: TypeAdapter[Any] = TypeAdapter(AnyCommand)


def parse_command(data: Any) -> Command:
    """Parse one command (a dict with a ``type``); pydantic failures become ValidationError
    naming the first offending field and rule."""
    try:
        command: Command = _adapter.validate_python(data)
    except PydanticValidationError as exc:
        raise as_ledger_error(exc) from None
    return command


def as_ledger_error(exc: PydanticValidationError) -> ValidationError:
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"] if not isinstance(p, int)) or None
    # The discriminated union puts the command type first in the location; drop it.
    if field and "." in field and field.split(".")[0].endswith(("loan", "complaint", "fee",
                                                                 "repayment", "recovery",
                                                                 "application")):
        field = field.split(".", 1)[1]
    if first["type"] in ("union_tag_invalid", "union_tag_not_found"):
        field = "type"
    ctx_error = first.get("ctx", {}).get("error")
    if isinstance(ctx_error, ValidationError):
        message = ctx_error.message.replace(f"{ctx_error.field} ", f"{field} ", 1)
        return type(ctx_error)(message, field=field or ctx_error.field, rule=ctx_error.rule)
    return ValidationError(f"{field}: {first['msg']}", field=field, rule=first["type"])
