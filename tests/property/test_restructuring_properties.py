"""The restructure planner (``domain.loan.restructuring``), called directly over random loans
in mid-life: principal is conserved across a capitalization, the new schedule's principal is
the reamortized principal, and the schedule starts after the restructure day, numbered on from
the last billed installment, monthly on its first due date's day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from domain.loan import InstallmentState, RestructureKind
from domain.loan.restructuring import RestructurePlan, plan_restructure
from domain.schedule import monthly_due_dates
from domain.terms import LoanTerms
from tests.factories import DISBURSED_ON, installments_of, make_terms

D = Decimal
CENT = D("0.01")
FAST = settings(max_examples=80, deadline=None)


@dataclass(frozen=True)
class Case:
    kind: RestructureKind
    capitalize_arrears: bool
    extend_months: int
    new_term: int
    new_annual_rate: Decimal
    terms: LoanTerms
    installments: list[InstallmentState]
    business_date: date
    principal_not_due: Decimal
    principal_due: Decimal
    interest_due: Decimal
    penalty: Decimal
    fees: Decimal

    @property
    def capitalizes(self) -> bool:
        return self.capitalize_arrears or self.kind == RestructureKind.CAPITALIZATION

    def plan(self) -> RestructurePlan:
        return plan_restructure(
            self.kind,
            business_date=self.business_date,
            terms=self.terms,
            annual_rate=self.terms.annual_rate,
            installments=self.installments,
            principal_not_due=self.principal_not_due,
            principal_due=self.principal_due,
            interest_due=self.interest_due,
            penalty=self.penalty,
            fees=self.fees,
            extend_months=self.extend_months,
            new_term=self.new_term,
            new_annual_rate=self.new_annual_rate,
            capitalize_arrears=self.capitalize_arrears,
        )


@st.composite
def cases(draw: st.DrawFn, *, capitalizing: bool | None = None) -> Case:
    terms = make_terms(
        principal=str(draw(st.integers(1000, 500_000))),
        annual_rate=draw(st.sampled_from(["0", "0.0435", "0.12", "0.24"])),
        term=draw(st.integers(1, 36)),
        method=draw(st.sampled_from(["annuity", "equal_principal"])),
        day_count=draw(st.sampled_from(["30/360", "ACT/365F", "ACT/ACT"])),
    )
    installments = installments_of(terms, billed=draw(st.integers(0, terms.term)))
    billed = [i for i in installments if i.fell_due]
    last = billed[-1].due_date if billed else DISBURSED_ON
    kind = draw(st.sampled_from(list(RestructureKind)))
    capitalize = draw(st.booleans()) if capitalizing is None else capitalizing
    if capitalizing is False:
        assume(kind != RestructureKind.CAPITALIZATION)
    cents = st.integers(0, 100_000).map(lambda n: CENT * n)
    billed_principal = sum((i.principal for i in billed), D(0))
    return Case(
        kind=kind,
        capitalize_arrears=capitalize,
        extend_months=draw(st.integers(1, 120)),
        new_term=draw(st.integers(1, 600)),
        new_annual_rate=draw(st.sampled_from([D("0"), D("0.06"), D("0.24")])),
        terms=terms,
        installments=installments,
        business_date=last + timedelta(days=draw(st.integers(0, 75))),
        principal_not_due=sum((i.principal for i in installments if not i.fell_due), D(0)),
        principal_due=min(billed_principal, draw(cents)),
        interest_due=draw(cents),
        penalty=draw(cents),
        fees=draw(cents),
    )


def schedule_principal(plan: RestructurePlan) -> Decimal:
    return sum((i.principal for i in plan.schedule), D(0))


@FAST
@given(cases(capitalizing=True))
def test_principal_is_conserved_across_a_capitalization(case: Case) -> None:
    plan = case.plan()
    arrears = case.interest_due + case.penalty + case.fees
    assert (
        plan.capitalized
        == arrears
        == (plan.capitalized_interest + plan.capitalized_penalty + plan.capitalized_fees)
    )
    before = case.principal_not_due + case.principal_due
    assert plan.principal_outstanding == before
    assert plan.reamortized_principal == before + arrears == schedule_principal(plan)


@FAST
@given(cases())
def test_a_restructure_plans_schedule_principal_is_the_reamortized_principal(case: Case) -> None:
    assume(
        case.principal_not_due
        + case.principal_due
        + (case.interest_due + case.penalty + case.fees if case.capitalizes else 0)
        > 0
    )
    plan = case.plan()
    assert schedule_principal(plan) == plan.reamortized_principal
    assert all(i.principal >= 0 and i.interest >= 0 for i in plan.schedule)
    if not case.capitalizes:
        assert plan.capitalized == 0
        assert plan.reamortized_principal == case.principal_not_due + case.principal_due


@FAST
@given(cases())
def test_the_new_schedule_starts_after_the_day_and_numbers_on_from_the_last_billed(
    case: Case,
) -> None:
    assume(case.principal_not_due + case.principal_due > 0)
    plan = case.plan()
    billed = [i for i in case.installments if i.fell_due]
    remaining = len(case.installments) - len(billed)
    expected_term = {
        RestructureKind.EXTENSION: remaining + case.extend_months,
        RestructureKind.REAMORTIZATION: case.new_term,
    }.get(case.kind, max(remaining, 1))
    assert plan.term == expected_term and 1 <= len(plan.schedule) <= plan.term
    first = plan.schedule[0]
    assert first.due_date > case.business_date
    assert first.number == (billed[-1].number + 1 if billed else 1)
    assert [i.number for i in plan.schedule] == list(
        range(first.number, first.number + len(plan.schedule))
    )
    assert [i.due_date for i in plan.schedule] == monthly_due_dates(
        first.due_date, len(plan.schedule)
    )
    if case.kind == RestructureKind.RATE_CHANGE:
        assert plan.annual_rate == case.new_annual_rate
    else:
        assert plan.annual_rate == case.terms.annual_rate
