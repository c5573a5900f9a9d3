"""The repayment planner (``domain.loan.repayment``), called directly over random loans and
payments: a payment's parts add up to it, what is billed is paid first, accrued interest is
settled before principal is prepaid, a loan is paid off exactly when the payment covers
everything, and a rebuilt schedule carries exactly the principal left."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.allocation import DueItem
from domain.loan import InstallmentState
from domain.loan.repayment import RepaymentPlan, due_items, plan_repayment
from domain.terms import LoanTerms, PrepaymentOption, ProductTerms
from tests.factories import installments_of, make_terms

D = Decimal
CENT = D("0.01")
FAST = settings(max_examples=80, deadline=None)


@dataclass(frozen=True)
class Case:
    terms: LoanTerms
    installments: list[InstallmentState]
    items: list[DueItem]
    principal_not_due: Decimal
    interest_accrued: Decimal
    amount: Decimal

    @property
    def future(self) -> list[InstallmentState]:
        return [i for i in self.installments if not i.fell_due]

    @property
    def billed_due(self) -> Decimal:
        return sum((i.amount for i in self.items), D(0))

    @property
    def everything(self) -> Decimal:
        return self.billed_due + self.principal_not_due + self.interest_accrued

    def plan(self) -> RepaymentPlan:
        return plan_repayment(
            self.amount,
            self.items,
            principal_not_due=self.principal_not_due,
            interest_accrued=self.interest_accrued,
            future=self.future,
            annual_rate=self.terms.annual_rate,
            terms=self.terms,
        )


@st.composite
def cases(draw: st.DrawFn) -> Case:
    product = ProductTerms(
        prepayment=draw(st.sampled_from(list(PrepaymentOption))),
        waterfall=draw(
            st.sampled_from(["standard", "interest_first", "principal_first", "by_installment"])
        ),
    )
    terms = make_terms(
        product=product,
        principal=str(draw(st.integers(1000, 500_000))),
        annual_rate=draw(st.sampled_from(["0", "0.0435", "0.12", "0.24"])),
        term=draw(st.integers(1, 36)),
        method=draw(st.sampled_from(["annuity", "equal_principal"])),
    )
    installments = installments_of(terms, billed=draw(st.integers(0, terms.term)))
    billed = [i for i in installments if i.fell_due]
    for inst in billed:  # something already paid against some of them
        inst.principal_paid = min(inst.principal, CENT * draw(st.integers(0, 50_000)))
    cents = st.integers(0, 100_000).map(lambda n: CENT * n)
    oldest = billed[0].due_date if billed else date(2026, 2, 10)
    items = due_items(billed, draw(cents), draw(cents), oldest)
    principal_not_due = sum((i.principal for i in installments if not i.fell_due), D(0))
    interest_accrued = draw(cents)
    owed = sum((i.amount for i in items), D(0)) + principal_not_due + interest_accrued
    # From a cent to a fifth more than everything owed, and exactly everything now and then.
    per_mille = draw(st.integers(0, 1200))
    amount = owed if per_mille == 1000 else (owed * per_mille / 1000).quantize(CENT)
    return Case(terms, installments, items, principal_not_due, interest_accrued, max(CENT, amount))


@FAST
@given(cases())
def test_a_repayments_split_sums_to_the_amount(case: Case) -> None:
    plan = case.plan()
    parts = (
        plan.allocation.allocated,
        plan.accrued_interest_paid,
        plan.prepaid_principal,
        plan.overpayment,
    )
    assert sum(parts, D(0)) == case.amount
    assert all(part >= 0 for part in parts)
    assert all(line.amount > 0 for line in plan.allocation.lines)


@FAST
@given(cases())
def test_what_is_billed_is_paid_before_anything_else(case: Case) -> None:
    plan = case.plan()
    if plan.accrued_interest_paid or plan.prepaid_principal or plan.overpayment:
        assert plan.allocation.allocated == case.billed_due
    else:
        assert plan.allocation.allocated == case.amount


@FAST
@given(cases())
def test_accrued_interest_is_settled_before_principal_is_prepaid(case: Case) -> None:
    plan = case.plan()
    assert plan.accrued_interest_paid <= case.interest_accrued
    assert plan.prepaid_principal <= case.principal_not_due
    if plan.prepaid_principal:
        assert plan.accrued_interest_paid == case.interest_accrued


@FAST
@given(cases())
def test_a_payment_pays_off_exactly_when_it_covers_everything(case: Case) -> None:
    plan = case.plan()
    assert plan.pays_off == (case.amount >= case.everything and case.amount > case.billed_due)
    if plan.pays_off:
        # all principal and accrued interest settled, the rest held, no schedule left
        assert plan.prepaid_principal == case.principal_not_due
        assert plan.accrued_interest_paid == case.interest_accrued
        assert plan.overpayment == case.amount - case.everything
        assert plan.new_schedule == []
    else:
        assert plan.overpayment == 0


@FAST
@given(cases())
def test_a_rebuilt_schedule_carries_the_principal_left_on_the_same_due_dates(case: Case) -> None:
    plan = case.plan()
    if plan.pays_off or not plan.prepaid_principal:
        assert plan.new_schedule in ([], None) and (plan.pays_off or plan.new_schedule is None)
        return
    new, future = plan.new_schedule, case.future
    assert new is not None
    assert sum((i.principal for i in new), D(0)) == case.principal_not_due - plan.prepaid_principal
    assert [(i.number, i.due_date) for i in new] == [(i.number, i.due_date) for i in future][
        : len(new)
    ]
    if case.terms.product.prepayment == PrepaymentOption.LOWER_INSTALLMENT:
        assert len(new) == len(future)
