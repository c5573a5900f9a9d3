"""Servicing a disbursed loan: end of day, arrears, penalties, repayments, payoff, write-off."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from domain.allocation import Component
from domain.errors import (
    CurrencyMismatch,
    InvalidDate,
    LoanNotActive,
    OverpaymentNotAllowed,
    ValidationError,
)
from domain.loan import Loan, LoanStatus
from domain.money import CALC
from domain.terms import PrepaymentOption, ProductTerms
from tests.factories import (
    FIRST_DUE,
    active_loan,
    catch_up_and,
    of_type,
    pay,
    replay,
    state_of,
)

D = Decimal


def overdue_loan(days_late: int, *, product: ProductTerms | None = None) -> Loan:
    """A loan whose first installment (due 10 Feb) is ``days_late`` days unpaid."""
    loan = active_loan(product=product)
    loan.close_day(FIRST_DUE + timedelta(days=days_late))
    return loan


# ------------------------------------------------------------------- accrual and billing


@pytest.mark.parametrize("day_count", ["30/360", "ACT/365F"])
@pytest.mark.parametrize("method", ["annuity", "equal_principal"])
def test_daily_accruals_sum_to_each_periods_scheduled_interest(day_count: str, method: str) -> None:
    # Given a loan repaid exactly on every due date,
    loan = active_loan(day_count=day_count, method=method)
    scheduled = {i.number: (i.principal, i.interest) for i in loan.installments}
    for inst in list(loan.installments):
        pay(loan, inst.due_date, inst.principal + inst.interest)
    events = loan.collect_events()
    # then every installment bills exactly the schedule's interest and principal,
    billed = {e.number: (e.principal, e.interest) for e in of_type(events, Loan.InstallmentFellDue)}
    assert billed == scheduled
    # the posted daily accruals add up to the billed interest with no drift,
    accrued = sum((e.amount for e in of_type(events, Loan.InterestAccrued)), D(0))
    assert accrued == sum(i for _, i in scheduled.values())
    # and the last payment closes the loan.
    assert loan.status == LoanStatus.CLOSED
    assert isinstance(events[-1], Loan.Closed)


def test_interest_accrues_every_day_and_is_posted_in_minor_units() -> None:
    loan = active_loan()
    loan.collect_events()
    loan.close_day(date(2026, 1, 13))
    accruals = of_type(loan.collect_events(), Loan.InterestAccrued)
    # The disbursement day itself earns nothing; then 100000 × 12 % / 360 = 33.333… a day,
    # posted as 33.33, 33.34, 33.33: the rounding remainder is carried, never lost.
    assert [a.business_date for a in accruals] == [date(2026, 1, d) for d in (10, 11, 12, 13)]
    assert [a.amount for a in accruals] == [D("0.00"), D("33.33"), D("33.34"), D("33.33")]
    assert loan.interest_accrued == D("100.00")


def test_installment_falls_due_on_its_due_date_not_before() -> None:
    loan = active_loan()
    loan.close_day(date(2026, 2, 9))
    assert not of_type(loan.collect_events(), Loan.InstallmentFellDue)
    loan.close_day(date(2026, 2, 10))
    [due] = of_type(loan.collect_events(), Loan.InstallmentFellDue)
    assert (due.number, due.business_date) == (1, FIRST_DUE)
    assert (due.principal, due.interest) == (D("7884.88"), D("1000.00"))
    # Billing moves the accrued interest into the installment.
    assert loan.interest_accrued == D("0.00")
    assert loan.arrears_due() == D("8884.88")


def test_closing_a_day_twice_posts_nothing_the_second_time() -> None:
    loan = overdue_loan(5)
    loan.collect_events()
    loan.close_day(date(2026, 2, 15))
    loan.close_day(date(2026, 2, 1))
    assert loan.collect_events() == []


# --------------------------------------------------------------- arrears and delinquency


def test_loan_turns_overdue_only_after_the_grace_days() -> None:
    # Given a product with three grace days and an unpaid first installment,
    loan = overdue_loan(3, product=ProductTerms(grace_days=3))
    events = loan.collect_events()
    # within grace: DPD counts, but the loan is not overdue and no penalty accrues;
    assert loan.dpd_on(date(2026, 2, 13)) == 3
    assert not of_type(events, Loan.BecameOverdue) and not of_type(events, Loan.PenaltyAccrued)
    # the day after grace it becomes overdue, once.
    loan.close_day(date(2026, 2, 20))
    events = loan.collect_events()
    [overdue] = of_type(events, Loan.BecameOverdue)
    assert (overdue.business_date, overdue.dpd) == (date(2026, 2, 14), 4)
    assert overdue.oldest_due_date == FIRST_DUE
    assert overdue.overdue_principal == D("7884.88")
    assert overdue.overdue_interest == D("1000.00")


def test_delinquency_classification_follows_dpd() -> None:
    loan = overdue_loan(31)
    changes = of_type(loan.collect_events(), Loan.DelinquencyChanged)
    assert changes[0].current == {
        "dpd": 1,
        "bucket": "M1",
        "category": "special_mention",
        "stage": 1,
    }
    assert changes[-1].current == {
        "dpd": 31,
        "bucket": "M2",
        "category": "special_mention",
        "stage": 2,
    }
    loan.close_day(FIRST_DUE + timedelta(days=91))
    assert loan.classification["category"] == "substandard"
    assert loan.classification["stage"] == 3


def test_penalty_accrues_on_overdue_principal_at_marked_up_rate_with_carry() -> None:
    # Given the first installment's principal 7884.88 overdue from 11 Feb,
    loan = overdue_loan(10)
    penalties = of_type(loan.collect_events(), Loan.PenaltyAccrued)
    # a penalty posts each overdue day on the overdue principal only (no compounding),
    assert [p.business_date for p in penalties] == [date(2026, 2, d) for d in range(11, 21)]
    assert {p.base for p in penalties} == {D("7884.88")}
    # at 12 % × (1 + 0.5) = 18 % a year, 30/360: 3.94244 a day; the carry keeps the total
    # equal to the rounded cumulative exact amount.
    daily = CALC.divide(D("7884.88") * D("0.18"), D(360))
    assert penalties[0].amount == D("3.94")
    assert sum(p.amount for p in penalties) == (daily * 10).quantize(D("0.01"))
    assert loan.penalty_outstanding == sum(p.amount for p in penalties)


def test_compounding_penalty_also_charges_overdue_interest() -> None:
    loan = overdue_loan(1, product=ProductTerms(compound_penalty=True))
    [penalty] = of_type(loan.collect_events(), Loan.PenaltyAccrued)
    assert penalty.base == D("8884.88")


def penalties_by_day(loan: Loan) -> dict[date, Loan.PenaltyAccrued]:
    return {p.business_date: p for p in of_type(loan.collect_events(), Loan.PenaltyAccrued)}


def test_a_later_installment_is_charged_penalty_from_the_day_after_its_due_date() -> None:
    # Given the first installment (principal 7884.88, due 10 Feb) unpaid,
    loan = active_loan()
    # when the second (principal 7963.73) falls due on 10 Mar and is not paid either,
    loan.close_day(date(2026, 3, 11))
    penalties = penalties_by_day(loan)
    # then on 10 Mar it still earns contract interest, so only the first is in the base;
    assert penalties[date(2026, 3, 10)].base == D("7884.88")
    # from 11 Mar both are overdue: 7884.88 + 7963.73 = 15848.61, at 12 % × 1.5 = 18 % a
    # year, 30/360: 15848.61 × 0.18 / 360 = 7.924305, plus the carried rounding remainder.
    eleventh = penalties[date(2026, 3, 11)]
    assert eleventh.base == D("15848.61")
    exact = penalties[date(2026, 3, 10)].carry + D("7.924305")
    assert eleventh.amount == exact.quantize(D("0.01"))
    assert eleventh.carry == exact - eleventh.amount


def test_with_compounding_a_later_installments_interest_joins_the_base_the_day_after() -> None:
    # Given a compounding product and two unpaid installments (8884.88 each, interest included),
    loan = active_loan(product=ProductTerms(compound_penalty=True))
    loan.close_day(date(2026, 3, 11))
    penalties = penalties_by_day(loan)
    # the second one's 7963.73 + 921.15 joins the base on 11 Mar, not on its due date.
    assert penalties[date(2026, 3, 10)].base == D("8884.88")
    assert penalties[date(2026, 3, 11)].base == D("8884.88") + D("8884.88")


def test_each_installments_grace_days_count_from_its_own_due_date() -> None:
    # Given three grace days and the first installment (7884.88, due 10 Feb) unpaid,
    loan = active_loan(product=ProductTerms(grace_days=3))
    # when the second (7963.73, due 10 Mar) is not paid either,
    loan.close_day(date(2026, 3, 14))
    penalties = penalties_by_day(loan)
    # then the first is charged from 14 Feb (10 Feb + 3 days of grace < 14 Feb),
    assert min(penalties) == date(2026, 2, 14)
    # the second is not charged inside its own grace, 10-13 Mar, while the first still is:
    # 7884.88 × 0.18 / 360 = 3.94244 a day,
    for day in range(10, 14):
        assert penalties[date(2026, 3, day)].base == D("7884.88")
    # and both from 14 Mar: 15848.61 × 0.18 / 360 = 7.924305, plus the carry.
    fourteenth = penalties[date(2026, 3, 14)]
    assert fourteenth.base == D("15848.61")
    exact = penalties[date(2026, 3, 13)].carry + D("7.924305")
    assert fourteenth.amount == exact.quantize(D("0.01")) == D("7.93")


# ------------------------------------------------------------------------- repayments


def test_repayment_follows_the_waterfall_penalty_fees_interest_principal_oldest_first() -> None:
    # Given two unpaid installments, ten days of penalty and a late fee,
    loan = active_loan()
    loan.close_day(date(2026, 3, 20))
    loan.charge_fee(date(2026, 3, 20), D("50.00"), "late_fee")
    penalty = loan.penalty_outstanding
    loan.collect_events()
    # when the borrower pays enough for everything except part of the second principal,
    pay(
        loan,
        date(2026, 3, 21),
        penalty + D("50.00") + D("1000.00") + D("921.15") + D("7884.88") + D("100.00"),
    )
    [received] = of_type(loan.collect_events(), Loan.RepaymentReceived)
    lines = [
        (line["component"], line["installment"], D(line["amount"]))
        for line in received.allocation["lines"]
    ]
    # then penalty, fees, both interests (oldest first) and the oldest principal are paid,
    assert lines == [
        ("penalty", None, penalty),
        ("fees", None, D("50.00")),
        ("interest", 1, D("1000.00")),
        ("interest", 2, D("921.15")),
        ("principal", 1, D("7884.88")),
        ("principal", 2, D("100.00")),
    ]
    assert D(received.allocation["remainder"]) == 0
    assert received.prepaid_principal == 0 and received.overpayment == 0
    # and the oldest unpaid due date moves to the second installment.
    assert loan.oldest_unpaid_due_date() == date(2026, 3, 10)


def test_interest_first_product_pays_interest_before_penalty() -> None:
    loan = active_loan(product=ProductTerms(waterfall="interest_first"))
    loan.close_day(date(2026, 2, 20))
    pay(loan, date(2026, 2, 21), "1000.00")
    [received] = of_type(loan.collect_events(), Loan.RepaymentReceived)
    assert D(received.allocation["interest"]) == D("1000.00")
    assert D(received.allocation["penalty"]) == 0


def test_full_arrears_payment_cures_the_loan() -> None:
    loan = overdue_loan(10)
    pay(loan, date(2026, 2, 21), loan.arrears_due())
    loan.close_day(date(2026, 2, 21))
    assert loan.overdue_since is None
    assert loan.classification["category"] == "normal"
    assert loan.dpd_on(date(2026, 2, 21)) == 0


@pytest.mark.parametrize("option", list(PrepaymentOption))
def test_partial_prepayment_rebuilds_the_schedule_on_the_remaining_principal(
    option: PrepaymentOption,
) -> None:
    # Given a current loan just after its first installment was paid on time,
    loan = active_loan(product=ProductTerms(prepayment=option))
    pay(loan, FIRST_DUE, "8884.88")
    level = loan.future()[0].total
    remaining_count = len(loan.future())
    loan.collect_events()
    # when the borrower prepays 30000 the next day,
    pay(loan, date(2026, 2, 11), "30000.00")
    [received] = of_type(loan.collect_events(), Loan.RepaymentReceived)
    # then the day's accrued interest is settled first and the rest prepays principal,
    assert received.accrued_interest_paid == D("30.71")
    assert received.prepaid_principal == D("30000.00") - D("30.71")
    # and the new schedule's principal sums exactly to what is outstanding.
    assert received.new_schedule is not None
    assert sum(D(r["principal"]) for r in received.new_schedule) == loan.principal_not_due
    assert loan.principal_not_due == D("92115.12") - received.prepaid_principal
    if option == PrepaymentOption.SHORTEN_TERM:
        # Same installment, fewer of them.
        assert len(loan.future()) < remaining_count
        assert loan.future()[0].total == level
    else:
        # Same number of installments, each lower.
        assert len(loan.future()) == remaining_count
        assert loan.future()[0].total < level


def test_payment_between_principal_and_payoff_never_drives_principal_negative() -> None:
    # Regression: the excess over arrears used to prepay principal in full first, so a payment
    # covering all principal but not the accrued interest left principal negative and the
    # accrued interest unbillable. Accrued interest is now settled first, as at payoff.
    loan = active_loan()
    loan.close_day(date(2026, 1, 20))
    pay(loan, date(2026, 1, 21), D("100001.00"))
    assert loan.principal_not_due > 0
    assert loan.interest_accrued == 0
    # The remaining sliver is billed and repaid normally, then the loan closes.
    loan.close_day(FIRST_DUE)
    pay(loan, date(2026, 2, 11), loan.payoff_amount(date(2026, 2, 11)))
    assert loan.status == LoanStatus.CLOSED


def test_interest_settled_by_a_prepayment_is_not_posted_again() -> None:
    loan = active_loan()
    loan.close_day(date(2026, 1, 20))
    pay(loan, date(2026, 1, 21), "366.67")  # exactly the interest accrued through 21 Jan
    assert loan.interest_accrued == 0
    loan.collect_events()
    loan.close_day(date(2026, 1, 22))
    # Closing 21 Jan posts nothing more (the repayment already accrued it); 22 Jan a day's worth.
    accruals = of_type(loan.collect_events(), Loan.InterestAccrued)
    assert [a.amount for a in accruals] == [D("0.00"), D("33.33")]


def test_full_payoff_closes_the_loan_and_keeps_the_excess_as_overpayment() -> None:
    loan = active_loan()
    pay(loan, FIRST_DUE, "8884.88")
    payoff = loan.payoff_amount(date(2026, 3, 1))
    pay(loan, date(2026, 3, 1), payoff + D("12.34"))
    events = loan.collect_events()
    [received] = of_type(events, Loan.RepaymentReceived)[-1:]
    assert received.overpayment == D("12.34")
    assert isinstance(events[-1], Loan.Closed)
    assert loan.status == LoanStatus.CLOSED
    assert loan.principal_outstanding == 0
    assert loan.overpayment == D("12.34")
    # Every cent paid is accounted for as principal, interest or overpayment.
    assert loan.paid[Component.PRINCIPAL] + loan.paid[Component.INTEREST] + loan.overpayment == D(
        "8884.88"
    ) + payoff + D("12.34")


def test_overpayment_is_refused_when_the_product_forbids_it() -> None:
    loan = active_loan(product=ProductTerms(allow_overpayment=False))
    loan.close_day(date(2026, 1, 20))
    loan.collect_events()
    with pytest.raises(OverpaymentNotAllowed) as caught:
        loan.receive_repayment(date(2026, 1, 21), D("200000.00"), "CNY")
    assert (caught.value.field, caught.value.rule) == ("amount", "at_most_payoff")
    assert loan.collect_events() == []


def test_repaying_a_closed_loan_is_refused() -> None:
    loan = active_loan()
    pay(loan, date(2026, 1, 21), loan.payoff_amount(date(2026, 1, 21)))
    assert loan.status == LoanStatus.CLOSED
    loan.collect_events()
    with pytest.raises(LoanNotActive) as caught:
        loan.receive_repayment(date(2026, 1, 22), D("1.00"), "CNY")
    assert caught.value.field == "loan_id"
    assert loan.collect_events() == []


def test_payment_in_another_currency_is_refused() -> None:
    loan = active_loan()
    loan.collect_events()
    with pytest.raises(CurrencyMismatch) as caught:
        loan.receive_repayment(date(2026, 1, 20), D("100.00"), "USD")
    assert caught.value.field == "currency"
    assert loan.collect_events() == []


@pytest.mark.parametrize("amount", [D("0"), D("-5.00"), D("1.001")])
def test_bad_repayment_amounts_are_refused(amount: Decimal) -> None:
    loan = active_loan()
    loan.collect_events()
    with pytest.raises(ValidationError) as caught:
        loan.receive_repayment(date(2026, 1, 20), amount, "CNY")
    assert caught.value.field == "amount"
    assert loan.collect_events() == []


# ------------------------------------------------------------------------------- fees


def test_charged_fee_is_owed_and_paid_before_interest() -> None:
    loan = active_loan()
    loan.charge_fee(date(2026, 1, 15), D("25.00"), "statement_fee")
    [fee] = of_type(loan.collect_events(), Loan.FeeCharged)
    assert (fee.amount, fee.kind) == (D("25.00"), "statement_fee")
    assert loan.fees_outstanding == D("25.00")
    pay(loan, FIRST_DUE, "8909.88")
    assert loan.fees_outstanding == 0
    assert loan.arrears_due() == 0


@pytest.mark.parametrize("amount", ["0", "-1", "1.001"])
def test_bad_fee_amounts_are_refused(amount: str) -> None:
    loan = active_loan()
    loan.collect_events()
    with pytest.raises(ValidationError) as caught:
        loan.charge_fee(date(2026, 1, 15), D(amount), "statement_fee")
    assert caught.value.field == "amount"
    assert loan.collect_events() == []


def test_fee_given_as_string_is_booked_in_minor_units() -> None:
    loan = active_loan()
    loan.charge_fee(date(2026, 1, 15), "25", "statement_fee")  # type: ignore[arg-type]
    assert of_type(loan.collect_events(), Loan.FeeCharged)[0].amount == D("25.00")


# ------------------------------------------------------------------ write-off, recovery


def test_write_off_removes_every_balance_and_classifies_as_loss() -> None:
    loan = overdue_loan(200)
    principal, penalty = loan.principal_outstanding, loan.penalty_outstanding
    interest = loan.interest_due_unpaid() + loan.interest_accrued
    loan.write_off(date(2026, 8, 29), reason="uncollectable")
    [written_off] = of_type(loan.collect_events(), Loan.WrittenOff)
    assert (
        written_off.principal,
        written_off.interest + written_off.accrued_interest,
        written_off.penalty,
    ) == (principal, interest, penalty)
    assert written_off.accrued_interest == loan.written_off["accrued_interest"]
    assert loan.status == LoanStatus.WRITTEN_OFF
    assert loan.principal_outstanding == 0 and loan.arrears_due() == 0
    assert loan.classification["category"] == "loss"
    assert loan.classification["stage"] == 3
    # Nothing accrues on a written-off loan, and it takes no ordinary repayments.
    loan.close_day(date(2026, 12, 31))
    assert loan.collect_events() == []
    with pytest.raises(LoanNotActive):
        loan.receive_repayment(date(2026, 9, 1), D("100.00"), "CNY")


def test_write_off_classifies_with_the_dpd_on_its_date_and_records_it() -> None:
    # Given a loan 200 days late, last reclassified when it reached M7+ at DPD 181,
    loan = overdue_loan(200)
    assert loan.classification["dpd"] == 181
    # when it is written off on day 200,
    loan.write_off(date(2026, 8, 29), reason="uncollectable")
    [written_off] = of_type(loan.collect_events(), Loan.WrittenOff)
    # then the event records DPD 200 (29 Aug − 10 Feb), not the last transition's 181, and
    # the loan keeps it: `loan show` prints the DPD at write-off.
    assert written_off.dpd == 200
    assert loan.classification == {"dpd": 200, "bucket": "M7+", "category": "loss", "stage": 3}
    assert loan.current_dpd == 200


def test_a_write_off_stored_without_its_dpd_classifies_as_it_always_did() -> None:
    # Given a WrittenOff event as stored before it carried the DPD (upcast to dpd None),
    loan = overdue_loan(200)
    loan.write_off(date(2026, 8, 29), reason="uncollectable")
    events = loan.collect_events()
    old = dict(vars(events[-1]))
    del old["dpd"]
    Loan.WrittenOff.upcast_v1_v2(old)
    legacy = object.__new__(Loan.WrittenOff)
    object.__setattr__(legacy, "__dict__", old)
    # replay classifies it with the DPD of the last transition, as before.
    replayed = replay([*events[:-1], legacy])
    assert legacy.dpd is None
    assert replayed.classification["dpd"] == 181
    assert replayed.classification["category"] == "loss"


def test_installment_states_tell_paid_from_due_from_scheduled() -> None:
    # Given a loan whose first installment was paid on its due date and whose second is late,
    loan = active_loan()
    pay(loan, FIRST_DUE, "8884.88")
    loan.close_day(date(2026, 3, 20))
    first, second, third = loan.installments[:3]
    # the paid one shows "paid", the late one "due" and the next "scheduled";
    assert (first.state, second.state, third.state) == ("paid", "due", "scheduled")
    # a partial payment leaves it "due", the rest of it makes it "paid".
    pay(loan, date(2026, 3, 21), loan.penalty_outstanding + D("921.15"))
    assert second.state == "due"
    catch_up_and(loan, date(2026, 3, 22))
    pay(loan, date(2026, 3, 22), loan.arrears_due())
    assert second.state == "paid"


def test_written_off_installments_show_as_written_off_not_paid() -> None:
    # Given the first installment paid and the second unpaid,
    loan = active_loan()
    pay(loan, FIRST_DUE, "8884.88")
    loan.close_day(date(2026, 4, 1))
    # when the loan is written off, what was left unpaid or not yet due shows "written_off",
    loan.write_off(date(2026, 4, 2), reason="fraud")
    assert [i.state for i in loan.installments[:4]] == [
        "paid",
        "written_off",
        "written_off",
        "written_off",
    ]
    assert {i.closed_by for i in loan.installments[1:]} == {"written_off"}
    assert loan.installments[0].closed_by == ""
    # and a replay shows the same.
    assert [i.state for i in replay(loan.collect_events()).installments] == [
        i.state for i in loan.installments
    ]


def test_recovery_after_write_off_is_recorded() -> None:
    loan = overdue_loan(200)
    loan.write_off(date(2026, 8, 29), reason="uncollectable")
    loan.receive_recovery(date(2026, 9, 15), D("5000.00"), "CNY", reference="collector-7")
    [recovery] = of_type(loan.collect_events(), Loan.RecoveryReceived)
    assert (recovery.amount, recovery.reference) == (D("5000.00"), "collector-7")
    assert loan.recovered == D("5000.00")


def test_recovery_on_an_active_loan_is_refused() -> None:
    loan = active_loan()
    loan.collect_events()
    with pytest.raises(LoanNotActive) as caught:
        loan.receive_recovery(date(2026, 2, 1), D("1.00"), "CNY")
    assert caught.value.rule == "written_off"
    assert loan.collect_events() == []


def test_recovery_cannot_be_dated_before_the_write_off() -> None:
    # A recovery dated before the write-off would put cash before the charge-off in the journal.
    loan = overdue_loan(10)
    loan.write_off(date(2026, 3, 1), reason="fraud")
    loan.collect_events()
    with pytest.raises(InvalidDate) as caught:
        loan.receive_recovery(date(2026, 2, 25), D("1.00"), "CNY")
    assert (caught.value.field, caught.value.rule) == ("business_date", "not_backdated")
    assert loan.collect_events() == []


def test_written_off_loan_replays_to_the_same_state() -> None:
    loan = overdue_loan(40)
    loan.write_off(date(2026, 3, 25), reason="uncollectable")
    loan.receive_recovery(date(2026, 4, 1), D("10.00"), "CNY")
    assert state_of(replay(loan.collect_events())) == state_of(loan)
