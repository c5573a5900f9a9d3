"""A repayment's split, planned before it is recorded (``plan_repayment``).

What is billed is paid first, in the product's waterfall order (``domain.allocation``). What is
left settles the interest accrued to date before any principal is prepaid, as at payoff, so a
payment short of payoff never prepays more principal than is outstanding:

- if it covers all principal not yet due plus that interest, the loan is **paid off** and the
  rest is an **overpayment** held on the loan;
- otherwise it **prepays** principal and the remaining schedule is rebuilt for the principal
  left (``shorten_term``: same installment, fewer months; ``lower_installment``: same months).

Invariant: allocated + accrued interest paid + prepaid principal + overpayment = the amount,
no part negative, and a rebuilt schedule's principal is the principal not due after the
prepayment. The aggregate checks both before it triggers ``RepaymentReceived``; nothing here
rounds (the amounts are already in minor units).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from domain.allocation import Allocation, Component, DueItem, allocate
from domain.loan.state import InstallmentState
from domain.schedule import AmortizationMethod, Installment, build_schedule
from domain.terms import LoanTerms, PrepaymentOption

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class RepaymentPlan:
    allocation: Allocation  # what was billed, paid in waterfall order
    accrued_interest_paid: Decimal  # accrued, not yet billed
    prepaid_principal: Decimal  # principal not yet due
    overpayment: Decimal  # held on the loan (a liability)
    pays_off: bool  # all principal and accrued interest settled
    new_schedule: list[Installment] | None  # None: unchanged; [] when paid off


def due_items(
    billed: Sequence[InstallmentState], penalty: Decimal, fees: Decimal, oldest: date
) -> list[DueItem]:
    """What a payment may settle before anything else: penalty and fees (dated ``oldest``,
    the oldest unpaid due date), then each billed installment's unpaid interest and
    principal."""
    items: list[DueItem] = []
    if penalty > 0:
        items.append(DueItem(Component.PENALTY, oldest, penalty))
    if fees > 0:
        items.append(DueItem(Component.FEES, oldest, fees))
    for inst in billed:
        if inst.interest_unpaid > 0:
            items.append(
                DueItem(Component.INTEREST, inst.due_date, inst.interest_unpaid, inst.number)
            )
        if inst.principal_unpaid > 0:
            items.append(
                DueItem(Component.PRINCIPAL, inst.due_date, inst.principal_unpaid, inst.number)
            )
    return items


def plan_repayment(
    amount: Decimal,
    items: Sequence[DueItem],
    *,
    principal_not_due: Decimal,
    interest_accrued: Decimal,
    future: Sequence[InstallmentState],
    annual_rate: Decimal,
    terms: LoanTerms,
) -> RepaymentPlan:
    """Split ``amount`` over ``items`` (what is billed), then over the interest accrued and
    the principal not yet due; ``future`` are the installments not yet due, rebuilt after a
    prepayment."""
    allocation = allocate(amount, items, terms.product.allocation_waterfall)
    remainder = allocation.remainder
    accrued_paid = prepaid = overpayment = ZERO
    new_schedule: list[Installment] | None = None
    payoff_rest = principal_not_due + interest_accrued
    pays_off = remainder > 0 and remainder >= payoff_rest
    if pays_off:
        # Settle accrued interest and every remaining principal; keep the rest.
        accrued_paid, prepaid = interest_accrued, principal_not_due
        overpayment = remainder - payoff_rest
        new_schedule = []
    elif remainder > 0:
        accrued_paid = min(remainder, interest_accrued)
        prepaid = remainder - accrued_paid
        if prepaid:
            new_schedule = rebuilt_schedule(future, principal_not_due - prepaid, annual_rate, terms)
    return RepaymentPlan(allocation, accrued_paid, prepaid, overpayment, pays_off, new_schedule)


def rebuilt_schedule(
    future: Sequence[InstallmentState], principal: Decimal, annual_rate: Decimal, terms: LoanTerms
) -> list[Installment]:
    """The installments not yet due, rebuilt for ``principal`` after a prepayment on the same
    due dates: the same installment (``shorten_term``: the term is then an upper bound) or the
    same number of months (``lower_installment``)."""
    if principal <= 0 or not future:
        return []
    fixed: Decimal | None = None
    if terms.product.prepayment == PrepaymentOption.SHORTEN_TERM:
        first = future[0]
        fixed = (
            first.principal
            if terms.method == AmortizationMethod.EQUAL_PRINCIPAL
            else first.principal + first.interest
        )
    return build_schedule(
        principal=principal,
        annual_rate=annual_rate,
        term=len(future),
        method=terms.method,
        day_count=terms.day_count,
        start_date=future[0].start_date,
        first_due=future[0].due_date,
        currency=terms.money_currency,
        rounding=terms.product.rounding,
        fixed_payment=fixed,
        first_number=future[0].number,
    )
