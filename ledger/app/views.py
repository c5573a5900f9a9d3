"""What a loan, its schedule and its history look like to a reader (CLI today, HTTP next).

Views are plain dicts of JSON-ready values, built from the aggregate and its events; amounts are
text in the loan's currency's minor units, dates ISO, absent values ``None`` (``null`` in JSON;
faces leave them out of tables). Faces render these and compute nothing themselves.

``money(value, currency)`` is the one way an amount leaves the ledger as text: rounded to the
currency's minor units ("8884.88", JPY "4247"), never "8884.8800", a bare "0" or "-0.00", and
without thousands separators, so what a table shows can be copied as it is. ``plain`` makes any
value JSON-ready (every face's last step before writing).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from domain.allocation import Component
from domain.loan import Loan
from domain.loan.state import LoanStatus
from domain.money import Currency, in_minor_units
from domain.schedule import Installment


def money(value: Any, currency: str | Currency) -> str:
    """``value`` (Decimal, int, float from a SQLite SUM, or numeric text) in the currency's
    minor units, as plain text: "8884.88", "4247" for JPY, "0.00" for zero."""
    code = currency.code if isinstance(currency, Currency) else currency
    return format(in_minor_units(value, code), "f")


def plain(value: Any) -> Any:
    """A value ready for JSON or a table cell: dates ISO, UUIDs and enums as text, Decimals
    as their exact text (amounts should go through ``money`` first), containers recursively."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, str) and type(value) is not str:  # a StrEnum
        return str(value)
    return value


#: Decimal event fields that are not amounts of money: rates, and the exact full-precision
#: figures kept for audit (a period's exact accrual, a penalty's carried remainder).
NOT_MONEY = frozenset({"annual_rate", "new_annual_rate", "penalty_markup", "period_exact", "carry"})
#: Daily postings a reader may hide (``loan history --no-accruals``).
DAILY = frozenset({"InterestAccrued", "PenaltyAccrued"})
#: Fields of an event that are its envelope or too long for a history line.
ENVELOPE = frozenset(
    {
        "originator_id",
        "originator_version",
        "originator_topic",
        "timestamp",
        "business_date",
        "schedule",
        "new_schedule",
        "terms",
    }
)


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def loan_view(loan: Loan) -> dict[str, Any]:
    """Balances, status and delinquency of one loan, as ``ledger loan show`` prints them."""
    currency = loan.currency

    def m(value: Any) -> str:
        return money(value, currency)

    dpd = loan.current_dpd
    view: dict[str, Any] = {
        "loan_id": str(loan.id),
        "borrower_id": loan.borrower_id,
        "status": str(loan.status),
        "currency": currency,
        "version": loan.version,
        "applied_on": _iso(loan.applied_on),
        "disbursed_on": _iso(loan.disbursed_on),
        "last_closed_on": _iso(loan.last_closed_on),
        "closed_on": _iso(loan.closed_on),
        "annual_rate": plain(loan.annual_rate),
        "disbursed": m(loan.disbursed),
        "capitalized": m(loan.capitalized),
        "principal_outstanding": m(loan.principal_outstanding),
        "principal_not_due": m(loan.principal_not_due),
        "principal_overdue": m(loan.principal_due_unpaid()),
        "interest_accrued": m(loan.interest_accrued),
        "interest_overdue": m(loan.interest_due_unpaid()),
        "penalty_outstanding": m(loan.penalty_outstanding),
        "fees_outstanding": m(loan.fees_outstanding),
        "overpayment": m(loan.overpayment),
        "paid": {c.value: m(loan.paid[c.value]) for c in Component},
        "dpd": dpd,
        "bucket": loan.classification["bucket"],
        "five_category": str(loan.classification["category"]),
        "ifrs9_stage": int(loan.classification["stage"]),
        "restructures": loan.restructure_count,
        "observation_until": _iso(loan.observation_until),
        "written_off": None,
        "recovered": m(loan.recovered),
    }
    if loan.status == LoanStatus.WRITTEN_OFF:
        written = loan.written_off
        view["written_off"] = {
            "on": _iso(loan.written_off_on),
            "dpd": loan.classification_dpd(),
            **{
                k: m(written.get(k, 0))
                for k in ("principal", "interest", "accrued_interest", "penalty", "fees")
            },
        }
    return view


