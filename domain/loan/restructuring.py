"""A restructure's plan (``plan_restructure``): the new term and rate by kind, what arrears are
capitalized, and the re-amortized schedule, re-anchored on the loan's own due dates.

All unpaid principal, billed or not, is re-amortized from the next due date: ``extension``
(展期) adds months to the remaining term, ``reamortization`` sets a new remaining term,
``rate_change`` changes the rate (within the product's cap), ``capitalization`` keeps the term
and capitalizes. With ``capitalize_arrears`` unpaid interest, penalty and fees become principal;
without it billed interest stays due.

Invariant (principal is conserved across a capitalization): capitalized = interest + penalty +
fees; reamortized principal = principal outstanding + capitalized = the new schedule's
principal; the billed principal taken back is part of the principal outstanding. The aggregate
checks it before it triggers ``Restructured``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from domain.errors import InvalidTerm, InvalidTransition
from domain.loan.invariants import check_balance_limit
from domain.loan.state import InstallmentState, RestructureKind
from domain.schedule import Installment, build_schedule, monthly_due_dates
from domain.terms import LoanTerms, check_rate

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class RestructurePlan:
    annual_rate: Decimal
    term: int  # installments of the new schedule
    capitalized_interest: Decimal
    capitalized_penalty: Decimal
    capitalized_fees: Decimal
    capitalized: Decimal  # interest + penalty + fees
    principal_outstanding: Decimal  # before: not yet due + billed and unpaid
    principal_due: Decimal  # billed, unpaid principal taken back into the plan
    reamortized_principal: Decimal  # principal outstanding + capitalized
    schedule: list[Installment]


def restructured_term(
    kind: RestructureKind,
    remaining: int,
    annual_rate: Decimal,
    *,
    extend_months: int | None,
    new_term: int | None,
    new_annual_rate: Decimal | None,
    rate_cap: Decimal,
) -> tuple[int, Decimal]:
    """The new schedule's number of installments and rate for ``kind``, given the
    ``remaining`` installments not yet due; refuses what the kind needs and was not given."""
    if kind == RestructureKind.EXTENSION:
        if not extend_months or extend_months < 1 or extend_months > 120:
            raise InvalidTerm(
                "extend_months must be from 1 to 120 for an extension (展期)",
                field="extend_months",
                rule="range_1_120",
            )
        return remaining + extend_months, annual_rate
    if kind == RestructureKind.REAMORTIZATION:
        if not new_term or new_term < 1 or new_term > 600:
            raise InvalidTerm(
                "new_term must be from 1 to 600 months", field="new_term", rule="range_1_600"
            )
        return new_term, annual_rate
    if kind == RestructureKind.RATE_CHANGE:
        if new_annual_rate is None:
            raise InvalidTerm(
                "new_annual_rate is required for a rate change",
                field="new_annual_rate",
                rule="required",
            )
        check_rate(new_annual_rate, rate_cap, field="new_annual_rate")
        return max(remaining, 1), new_annual_rate
    return max(remaining, 1), annual_rate  # capitalization keeps the remaining term


def plan_restructure(
    kind: RestructureKind,
    *,
    business_date: date,
    terms: LoanTerms,
    annual_rate: Decimal,
    installments: Sequence[InstallmentState],
    principal_not_due: Decimal,
    principal_due: Decimal,
    interest_due: Decimal,
    penalty: Decimal,
    fees: Decimal,
    extend_months: int | None = None,
    new_term: int | None = None,
    new_annual_rate: Decimal | None = None,
    capitalize_arrears: bool = False,
) -> RestructurePlan:
    """The plan for a loan whose installments are ``installments`` (billed first) and whose
    unpaid balances are the amounts given; ``principal_due`` and ``interest_due`` are billed
    and unpaid. Capitalization may not take principal past ``Currency.max_amount``."""
    remaining = sum(1 for i in installments if not i.fell_due)
    count, rate = restructured_term(
        kind,
        remaining,
        annual_rate,
        extend_months=extend_months,
        new_term=new_term,
        new_annual_rate=new_annual_rate,
        rate_cap=terms.product.rate_cap,
    )
    interest = capitalized_penalty = capitalized_fees = ZERO
    if capitalize_arrears or kind == RestructureKind.CAPITALIZATION:
        interest, capitalized_penalty, capitalized_fees = interest_due, penalty, fees
    capitalized = interest + capitalized_penalty + capitalized_fees
    outstanding = principal_not_due + principal_due
    principal = outstanding + capitalized
    if principal <= 0:
        raise InvalidTransition(
            "nothing to restructure: no principal outstanding",
            field="loan_id",
            rule="principal_outstanding",
        )
    if capitalized:
        check_balance_limit(
            terms.money_currency,
            "principal after capitalization",
            principal,
            "kind" if kind == RestructureKind.CAPITALIZATION else "capitalize_arrears",
        )
    schedule = schedule_from(installments, business_date, principal, count, rate, terms)
    return RestructurePlan(
        rate,
        count,
        interest,
        capitalized_penalty,
        capitalized_fees,
        capitalized,
        outstanding,
        principal_due,
        principal,
        schedule,
    )


def schedule_from(
    installments: Sequence[InstallmentState],
    business_date: date,
    principal: Decimal,
    count: int,
    rate: Decimal,
    terms: LoanTerms,
) -> list[Installment]:
    """``count`` installments of ``principal`` at ``rate``, due on the loan's next due date
    after ``business_date`` and monthly from it, numbered on from the last billed one."""
    future = [i for i in installments if not i.fell_due]
    billed = [i for i in installments if i.fell_due]
    anchor = (
        future[0].due_date
        if future
        else monthly_due_dates(billed[-1].due_date, 2)[1]
        if billed
        else monthly_due_dates(business_date, 2)[1]
    )
    while anchor <= business_date:
        anchor = monthly_due_dates(anchor, 2)[1]
    start = future[0].start_date if future else business_date
    next_number = (billed[-1].number + 1) if billed else 1
    return build_schedule(
        principal=principal,
        annual_rate=rate,
        term=count,
        method=terms.method,
        day_count=terms.day_count,
        start_date=min(start, business_date) if future else start,
        first_due=anchor,
        currency=terms.money_currency,
        rounding=terms.product.rounding,
        first_number=next_number,
    )
