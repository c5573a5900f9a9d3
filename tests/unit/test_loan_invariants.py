"""No input can post wrong money (issue 8).

* Every event's parts add up to its total, checked by the domain before the event is triggered:
  a broken calculation raises ``InvariantViolated`` (a bug, kind "failed") naming the event and
  its parts, and nothing is recorded. The tests break one calculation on purpose (a cent dropped
  from an allocation or a schedule) to see the check fire.
* A loan's accumulated balances stay within ``Currency.max_amount``, the largest amount every
  table stores exactly: commands that would grow one past it are refused (rule
  ``balance_limit``), and single amounts above it are refused as before (rule ``max_amount``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from domain.allocation import Allocation, AllocationLine, DueItem, Waterfall, allocate
from domain.errors import InvalidAmount, InvariantViolated, LedgerError
from domain.loan import Loan, RestructureKind, aggregate, repayment, restructuring
from domain.money import Currency
from domain.schedule import Installment
from tests.factories import (
    FIRST_DUE,
    active_loan,
    approved_loan,
    catch_up_and,
    of_type,
    pay,
)

D = Decimal
CENT = D("0.01")
CNY_MAX = Currency.of("CNY").max_amount  # 10^11: 13 significant digits with the two decimals


def refused(
    loan: Loan, command: Callable[[], None], error: type[LedgerError] = InvariantViolated
) -> LedgerError:
    """Given a loan with nothing pending, the command raises and records nothing."""
    loan.collect_events()
    with pytest.raises(error) as caught:
        command()
    assert loan.collect_events() == []
    return caught.value


def overdue_on(day: date, **overrides: Any) -> Loan:
    """A loan whose first installment (due 10 Feb) is unpaid, closed through ``day``: a
    command on ``day`` has no catch-up left to post."""
    loan = active_loan(**overrides)
    loan.close_day(day)
    loan.collect_events()
    return loan


def short_by_a_cent(schedule: list[Installment]) -> list[Installment]:
    last = schedule[-1]
    return [
        *schedule[:-1],
        Installment(
            last.number, last.start_date, last.due_date, last.principal - CENT, last.interest
        ),
    ]


# ------------------------------------------------------------------- RepaymentReceived


def test_a_repayment_whose_allocation_drops_a_cent_is_not_recorded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a broken allocation that loses a cent of the first line (the remainder unchanged),
    def lossy(payment: Decimal, items: Sequence[DueItem], waterfall: Waterfall) -> Allocation:
        good = allocate(payment, items, waterfall)
        first = good.lines[0]
        line = AllocationLine(
            first.component, first.due_date, first.amount - CENT, first.installment
        )
        return Allocation((line, *good.lines[1:]), good.remainder)

    monkeypatch.setattr(repayment, "allocate", lossy)
    loan = overdue_on(date(2026, 2, 20))
    # when 1000.00 is paid, the parts add up to 999.99: refused, naming the event and parts.
    error = refused(loan, lambda: loan.receive_repayment(date(2026, 2, 20), D("1000.00"), "CNY"))
    assert error.kind == "failed" and error.rule == "parts_sum_to_total"
    assert error.message.startswith("RepaymentReceived: ")
    assert "allocated penalty" in error.message and "not amount 1000.00" in error.message


def test_a_repayment_whose_allocation_misstates_a_components_total_is_not_recorded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given an allocation whose stored interest total says a cent more than its lines,
    real_as_dict = Allocation.as_dict

    def misstated(self: Allocation) -> dict[str, object]:
        data = real_as_dict(self)
        data["interest"] = str(D(str(data["interest"])) + CENT)
        return data

    monkeypatch.setattr(Allocation, "as_dict", misstated)
    loan = overdue_on(date(2026, 2, 20))
    error = refused(loan, lambda: loan.receive_repayment(date(2026, 2, 20), D("2000.00"), "CNY"))
    assert error.field == "allocation interest"
    assert "interest lines 1000.00" in error.message


def test_a_prepayment_whose_new_schedule_loses_a_cent_is_not_recorded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a schedule builder that leaves a cent of principal out of the rebuilt plan,
    real = repayment.rebuilt_schedule
    monkeypatch.setattr(repayment, "rebuilt_schedule", lambda *args: short_by_a_cent(real(*args)))
    loan = active_loan()
    loan.close_day(date(2026, 1, 20))
    loan.collect_events()
    # a prepayment of 10000.00 on 20 Jan (333.33 accrued interest first) is refused.
    error = refused(loan, lambda: loan.receive_repayment(date(2026, 1, 20), D("10000.00"), "CNY"))
    assert error.message.startswith(
        "RepaymentReceived: schedule principal 90333.32 = 90333.32,"
        " not principal not due after the prepayment 90333.33"
    )


# ---------------------------------------------------------------------- Restructured


def test_a_restructure_whose_schedule_loses_a_cent_is_not_recorded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = restructuring.schedule_from
    monkeypatch.setattr(restructuring, "schedule_from", lambda *args: short_by_a_cent(real(*args)))
    loan = overdue_on(date(2026, 3, 1))
    error = refused(
        loan, lambda: loan.restructure(date(2026, 3, 1), RestructureKind.EXTENSION, extend_months=6)
    )
    assert error.message.startswith("Restructured: schedule principal")
    assert error.field == "reamortized_principal"


def test_a_restructure_capitalizing_a_negative_part_is_not_recorded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a (broken) loan whose unpaid interest comes out negative,
    monkeypatch.setattr(Loan, "interest_due_unpaid", lambda self: D("-1.00"))
    loan = overdue_on(date(2026, 3, 1))
    error = refused(
        loan, lambda: loan.restructure(date(2026, 3, 1), RestructureKind.CAPITALIZATION)
    )
    assert (error.field, error.rule) == ("capitalized_interest", "non_negative")
    assert error.message == "Restructured: capitalized_interest -1.00 is negative"


# ------------------------------------------------------------------------ WrittenOff


def test_a_write_off_with_more_principal_due_than_principal_is_not_recorded() -> None:
    # Given a (broken) loan whose principal not yet due has gone below zero,
    loan = overdue_on(date(2026, 3, 1))
    loan.principal_not_due = D("-100.00")
    # the write-off would say more principal is due than there is principal: refused.
    error = refused(loan, lambda: loan.write_off(date(2026, 3, 1), "uncollectable"))
    assert error.message == "WrittenOff: principal_due 7884.88 is more than principal 7784.88"


def test_a_write_off_with_a_negative_part_is_not_recorded() -> None:
    loan = overdue_on(date(2026, 3, 1))
    loan.fees_outstanding = D("-5.00")
    error = refused(loan, lambda: loan.write_off(date(2026, 3, 1), "uncollectable"))
    assert (error.field, error.rule) == ("fees", "non_negative")


# ------------------------------------------------- Disbursed, end of day's own events


def test_a_disbursement_whose_schedule_loses_a_cent_is_not_recorded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = aggregate.build_schedule
    monkeypatch.setattr(
        aggregate, "build_schedule", lambda **kwargs: short_by_a_cent(real(**kwargs))
    )
    loan = approved_loan()
    error = refused(loan, lambda: loan.disburse(date(2026, 1, 10), first_due=FIRST_DUE))
    assert error.message == (
        "Disbursed: schedule principal 99999.99 = 99999.99, not amount 100000.00"
    )


def test_a_negative_daily_accrual_is_not_recorded() -> None:
    # Given a (broken) loan that has posted more interest than the period has accrued,
    loan = overdue_on(date(2026, 1, 20))
    loan.interest_accrued = D("1000.00")
    # closing the next day would post a negative accrual: refused.
    error = refused(loan, lambda: loan.close_day(date(2026, 1, 21)))
    assert (error.field, error.rule) == ("amount", "non_negative")
    assert error.message.startswith("InterestAccrued: amount -")


def test_an_installment_billing_negative_principal_is_not_recorded() -> None:
    # Given a (broken) schedule whose first installment has negative principal,
    loan = overdue_on(date(2026, 2, 9))
    loan.installments[0].principal = D("-1.00")
    with pytest.raises(InvariantViolated) as caught:
        loan.close_day(FIRST_DUE)
    assert caught.value.message == "InstallmentFellDue: principal -1.00 is negative"
    # the installment is not billed. (The day's accrual before it is pending in memory, but
    # close_day raised, so neither a command nor end of day saves this loan.)
    assert not of_type(loan.collect_events(), Loan.InstallmentFellDue)
    assert not loan.installments[0].fell_due


def test_a_zero_daily_accrual_is_legitimate() -> None:
    # 30/360 counts 31 Jan as no day at all after a period starting on the 10th (D1 < 30
    # keeps D2 = 31, so 1 Feb is day 21 again): 31 Jan accrues 33.33, 1 Feb posts zero.
    loan = active_loan()
    loan.close_day(date(2026, 2, 1))
    amounts = {
        a.business_date: a.amount for a in of_type(loan.collect_events(), Loan.InterestAccrued)
    }
    assert amounts[date(2026, 2, 1)] == 0


# ------------------------------------------------------------------ bounded balances


def test_a_fee_may_not_take_fees_outstanding_past_the_largest_balance() -> None:
    # Given fees outstanding at the largest amount a CNY balance may hold (10^11),
    loan = active_loan()
    loan.charge_fee(date(2026, 1, 15), CNY_MAX, "legal")
    # one more cent is refused, naming the limit.
    error = refused(
        loan, lambda: loan.charge_fee(date(2026, 1, 15), CENT, "statement_fee"), InvalidAmount
    )
    assert (error.field, error.rule) == ("amount", "balance_limit")
    assert "100,000,000,000.00 CNY" in error.message
    assert "fees outstanding would be 100,000,000,000.01 CNY" in error.message


def test_a_single_amount_above_the_maximum_is_refused() -> None:
    loan = active_loan()
    error = refused(
        loan, lambda: loan.charge_fee(date(2026, 1, 15), CNY_MAX + CENT, "legal"), InvalidAmount
    )
    assert (error.field, error.rule) == ("amount", "max_amount")
    error = refused(
        loan,
        lambda: loan.receive_repayment(date(2026, 1, 10), CNY_MAX + CENT, "CNY"),
        InvalidAmount,
    )
    assert (error.field, error.rule) == ("amount", "max_amount")


def test_a_recovery_may_not_take_the_recovered_total_past_the_largest_balance() -> None:
    loan = overdue_on(date(2026, 3, 1))
    loan.write_off(date(2026, 3, 1), "uncollectable")
    loan.receive_recovery(date(2026, 3, 2), CNY_MAX, "CNY")
    error = refused(
        loan, lambda: loan.receive_recovery(date(2026, 3, 2), CENT, "CNY"), InvalidAmount
    )
    assert (error.field, error.rule) == ("amount", "balance_limit")
    assert "recovered would be" in error.message


def test_a_repayment_may_not_take_the_held_overpayment_past_the_largest_balance() -> None:
    # A loan holds an overpayment only once it is paid off today; the guard stands for a loan
    # that would keep one while active (set here by hand).
    loan = active_loan()
    loan.close_day(date(2026, 1, 20))
    loan.overpayment = CNY_MAX
    payoff = loan.payoff_amount(date(2026, 1, 20))
    error = refused(
        loan, lambda: loan.receive_repayment(date(2026, 1, 20), payoff + CENT, "CNY"), InvalidAmount
    )
    assert (error.field, error.rule) == ("amount", "balance_limit")
    assert "the overpayment held would be" in error.message


def test_capitalization_may_not_take_principal_past_the_largest_balance() -> None:
    # Given a loan of the largest principal a CNY loan may have, a month and a half overdue,
    loan = overdue_on(date(2026, 3, 21), principal=str(CNY_MAX))
    assert loan.interest_due_unpaid() > 0
    # capitalizing its arrears would grow principal past the limit: refused, the flag named;
    error = refused(
        loan,
        lambda: loan.restructure(
            date(2026, 3, 21), RestructureKind.EXTENSION, extend_months=3, capitalize_arrears=True
        ),
        InvalidAmount,
    )
    assert (error.field, error.rule) == ("capitalize_arrears", "balance_limit")
    assert "principal after capitalization would be" in error.message
    error = refused(
        loan,
        lambda: loan.restructure(date(2026, 3, 21), RestructureKind.CAPITALIZATION),
        InvalidAmount,
    )
    assert (error.field, error.rule) == ("kind", "balance_limit")
    # while an extension that capitalizes nothing is still allowed.
    catch_up_and(loan, date(2026, 3, 21)).restructure(
        date(2026, 3, 21), RestructureKind.EXTENSION, extend_months=3
    )
    assert of_type(loan.collect_events(), Loan.Restructured)


def test_paying_on_the_due_date_posts_nothing_wrong() -> None:
    # The checks are quiet on a normal life: a loan paid on each due date closes.
    loan = active_loan()
    for inst in list(loan.installments):
        pay(loan, inst.due_date, inst.total)
    assert loan.principal_outstanding == 0