def installment_view(inst: Any, currency: str) -> dict[str, Any]:
    """One installment of a loan's schedule: billed ones with what is paid, future ones as
    scheduled; ``state`` is scheduled, due, paid, restructured, capitalized or written_off."""
    return {
        "number": inst.number,
        "due_date": inst.due_date.isoformat(),
        "principal": money(inst.principal, currency),
        "interest": money(inst.interest, currency),
        "total": money(inst.principal + inst.interest, currency),
        "state": inst.state,
        "principal_paid": money(inst.principal_paid, currency),
        "interest_paid": money(inst.interest_paid, currency),
    }


def schedule_view(loan: Loan) -> dict[str, Any]:
    return {
        "loan_id": str(loan.id),
        "currency": loan.currency,
        "installments": [installment_view(i, loan.currency) for i in loan.installments],
    }


def quote_view(
    schedule: list[Installment],
    *,
    currency: str,
    principal: Decimal,
    method: str,
    day_count: str,
    annual_rate: Decimal,
    term: int,
) -> dict[str, Any]:
    """A schedule quoted before any loan exists (``ledger quote schedule``)."""
    total_interest = sum((i.interest for i in schedule), Decimal(0))
    return {
        "currency": currency,
        "principal": money(principal, currency),
        "annual_rate": plain(annual_rate),
        "term": term,
        "method": method,
        "day_count": day_count,
        "total_interest": money(total_interest, currency),
        "total": money(principal + total_interest, currency),
        "installments": [
            {
                "number": i.number,
                "due_date": i.due_date.isoformat(),
                "principal": money(i.principal, currency),
                "interest": money(i.interest, currency),
                "total": money(i.total, currency),
            }
            for i in schedule
        ],
    }


def history_view(
    events: Iterable[Any], currency: str, *, daily: bool = True
) -> list[dict[str, Any]]:
    """Every event of a loan in order (``daily=False`` leaves out the daily interest and
    penalty postings), each with its business date, when it was recorded and its details:
    amounts in minor units, a repayment's allocation line by line."""
    rows = []
    for event in events:
        name = type(event).__name__
        if not daily and name in DAILY:
            continue
        details = {k: _detail(k, v, currency) for k, v in vars(event).items() if k not in ENVELOPE}
        rows.append(
            {
                "version": event.originator_version,
                "event": name,
                "business_date": event.business_date.isoformat(),
                "recorded_at": event.timestamp.isoformat(),
                "details": details,
            }
        )
    return rows


def _detail(name: str, value: Any, currency: str) -> Any:
    if name == "allocation" and isinstance(value, dict):
        return allocation_view(value, currency)
    if isinstance(value, Decimal) and name not in NOT_MONEY:
        return money(value, currency)
    return plain(value)


def allocation_view(allocation: dict[str, Any], currency: str) -> dict[str, Any]:
    """A repayment's split: per component and line by line (installment, due date)."""
    return {
        **{c.value: money(allocation.get(c.value, 0), currency) for c in Component},
        "lines": [
            {
                "component": line["component"],
                "installment": line.get("installment"),
                "due_date": line["due_date"],
                "amount": money(line["amount"], currency),
            }
            for line in allocation.get("lines", [])
        ],
    }


def _zero(value: Any) -> bool:
    return isinstance(value, str) and value.replace("0", "").replace(".", "") == "" and value != ""


def history_line(row: dict[str, Any]) -> str:
    """A history row's details as one readable line: ``amount=8884.88, allocation: interest
    921.15 (#2), principal 7963.73 (#2)``."""
    parts = []
    for key, value in row["details"].items():
        if key == "allocation":
            lines = [
                f"{x['component']} {x['amount']}"
                + (f" (#{x['installment']})" if x["installment"] is not None else "")
                for x in value["lines"]
            ]
            parts.append("allocation: " + (", ".join(lines) or "none"))
        elif isinstance(value, dict):
            parts.append(f"{key}: " + ", ".join(f"{k} {v}" for k, v in value.items()))
        elif value not in (None, "", [], {}) and (key == "amount" or not _zero(value)):
            parts.append(f"{key}={value}")
    return ", ".join(parts)
