"""What a loan owes and since when: read-only queries over its state (``LoanPosition``).

``Loan`` inherits these. None of them changes state or triggers an event, so a command, an
event's ``apply``, a view or a test may call any of them at any time. They rely on the state's
order: installments in due-date order, billed ones first (``billed`` and ``future`` keep it;
``penalty_base`` stops at the first installment not yet overdue).

- principal outstanding = principal not yet due + billed principal unpaid; what is due
  (arrears) is billed principal and interest unpaid, penalty and fees;
- DPD counts from the oldest billed installment with anything unpaid, so a partial payment
  does not reset it;
- a payoff on a day settles arrears, all principal and the interest accrued through that day,
  posted or not (``accrued_target``, the arithmetic of ``domain.loan.accrual``).

A mixin rather than functions of a state: end of day asks ``dpd_on`` and ``penalty_base`` once
per loan per day, and a method inherited costs no more than one defined on ``Loan``.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from domain.delinquency import DEFAULT_POLICY, DelinquencyPolicy, days_past_due
from domain.loan.accrual import period_exact, unbilled_target
from domain.loan.state import InstallmentState, LoanStatus
from domain.money import Currency
from domain.terms import LoanTerms

ZERO = Decimal(0)


class LoanPosition:
    """The queries; the attributes they read are set by ``Loan.__init__`` (see ``LoanState``)."""

    terms: LoanTerms
    currency: str
    annual_rate: Decimal
    status: LoanStatus
    applied_on: date
    approved_on: date | None
    disbursed_on: date | None
    closed_on: date | None
    written_off_on: date | None
    last_closed_on: date | None
    accrued_through: date | None
    installments: list[InstallmentState]
    principal_not_due: Decimal
    interest_accrued: Decimal
    period_exact_closed: Decimal
    interest_settled_in_period: Decimal
    segment_start: date | None
    penalty_outstanding: Decimal
    fees_outstanding: Decimal
    overdue_since: date | None
    observation_until: date | None
    classification: dict[str, Any]

    @property
    def money_currency(self) -> Currency:
        return Currency.of(self.currency)

    @property
    def policy(self) -> DelinquencyPolicy:
        return DEFAULT_POLICY

    def installment(self, number: int) -> InstallmentState:
        for inst in self.installments:
            if inst.number == number:
                return inst
        raise KeyError(number)

    def billed(self) -> list[InstallmentState]:
        return [i for i in self.installments if i.fell_due]

    def future(self) -> list[InstallmentState]:
        return [i for i in self.installments if not i.fell_due]

    def principal_due_unpaid(self) -> Decimal:
        return sum((i.principal_unpaid for i in self.billed()), ZERO)

    def interest_due_unpaid(self) -> Decimal:
        return sum((i.interest_unpaid for i in self.billed()), ZERO)

    @property
    def principal_outstanding(self) -> Decimal:
        return self.principal_not_due + self.principal_due_unpaid()

    def penalty_base(self, day: date) -> Decimal:
        """What penalty interest runs on for ``day``: the unpaid principal (and, compounding,
        interest) of each installment overdue that day, i.e. whose own due date + grace days
        is before ``day``. On its due date an installment still earns contract interest, and
        each installment's grace counts from its own due date."""
        product = self.terms.product
        cutoff = day - timedelta(days=product.grace_days)
        base = ZERO
        for inst in self.installments:  # in due-date order, billed ones first
            if inst.due_date >= cutoff or not inst.fell_due:
                break
            base += inst.principal - inst.principal_paid
            if product.compound_penalty:
                base += inst.interest - inst.interest_paid
        return base

    def arrears_due(self) -> Decimal:
        return (
            self.principal_due_unpaid()
            + self.interest_due_unpaid()
            + self.penalty_outstanding
            + self.fees_outstanding
        )

    def oldest_unpaid_due_date(self) -> date | None:
        for inst in self.billed():
            if inst.principal_unpaid or inst.interest_unpaid:
                return inst.due_date
        if self.penalty_outstanding or self.fees_outstanding:
            return self.overdue_since
        return None

    def dpd_on(self, business_date: date) -> int:
        return days_past_due(business_date, self.oldest_unpaid_due_date())

    @property
    def current_dpd(self) -> int:
        """DPD at the close of the last closed business day (the stored classification keeps
        the DPD of its last transition only)."""
        if self.status != LoanStatus.ACTIVE or self.last_closed_on is None:
            return self.classification_dpd()
        return self.dpd_on(self.last_closed_on)

    def classification_dpd(self) -> int:
        return int(self.classification.get("dpd", 0))

    def payoff_amount(self, on: date | None = None) -> Decimal:
        """What settles the loan on ``on``: arrears, interest accrued through that day and all
        principal. Without a date: what is posted so far."""
        accrued = self.interest_accrued
        if on is not None and self.accrued_through is not None and on > self.accrued_through:
            accrued = self.accrued_target(on)
        return self.arrears_due() + accrued + self.principal_not_due

    def is_in_observation(self, on: date) -> bool:
        return self.observation_until is not None and on <= self.observation_until

    def accrued_target(self, day: date) -> Decimal:
        """Interest accrued and not yet billed through ``day``, posted or not (what a payoff
        on ``day`` settles); ``day`` may be after the last day posted."""
        assert self.segment_start is not None
        terms = self.terms
        return unbilled_target(
            period_exact(
                self.period_exact_closed,
                self.principal_not_due,
                self.annual_rate,
                terms.day_count,
                self.segment_start,
                day,
            ),
            terms.money_currency,
            terms.product.rounding,
            self.interest_settled_in_period,
        )

    @property
    def last_event_date(self) -> date:
        dates = [
            d
            for d in (
                self.applied_on,
                self.approved_on,
                self.disbursed_on,
                self.last_closed_on,
                self.accrued_through,
                self.written_off_on,
                self.closed_on,
            )
            if d is not None
        ]
        return max(dates)
