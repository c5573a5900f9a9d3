"""Command schemas: what integrations send (JSONL batch, HTTP, CLI), validated at the edge.

The schemas are strict (PRODUCT.md, *Bounds*; the field types are in ``ledger.app.fields``):
every failure is a ``ValidationError`` naming the field and the rule and saying what is
expected. What depends on settings (the rate cap, the maximum amount per currency) is checked
by the application after the idempotency lookup, so a retried command returns its first
outcome even when today's settings would refuse it.

Every command carries an idempotency key; a retry with the same key returns the first outcome.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
)
from pydantic import ValidationError as PydanticValidationError

from domain.errors import ValidationError
from domain.loan.state import RestructureKind
from ledger.app.fields import (
    Amount,
    Bool,
    CurrencyCode,
    Day,
    Id,
    Identifier,
    Int,
    Rate,
    Text,
    shown,
)


class Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    idempotency_key: Identifier(200)  # type: ignore[valid-type]
    business_date: Day | None = None  # defaults to the ledger's open business day


class LoanCommand(Command):
    loan_id: Id


class ApplyForLoan(Command):
    type: Literal["apply_for_loan"] = "apply_for_loan"
    loan_id: Id | None = None
    borrower_id: Identifier(64)  # type: ignore[valid-type]
    principal: Amount
    currency: CurrencyCode = "CNY"
    annual_rate: Rate
    term: Int
    method: Identifier(32) = "annuity"  # type: ignore[valid-type]
    day_count: Identifier(32) = "ACT/365F"  # type: ignore[valid-type]
    grace_days: Int | None = None
    penalty_markup: Rate | None = None
    waterfall: Identifier(100) | None = None  # type: ignore[valid-type]
    prepayment: Literal["shorten_term", "lower_installment"] | None = None


class ApproveLoan(LoanCommand):
    type: Literal["approve_loan"] = "approve_loan"


class RejectLoan(LoanCommand):
    type: Literal["reject_loan"] = "reject_loan"
    reason: Text()  # type: ignore[valid-type]


class WithdrawApplication(LoanCommand):
    type: Literal["withdraw_application"] = "withdraw_application"
    reason: Text() = "withdrawn by borrower"  # type: ignore[valid-type]


class DisburseLoan(LoanCommand):
    type: Literal["disburse_loan"] = "disburse_loan"
    first_due: Day | None = None


class ReceiveRepayment(LoanCommand):
    type: Literal["receive_repayment"] = "receive_repayment"
    amount: Amount
    currency: CurrencyCode
    reference: Identifier(128, min_length=0) = ""  # type: ignore[valid-type]


class ChargeFee(LoanCommand):
    type: Literal["charge_fee"] = "charge_fee"
    amount: Amount
    kind: Identifier(32) = "service"  # type: ignore[valid-type]


class RestructureLoan(LoanCommand):
    type: Literal["restructure_loan"] = "restructure_loan"
    kind: RestructureKind
    extend_months: Int | None = None
    new_term: Int | None = None
    new_annual_rate: Rate | None = None
    capitalize_arrears: Bool = False


class WriteOffLoan(LoanCommand):
    type: Literal["write_off_loan"] = "write_off_loan"
    reason: Text()  # type: ignore[valid-type]


class ReceiveRecovery(LoanCommand):
    type: Literal["receive_recovery"] = "receive_recovery"
    amount: Amount
    currency: CurrencyCode
    reference: Identifier(128, min_length=0) = ""  # type: ignore[valid-type]


class FileComplaint(Command):
    type: Literal["file_complaint"] = "file_complaint"
    complaint_id: Id | None = None
    loan_id: Id
    category: Identifier(32)  # type: ignore[valid-type]
    description: Text()  # type: ignore[valid-type]


class ComplaintCommand(Command):
    complaint_id: Id


class AcknowledgeComplaint(ComplaintCommand):
    type: Literal["acknowledge_complaint"] = "acknowledge_complaint"
    handler: Identifier(64)  # type: ignore[valid-type]


class EscalateComplaint(ComplaintCommand):
    type: Literal["escalate_complaint"] = "escalate_complaint"
    reason: Text()  # type: ignore[valid-type]


class ResolveComplaint(ComplaintCommand):
    type: Literal["resolve_complaint"] = "resolve_complaint"
    resolution: Text()  # type: ignore[valid-type]


class ReopenComplaint(ComplaintCommand):
    type: Literal["reopen_complaint"] = "reopen_complaint"
    reason: Text()  # type: ignore[valid-type]


COMMANDS: tuple[type[Command], ...] = (
    ApplyForLoan,
    ApproveLoan,
    RejectLoan,
    WithdrawApplication,
    DisburseLoan,
    ReceiveRepayment,
    ChargeFee,
    RestructureLoan,
    WriteOffLoan,
    ReceiveRecovery,
    FileComplaint,
    AcknowledgeComplaint,
    EscalateComplaint,
    ResolveComplaint,
    ReopenComplaint,
)
#: ``type`` tag -> command class.
BY_TYPE: dict[str, type[Command]] = {cls.model_fields["type"].default: cls for cls in COMMANDS}

AnyCommand = Annotated[
    ApplyForLoan
    | ApproveLoan
    | RejectLoan
    | WithdrawApplication
    | DisburseLoan
    | ReceiveRepayment
    | ChargeFee
    | RestructureLoan
    | WriteOffLoan
    | ReceiveRecovery
    | FileComplaint
    | AcknowledgeComplaint
    | EscalateComplaint
    | ResolveComplaint
    | ReopenComplaint,
    Field(discriminator="type"),
]
_adapter: TypeAdapter[Any] = TypeAdapter(AnyCommand)


def parse_command(data: Any) -> Command:
    """Parse one command (a JSON object with a ``type``); failures become ValidationError
    naming the first offending field and rule."""
    if not isinstance(data, dict):
        kind = {
            list: "a JSON array",
            str: "a JSON string",
            bool: "a JSON boolean",
            int: "a JSON number",
            float: "a JSON number",
            type(None): "null",
        }.get(type(data), type(data).__name__)
        raise ValidationError(
            f'a command must be a JSON object ({{"type": …}}), not {kind}',
            field="command",
            rule="json_object",
        )
    tag = data.get("type")
    if tag is None:
        raise ValidationError(
            "type is required: the command's name, one of " + ", ".join(BY_TYPE),
            field="type",
            rule="required",
        )
    if not isinstance(tag, str) or tag not in BY_TYPE:
        raise ValidationError(
            f"unknown command type {shown(tag)}; expected one of " + ", ".join(BY_TYPE),
            field="type",
            rule="command_type",
        )
    try:
        command: Command = _adapter.validate_python(data)
    except PydanticValidationError as exc:
        raise as_ledger_error(exc) from None
    return command


#: pydantic error type -> (rule, what is expected), for the messages a user reads.
_EXPECTED: dict[str, tuple[str, str]] = {
    "missing": ("required", "is required"),
    "extra_forbidden": ("unknown_field", "is not a field of this command"),
    "int_type": ("integer", "must be a JSON integer such as 12"),
    "int_from_float": ("integer", "must be a JSON integer such as 12"),
    "int_parsing": ("integer", "must be a JSON integer such as 12"),
    "bool_type": ("boolean", "must be true or false"),
    "bool_parsing": ("boolean", "must be true or false"),
    "string_type": ("string", "must be a JSON string"),
    "string_too_short": ("required", "must not be empty"),
    "literal_error": ("one_of", "must be one of"),
    "enum": ("one_of", "must be one of"),
}


def as_ledger_error(exc: PydanticValidationError) -> ValidationError:
    first = exc.errors()[0]
    loc = [str(p) for p in first["loc"] if not isinstance(p, int)]
    if loc and loc[0] in BY_TYPE:  # the discriminated union puts the command type first
        loc = loc[1:]
    field = ".".join(loc) or "command"
    ctx = first.get("ctx") or {}
    ctx_error = ctx.get("error")
    if isinstance(ctx_error, ValidationError):
        return ctx_error
    kind = first["type"]
    if kind == "string_too_long":
        return ValidationError(
            f"{field} is longer than {ctx.get('max_length')} characters",
            field=field,
            rule="max_length",
        )
    rule, expected = _EXPECTED.get(kind, (kind, first["msg"].lower()))
    if kind in ("literal_error", "enum"):
        expected = f"{expected} {ctx.get('expected', '')}".strip()
    got = first.get("input")
    given = "" if kind == "missing" else f", got {shown(got)}"
    return ValidationError(f"{field} {expected}{given}", field=field, rule=rule)
