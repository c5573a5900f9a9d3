"""Invariants of the Loan aggregate over random lives: jumps of end of day, repayments of any
size, fees, restructures, write-off and recovery."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.allocation import Component
from domain.daycount import DayCount
from domain.errors import InvariantViolated, LedgerError
from domain.loan import Loan, LoanStatus, RestructureKind
from domain.terms import PrepaymentOption, ProductTerms
from tests.factories import active_loan, make_terms, of_type, replay, state_of

D = Decimal
CENT = D("0.01")
PROPERTY_SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@dataclass(frozen=True)
class Step:
    kind: str
    days: int  # how far the business date moves before the command
    size: int  # per-mille of the reference amount (or extra months / new term)


steps = st.builds(
    Step,
    kind=st.sampled_from(
        [
            "eod",
            "eod",
            "repay_due",
            "repay_random",
            "repay_payoff",
            "repay_short_of_payoff",
            "fee",
            "extend",
            "rate",
            "reamortize",
            "capitalize",
            "write_off",
            "recover",
        ]
    ),
    days=st.integers(min_value=0, max_value=75),
    size=st.integers(min_value=1, max_value=1100),
)

loans = st.builds(
    lambda principal, rate, term, method, prepayment, grace, waterfall: active_loan(
        make_terms(
            product=ProductTerms(prepayment=prepayment, grace_days=grace, waterfall=waterfall),
            principal=str(principal),
            annual_rate=str(rate),
            term=term,
            method=method,
        )
    ),
    principal=st.integers(min_value=1000, max_value=500_000),
    rate=st.sampled_from([D("0"), D("0.0435"), D("0.12"), D("0.24")]),
    term=st.integers(min_value=1, max_value=24),
    method=st.sampled_from(["annuity", "equal_principal"]),
    prepayment=st.sampled_from(list(PrepaymentOption)),
    grace=st.sampled_from([0, 3]),
    waterfall=st.sampled_from(["standard", "interest_first", "principal_first"]),
)


def per_mille(amount: Decimal, size: int) -> Decimal:
    return max(CENT, (amount * size / 1000).quantize(CENT))


def run_step(loan: Loan, today: date, step: Step) -> None:
    """Drive one command the way the application does: close the days before it first."""
    if step.kind == "eod":
        loan.close_day(today)
        return
    loan.close_day(today - timedelta(days=1))
    commands: dict[str, Callable[[], None]] = {
        "repay_due": lambda: loan.receive_repayment(
            today, per_mille(loan.arrears_due() or CENT, step.size), "CNY"
        ),
        "repay_random": lambda: loan.receive_repayment(
            today, per_mille(loan.principal_outstanding or CENT, step.size // 4 + 1), "CNY"
        ),
        "repay_payoff": lambda: loan.receive_repayment(
            today, loan.payoff_amount(today) + per_mille(D(10), step.size), "CNY"
        ),
        # Short of payoff by a few cents: more than all principal, less than the accrued interest.
        "repay_short_of_payoff": lambda: loan.receive_repayment(
            today, max(CENT, loan.payoff_amount(today) - step.size * CENT), "CNY"
        ),
        "fee": lambda: loan.charge_fee(today, per_mille(D(100), step.size), "service"),
        "extend": lambda: loan.restructure(
            today, RestructureKind.EXTENSION, extend_months=step.size % 12 + 1
        ),
        "rate": lambda: loan.restructure(
            today, RestructureKind.RATE_CHANGE, new_annual_rate=D(step.size % 25) / 100
        ),
        "reamortize": lambda: loan.restructure(
            today, RestructureKind.REAMORTIZATION, new_term=step.size % 36 + 1
        ),
        "capitalize": lambda: loan.restructure(today, RestructureKind.CAPITALIZATION),
        "write_off": lambda: loan.write_off(today, "uncollectable"),
        "recover": lambda: loan.receive_recovery(today, per_mille(D(1000), step.size), "CNY"),
    }
    pending_before = len(loan.pending_events)
    try:
        commands[step.kind]()
    except InvariantViolated:
        raise  # a bug, never a refusal: no random life may provoke it
    except LedgerError:
        # A refused command (e.g. repaying a closed loan) adds nothing beyond the catch-up.
        assert len(loan.pending_events) == pending_before


def live(loan: Loan, plan: list[Step], check: Callable[[Loan], None]) -> list[Any]:
    """Run ``plan`` on ``loan``, checking after every step; returns every event."""
    events: list[Any] = list(loan.collect_events())
    today = loan.disbursed_on
    assert today is not None
    check(loan)
    for step in plan:
        today += timedelta(days=step.days)
        run_step(loan, today, step)
        check(loan)
        events += loan.collect_events()
    return events


def check_principal_conserved(loan: Loan) -> None:
    written_off = loan.written_off.get("principal", D(0))
    assert loan.principal_not_due >= 0
    assert all(i.principal_unpaid >= 0 for i in loan.billed())
    assert (
        loan.disbursed + loan.capitalized
        == loan.principal_outstanding + loan.paid[Component.PRINCIPAL] + written_off
    )


@PROPERTY_SETTINGS
@given(loan=loans, plan=st.lists(steps, max_size=12))
def test_principal_is_conserved(loan: Loan, plan: list[Step]) -> None:
    live(loan, plan, check_principal_conserved)


@PROPERTY_SETTINGS
@given(loan=loans, plan=st.lists(steps, max_size=12))
def test_replay_equals_live(loan: Loan, plan: list[Step]) -> None:
    events = live(loan, plan, lambda _: None)
    assert state_of(replay(events)) == state_of(loan)


@PROPERTY_SETTINGS
@given(loan=loans, plan=st.lists(steps, max_size=12))
def test_trial_of_money_is_balanced(loan: Loan, plan: list[Step]) -> None:
    events = live(loan, plan, lambda _: None)
    repayments = of_type(events, Loan.RepaymentReceived)
    for r in repayments:
        components = sum((D(r.allocation[c.value]) for c in Component), D(0))
        assert r.amount == (
            components + r.prepaid_principal + r.accrued_interest_paid + r.overpayment
        )
    # Whatever was received is on the loan's books as paid or held as overpayment.
    received = sum((r.amount for r in repayments), D(0))
    assert received == sum(loan.paid.values(), D(0)) + loan.overpayment
    # A closed loan owes nothing, and an active one never has a negative balance.
    if loan.status == LoanStatus.CLOSED:
        assert loan.payoff_amount() == 0
    assert loan.payoff_amount() >= 0


@PROPERTY_SETTINGS
@given(
    principal=st.integers(min_value=100_00, max_value=2_000_000_00),
    rate=st.integers(min_value=0, max_value=2400),
    term=st.integers(min_value=1, max_value=36),
    day_count=st.sampled_from(list(DayCount)),
    method=st.sampled_from(["annuity", "equal_principal"]),
    disbursed_on=st.dates(min_value=date(2024, 1, 1), max_value=date(2030, 12, 31)),
    first_period=st.integers(min_value=1, max_value=62),
)
def test_sum_of_daily_accruals_equals_period_interest(
    principal: int,
    rate: int,
    term: int,
    day_count: DayCount,
    method: str,
    disbursed_on: date,
    first_period: int,
) -> None:
    loan = active_loan(
        make_terms(
            principal=str(D(principal) / 100),
            annual_rate=str(D(rate) / 10000),
            term=term,
            method=method,
            day_count=str(day_count),
        ),
        disbursed_on=disbursed_on,
        first_due=disbursed_on + timedelta(days=first_period),
    )
    scheduled = {i.number: i.interest for i in loan.installments}
    # The borrower pays every installment on its due date.
    for inst in list(loan.installments):
        loan.close_day(inst.due_date - timedelta(days=1))
        loan.receive_repayment(inst.due_date, inst.total, "CNY")
    events = loan.collect_events()
    billed = {e.number: e.interest for e in of_type(events, Loan.InstallmentFellDue)}
    assert billed == scheduled
    assert sum((e.amount for e in of_type(events, Loan.InterestAccrued)), D(0)) == sum(
        scheduled.values(), D(0)
    )
    assert loan.status == LoanStatus.CLOSED
