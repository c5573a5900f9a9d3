"""Loan lifecycle: application, approval, rejection, withdrawal, disbursement — and refusals.

Every refusal names the field and the rule, and leaves nothing pending on the aggregate.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from domain.errors import (
    InvalidAmount,
    InvalidDate,
    InvalidTerm,
    InvalidTransition,
    LedgerError,
    RateAboveCap,
    TooManyDecimals,
    UnknownCurrency,
    UnknownDayCount,
    UnknownMethod,
    ValidationError,
)
from domain.loan import Loan, LoanStatus
from domain.terms import LoanTerms, ProductTerms
from tests.factories import (
    APPLIED_ON,
    APPROVED_ON,
    DISBURSED_ON,
    FIRST_DUE,
    active_loan,
    applied_loan,
    approved_loan,
    make_terms,
    state_of,
)


def assert_refused_without_change(
    loan: Loan, command: Any, error: type[LedgerError], field: str, rule: str | None = None
) -> LedgerError:
    """Given a loan with nothing pending, the command raises and the loan is untouched."""
    loan.collect_events()
    before = state_of(loan)
    with pytest.raises(error) as caught:
        command()
    assert caught.value.field == field
    if rule is not None:
        assert caught.value.rule == rule
    assert loan.collect_events() == []
    assert state_of(loan) == before
    return caught.value


# --------------------------------------------------------------------------- happy path


def test_application_records_terms_and_borrower() -> None:
    loan = applied_loan()
    [applied] = loan.collect_events()
    assert isinstance(applied, Loan.Applied)
    assert applied.borrower_id == "B1"
    assert applied.business_date == APPLIED_ON
    assert LoanTerms.from_dict(applied.terms) == make_terms()
    assert loan.status == LoanStatus.APPLIED


def test_approve_then_disburse_books_the_full_schedule() -> None:
    loan = applied_loan()
    loan.approve(APPROVED_ON)
    loan.disburse(DISBURSED_ON, first_due=FIRST_DUE)
    approved, disbursed = loan.collect_events()[1:]
    assert isinstance(approved, Loan.Approved) and isinstance(disbursed, Loan.Disbursed)
    # The event carries the whole schedule, so replay never depends on today's schedule code.
    assert len(disbursed.schedule) == 12
    assert sum(Decimal(row["principal"]) for row in disbursed.schedule) == Decimal("100000.00")
    assert disbursed.schedule[0]["due_date"] == FIRST_DUE.isoformat()
    assert loan.status == LoanStatus.ACTIVE
    assert loan.principal_outstanding == Decimal("100000.00")


def test_disburse_defaults_first_due_to_one_month_later() -> None:
    loan = approved_loan()
    loan.disburse(DISBURSED_ON)
    assert loan.installments[0].due_date == date(2026, 2, 10)


def test_applicant_may_withdraw_before_or_after_approval() -> None:
    loan = applied_loan()
    loan.withdraw(date(2026, 1, 6), reason="found a cheaper loan")
    assert loan.status == LoanStatus.WITHDRAWN

    loan = approved_loan()
    loan.withdraw(date(2026, 1, 7), reason="changed mind")
    assert loan.status == LoanStatus.WITHDRAWN
    assert isinstance(loan.collect_events()[-1], Loan.Withdrawn)


def test_rejection_is_final() -> None:
    loan = applied_loan()
    loan.reject(date(2026, 1, 6), reason="affordability")
    assert loan.status == LoanStatus.REJECTED
    assert_refused_without_change(
        loan, lambda: loan.approve(date(2026, 1, 7)), InvalidTransition, "loan_id"
    )


# --------------------------------------------------------------------- wrong transitions


def test_disburse_before_approval_is_an_invalid_transition() -> None:
    loan = applied_loan()
    error = assert_refused_without_change(
        loan,
        lambda: loan.disburse(DISBURSED_ON, first_due=FIRST_DUE),
        InvalidTransition,
        "loan_id",
        "status_disburse",
    )
    assert "applied" in error.message and "approved" in error.message


@pytest.mark.parametrize("command", ["approve", "reject", "withdraw", "disburse"])
def test_an_active_loan_cannot_go_back_through_origination(command: str) -> None:
    loan = active_loan()
    calls = {
        "approve": lambda: loan.approve(date(2026, 1, 11)),
        "reject": lambda: loan.reject(date(2026, 1, 11), "late"),
        "withdraw": lambda: loan.withdraw(date(2026, 1, 11), "late"),
        "disburse": lambda: loan.disburse(date(2026, 1, 11)),
    }
    assert_refused_without_change(
        loan, calls[command], InvalidTransition, "loan_id", f"status_{command}"
    )


def test_a_withdrawn_loan_cannot_be_approved_or_withdrawn_again() -> None:
    loan = applied_loan()
    loan.withdraw(date(2026, 1, 6), "changed mind")
    assert_refused_without_change(
        loan, lambda: loan.approve(date(2026, 1, 7)), InvalidTransition, "loan_id"
    )
    assert_refused_without_change(
        loan, lambda: loan.withdraw(date(2026, 1, 7), "again"), InvalidTransition, "loan_id"
    )


def test_approval_cannot_be_backdated_before_the_application() -> None:
    loan = applied_loan()
    assert_refused_without_change(
        loan, lambda: loan.approve(date(2026, 1, 4)), InvalidDate, "business_date", "not_backdated"
    )


@pytest.mark.parametrize(
    ("first_due", "rule"),
    [(DISBURSED_ON, "after_disbursement"), (date(2026, 3, 14), "first_period_at_most_62_days")],
)
def test_first_due_date_must_follow_disbursement_closely(first_due: date, rule: str) -> None:
    loan = approved_loan()
    assert_refused_without_change(
        loan,
        lambda: loan.disburse(DISBURSED_ON, first_due=first_due),
        InvalidDate,
        "first_due",
        rule,
    )


def test_empty_borrower_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        Loan.apply_for(borrower_id="  ", terms=make_terms(), business_date=APPLIED_ON)
    assert (caught.value.field, caught.value.rule) == ("borrower_id", "required")


# ------------------------------------------------------------------------ bad terms


def test_rate_above_cap_is_refused_naming_the_cap() -> None:
    with pytest.raises(RateAboveCap) as caught:
        make_terms(annual_rate="0.2401")
    assert caught.value.field == "annual_rate"
    assert caught.value.rule == "rate_cap"
    assert "0.24" in caught.value.message

    # A product with a lower cap (e.g. 4 × LPR) names that cap instead.
    with pytest.raises(RateAboveCap) as caught:
        make_terms(annual_rate="0.15", product=ProductTerms(rate_cap=Decimal("0.138")))
    assert "0.138" in caught.value.message


def test_rate_exactly_at_cap_is_accepted() -> None:
    assert make_terms(annual_rate="0.24").annual_rate == Decimal("0.24")


@pytest.mark.parametrize(
    ("overrides", "error", "field", "rule"),
    [
        ({"term": 0}, InvalidTerm, "term", "term_1_to_600"),
        ({"term": 601}, InvalidTerm, "term", "term_1_to_600"),
        ({"principal": "0"}, InvalidAmount, "principal", "positive"),
        ({"principal": "-100"}, InvalidAmount, "principal", "positive"),
        ({"principal": "100.001"}, TooManyDecimals, "principal", "minor_units"),
        ({"principal": "100.5", "currency": "JPY"}, TooManyDecimals, "principal", "minor_units"),
        ({"principal": "abc"}, InvalidAmount, "principal", "decimal"),
        ({"currency": "XYZ"}, UnknownCurrency, "currency", "iso4217"),
        ({"day_count": "30/365"}, UnknownDayCount, "day_count", "day_count"),
        ({"method": "balloon"}, UnknownMethod, "method", "amortization_method"),
        ({"annual_rate": "-0.01"}, ValidationError, "annual_rate", "non_negative"),
    ],
)
def test_bad_terms_name_field_and_rule(
    overrides: dict[str, Any], error: type[LedgerError], field: str, rule: str
) -> None:
    with pytest.raises(error) as caught:
        make_terms(**overrides)
    assert (caught.value.field, caught.value.rule) == (field, rule)


def test_terms_survive_their_stored_form() -> None:
    terms = make_terms(product=ProductTerms(grace_days=3, waterfall="interest_first"))
    assert LoanTerms.from_dict(terms.as_dict()) == terms


def test_chinese_method_and_day_count_aliases_are_accepted() -> None:
    terms = make_terms(method="等额本金", day_count="ACT/365")
    assert str(terms.method) == "equal_principal"
    assert str(terms.day_count) == "ACT/365F"
