"""Small builders for domain tests: terms, loans at a given point of their life, replay, and a
loan's balances in one comparable value."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, NamedTuple
from uuid import uuid4

from eventsourcing.domain import Aggregate, CanMutateAggregate

from domain.complaint import Complaint
from domain.delinquency import Classification, FiveCategory
from domain.loan import InstallmentState, Loan
from domain.schedule import build_schedule
from domain.terms import LoanTerms, ProductTerms

APPLIED_ON = date(2026, 1, 5)
APPROVED_ON = date(2026, 1, 6)
DISBURSED_ON = date(2026, 1, 10)
FIRST_DUE = date(2026, 2, 10)

#: State the library keeps for itself; replay may legitimately differ there.
LIBRARY_BOOKKEEPING = frozenset({"_created_on", "_modified_on", "_pending_events"})


def make_terms(product: ProductTerms | None = None, **overrides: Any) -> LoanTerms:
    """100 000 CNY at 12 % over 12 months, annuity, 30/360, unless told otherwise."""
    args: dict[str, Any] = {
        "principal": "100000",
        "currency": "CNY",
        "annual_rate": "0.12",
        "term": 12,
        "method": "annuity",
        "day_count": "30/360",
        "product": product,
    }
    args.update(overrides)
    return LoanTerms.create(**args)


def applied_loan(terms: LoanTerms | None = None, *, on: date = APPLIED_ON) -> Loan:
    return Loan.apply_for(borrower_id="B1", terms=terms or make_terms(), business_date=on)


def approved_loan(terms: LoanTerms | None = None, *, on: date = APPROVED_ON) -> Loan:
    loan = applied_loan(terms, on=on - timedelta(days=1))
    loan.approve(on)
    return loan


def active_loan(
    terms: LoanTerms | None = None,
    *,
    product: ProductTerms | None = None,
    disbursed_on: date = DISBURSED_ON,
    first_due: date = FIRST_DUE,
    **overrides: Any,
) -> Loan:
    """A disbursed loan; ``overrides`` go to :func:`make_terms` when no terms are given."""
    loan = approved_loan(
        terms or make_terms(product=product, **overrides),
        on=disbursed_on - (DISBURSED_ON - APPROVED_ON),
    )
    loan.disburse(disbursed_on, first_due=first_due)
    return loan


def installments_of(
    terms: LoanTerms, *, billed: int, start: date = DISBURSED_ON, first_due: date = FIRST_DUE
) -> list[InstallmentState]:
    """The disbursement schedule of ``terms`` as a loan keeps it, the first ``billed``
    installments fallen due and unpaid: the input of a planner, without the aggregate."""
    schedule = build_schedule(
        principal=terms.principal,
        annual_rate=terms.annual_rate,
        term=terms.term,
        method=terms.method,
        day_count=terms.day_count,
        start_date=start,
        first_due=first_due,
        currency=terms.money_currency,
        rounding=terms.product.rounding,
    )
    states = [InstallmentState.from_dict(i.as_dict()) for i in schedule]
    for inst in states[:billed]:
        inst.fell_due = True
    return states


def day_before(d: date) -> date:
    return d - timedelta(days=1)


def catch_up_and(loan: Loan, business_date: date) -> Loan:
    """What the application does before any command on ``business_date``: close the days
    before it (inline catch-up)."""
    loan.close_day(day_before(business_date))
    return loan


def pay(loan: Loan, business_date: date, amount: str | Decimal, currency: str = "CNY") -> None:
    catch_up_and(loan, business_date)
    loan.receive_repayment(business_date, Decimal(amount), currency)


def replay(events: Iterable[CanMutateAggregate[Any]]) -> Any:
    """Rebuild an aggregate by applying its events in order, as the repository does."""
    aggregate: Aggregate | None = None
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


def state_of(aggregate: Aggregate) -> dict[str, Any]:
    """The aggregate's business state, without the library's bookkeeping."""
    return {k: v for k, v in vars(aggregate).items() if k not in LIBRARY_BOOKKEEPING}


def of_type(events: Iterable[object], cls: type) -> list[Any]:
    return [e for e in events if isinstance(e, cls)]


def filed_complaint(on: date = date(2026, 3, 1)) -> Complaint:
    return Complaint.file(
        loan_id=uuid4(),
        borrower_id="B1",
        category="billing",
        description="penalty charged although I paid on time",
        business_date=on,
    )


class LoanSummary(NamedTuple):
    """What a loan owes, by component, and how it is classified: compared between two ways of
    reaching the same loan (bulk and serial end of day, replay and live, before and after a
    crash) and with the balances read model."""

    loan_id: str
    borrower_id: str
    status: str
    currency: str
    principal_outstanding: Decimal
    principal_not_due: Decimal
    principal_overdue: Decimal
    interest_accrued: Decimal
    interest_overdue: Decimal
    penalty_outstanding: Decimal
    fees_outstanding: Decimal
    overpayment: Decimal
    classification: Classification


def balances_of(loan: Loan) -> LoanSummary:
    """``loan``'s balances; the classification carries the DPD ``loan show`` prints."""
    c = loan.classification
    return LoanSummary(
        loan_id=str(loan.id),
        borrower_id=loan.borrower_id,
        status=str(loan.status),
        currency=loan.currency,
        principal_outstanding=loan.principal_outstanding,
        principal_not_due=loan.principal_not_due,
        principal_overdue=loan.principal_due_unpaid(),
        interest_accrued=loan.interest_accrued,
        interest_overdue=loan.interest_due_unpaid(),
        penalty_outstanding=loan.penalty_outstanding,
        fees_outstanding=loan.fees_outstanding,
        overpayment=loan.overpayment,
        classification=Classification(
            dpd=loan.current_dpd,
            bucket=str(c["bucket"]),
            category=FiveCategory(c["category"]),
            stage=int(c["stage"]),
        ),
    )
