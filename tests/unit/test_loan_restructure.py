"""Restructuring: extension (展期), rate change, re-amortization, capitalization of arrears,
and the observation period that keeps a restructured loan under special mention / stage 2."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from domain.allocation import Component
from domain.errors import InvalidTerm, LoanNotActive, RateAboveCap
from domain.loan import Loan, LoanStatus, RestructureKind
from domain.terms import ProductTerms
from tests.factories import FIRST_DUE, active_loan, catch_up_and, of_type, pay, replay, state_of

D = Decimal


def current_loan_after_two_payments(product: ProductTerms | None = None) -> Loan:
    loan = active_loan(product=product)
    for inst in list(loan.installments[:2]):
        pay(loan, inst.due_date, inst.total)
    loan.collect_events()
    return loan


def restructured(loan: Loan) -> Loan.Restructured:
    [event] = of_type(loan.collect_events(), Loan.Restructured)
    return event


def assert_schedule_carries_the_principal(loan: Loan, event: Loan.Restructured) -> None:
    assert sum(D(r["principal"]) for r in event.new_schedule) == event.reamortized_principal
    assert loan.principal_outstanding == event.reamortized_principal


def test_extension_adds_months_to_the_remaining_term() -> None:
    # Given ten installments left,
    loan = current_loan_after_two_payments()
    assert len(loan.future()) == 10
    # when the loan is extended by six months (展期),
    on = date(2026, 3, 20)
    catch_up_and(loan, on).restructure(on, RestructureKind.EXTENSION, extend_months=6)
    event = restructured(loan)
    # then sixteen installments remain, numbered on from the billed ones, due on the same day,
    assert event.kind == "extension"
    assert len(loan.future()) == 16
    assert [i.number for i in loan.future()][:2] == [3, 4]
    assert loan.future()[0].due_date == date(2026, 4, 10)
    assert loan.future()[-1].due_date == date(2027, 7, 10)
    assert_schedule_carries_the_principal(loan, event)
    # and the rate is unchanged.
    assert event.annual_rate == D("0.12")


def test_rate_change_reprices_the_remaining_schedule_and_future_accruals() -> None:
    loan = current_loan_after_two_payments()
    before = loan.future()[0].total
    on = date(2026, 3, 10)
    catch_up_and(loan, on).restructure(on, RestructureKind.RATE_CHANGE, new_annual_rate=D("0.06"))
    event = restructured(loan)
    assert loan.annual_rate == D("0.06")
    assert len(loan.future()) == 10
    assert loan.future()[0].total < before
    assert_schedule_carries_the_principal(loan, event)
    # The next day accrues at 6 %: principal × 0.06 / 360.
    loan.close_day(date(2026, 3, 11))
    accrued = of_type(loan.collect_events(), Loan.InterestAccrued)[-1]
    expected = (loan.principal_not_due * D("0.06") / 360).quantize(D("0.01"))
    assert abs(accrued.amount - expected) <= D("0.01")


def test_rate_change_above_the_cap_is_refused_and_changes_nothing() -> None:
    loan = current_loan_after_two_payments()
    before = state_of(loan)
    with pytest.raises(RateAboveCap) as caught:
        loan.restructure(date(2026, 3, 10), RestructureKind.RATE_CHANGE, new_annual_rate=D("0.30"))
    assert caught.value.field == "new_annual_rate"
    assert "0.24" in caught.value.message
    assert loan.collect_events() == []
    assert state_of(loan) == before


def test_reamortization_sets_a_new_remaining_term() -> None:
    loan = current_loan_after_two_payments()
    on = date(2026, 3, 15)
    catch_up_and(loan, on).restructure(on, RestructureKind.REAMORTIZATION, new_term=24)
    event = restructured(loan)
    assert len(loan.future()) == 24
    assert_schedule_carries_the_principal(loan, event)


@pytest.mark.parametrize(
    ("kind", "kwargs", "field"),
    [
        (RestructureKind.EXTENSION, {}, "extend_months"),
        (RestructureKind.EXTENSION, {"extend_months": 0}, "extend_months"),
        (RestructureKind.EXTENSION, {"extend_months": 121}, "extend_months"),
        (RestructureKind.REAMORTIZATION, {"new_term": 0}, "new_term"),
        (RestructureKind.RATE_CHANGE, {}, "new_annual_rate"),
    ],
)
def test_restructure_without_its_parameters_is_refused(
    kind: RestructureKind, kwargs: dict[str, int], field: str
) -> None:
    loan = current_loan_after_two_payments()
    with pytest.raises(InvalidTerm) as caught:
        loan.restructure(date(2026, 3, 15), kind, **kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert loan.collect_events() == []


def test_a_closed_loan_cannot_be_restructured() -> None:
    loan = active_loan()
    pay(loan, date(2026, 1, 21), loan.payoff_amount(date(2026, 1, 21)))
    assert loan.status == LoanStatus.CLOSED
    loan.collect_events()
    with pytest.raises(LoanNotActive):
        loan.restructure(date(2026, 1, 22), RestructureKind.EXTENSION, extend_months=3)
    assert loan.collect_events() == []


def test_capitalization_moves_arrears_into_principal_and_cures_dpd() -> None:
    # Given a loan 40 days late on its first installment and 12 on its second, with a fee,
    loan = active_loan(product=ProductTerms(observation_days=90))
    loan.close_day(date(2026, 3, 21))
    loan.charge_fee(date(2026, 3, 21), D("30.00"), "late_fee")
    principal_before = loan.principal_outstanding
    arrears = loan.interest_due_unpaid() + loan.penalty_outstanding + loan.fees_outstanding
    assert loan.current_dpd == 39
    loan.collect_events()
    # when the arrears are capitalized,
    on = date(2026, 3, 22)
    catch_up_and(loan, on).restructure(on, RestructureKind.CAPITALIZATION)
    events = loan.collect_events()
    [event] = of_type(events, Loan.Restructured)
    # then interest, penalty and fees become principal, nothing is past due any more,
    assert event.capitalized == arrears
    assert event.reamortized_principal == principal_before + arrears
    assert loan.principal_outstanding == principal_before + arrears
    assert loan.arrears_due() == 0
    assert loan.dpd_on(on) == 0
    assert loan.capitalized == arrears
    # principal is conserved: disbursed + capitalized = outstanding + paid,
    assert (
        loan.disbursed + loan.capitalized
        == loan.principal_outstanding + loan.paid[Component.PRINCIPAL]
    )
    # and the loan is classified special mention / stage 2 although its DPD is 0.
    [change] = of_type(events, Loan.DelinquencyChanged)
    assert change.current == {"dpd": 0, "bucket": "M0", "category": "special_mention", "stage": 2}


def test_observation_period_keeps_stage_2_until_it_ends() -> None:
    # Given a loan restructured on 20 Mar with a 30-day observation period, kept current,
    loan = active_loan(product=ProductTerms(observation_days=30))
    pay(loan, FIRST_DUE, loan.installments[0].total)
    on = date(2026, 3, 1)
    catch_up_and(loan, on).restructure(on, RestructureKind.EXTENSION, extend_months=3)
    assert loan.observation_until == on + timedelta(days=30)
    assert loan.classification["category"] == "special_mention"
    pay(loan, date(2026, 3, 10), loan.future()[0].total)
    loan.collect_events()
    # it stays special mention through the last day of observation,
    loan.close_day(date(2026, 3, 31))
    assert loan.classification["category"] == "special_mention"
    assert loan.classification["stage"] == 2
    # and returns to normal / stage 1 the day after.
    loan.close_day(date(2026, 4, 1))
    [change] = of_type(loan.collect_events(), Loan.DelinquencyChanged)
    assert change.business_date == date(2026, 4, 1)
    assert change.current == {"dpd": 0, "bucket": "M0", "category": "normal", "stage": 1}


def test_restructured_loan_replays_to_the_same_state() -> None:
    loan = active_loan()
    loan.close_day(date(2026, 3, 21))
    catch_up_and(loan, date(2026, 3, 22)).restructure(
        date(2026, 3, 22), RestructureKind.CAPITALIZATION
    )
    pay(loan, date(2026, 4, 10), "5000.00")
    assert state_of(replay(loan.collect_events())) == state_of(loan)


def test_restructured_installments_show_as_restructured_once_their_interest_is_paid() -> None:
    # Given the first installment paid on time and the second (7963.73 + 921.15) unpaid,
    loan = active_loan()
    pay(loan, FIRST_DUE, loan.installments[0].total)
    loan.close_day(date(2026, 3, 20))
    first, second = loan.installments[:2]
    # when its principal is taken back into an extended plan without capitalizing arrears,
    on = date(2026, 3, 21)
    catch_up_and(loan, on).restructure(on, RestructureKind.EXTENSION, extend_months=6)
    # the paid one still shows "paid"; the second keeps its interest due, so it is "due",
    assert (first.state, second.state) == ("paid", "due")
    assert second.principal_unpaid == 0 and second.interest_unpaid == D("921.15")
    # and once that interest is paid it shows "restructured", not "paid".
    pay(loan, date(2026, 3, 22), loan.arrears_due())
    assert (second.state, second.closed_by) == ("restructured", "restructured")
    assert first.closed_by == ""
    assert [i.state for i in replay(loan.collect_events()).installments[:2]] == [
        "paid",
        "restructured",
    ]


def test_capitalized_installments_show_as_capitalized_not_paid() -> None:
    # Given two unpaid installments,
    loan = active_loan()
    loan.close_day(date(2026, 3, 21))
    # when their arrears are capitalized,
    on = date(2026, 3, 22)
    catch_up_and(loan, on).restructure(on, RestructureKind.CAPITALIZATION)
    # both are closed, by capitalization: nothing is due on them, yet nobody paid them.
    billed = loan.billed()
    assert [i.state for i in billed] == ["capitalized", "capitalized"]
    assert all(i.is_settled for i in billed)
    assert all(i.state == "scheduled" for i in loan.future())


def test_capitalize_arrears_flag_marks_installments_capitalized() -> None:
    loan = active_loan()
    loan.close_day(date(2026, 2, 20))
    on = date(2026, 2, 21)
    catch_up_and(loan, on).restructure(
        on, RestructureKind.EXTENSION, extend_months=3, capitalize_arrears=True
    )
    assert loan.installments[0].state == "capitalized"
