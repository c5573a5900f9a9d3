"""The Loan aggregate: one loan's whole life as an append-only stream of events.

Command methods (imperative names) check every rule first and only then trigger events; each
event's ``apply`` is the single place state changes, so replay equals live. Events carry the
amounts they move and, where a schedule changes, the whole new schedule, so replay never depends
on today's schedule code.

Each command sits beside the event it triggers and that event's ``apply``, in the order of a
loan's life (apply for, approve, disburse, close a business day, fees, repayments, restructure,
write-off and recovery). The arithmetic is elsewhere, in pure functions the commands call with
plain values: ``accrual`` (a day's interest and penalty), ``repayment`` (the split of a
payment), ``restructuring`` (the plan); what the loan owes is asked of ``position``
(``LoanPosition``, inherited) and checked by ``invariants`` before an event is triggered.

This module is larger than the others (~700 lines) because it holds the stored form: the
events must stay nested classes of ``Loan`` (``Loan.Approved`` …) with their pinned topics,
fields and ``apply``, and splitting them from their commands would bring back the jump from a
command to its event that this layout removes.
"""

from __future__ import annotations

from copy import copy
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate
from eventsourcing.domain import Snapshot as BaseSnapshot
from eventsourcing.utils import register_topic

from domain.allocation import Allocation, Component
from domain.delinquency import classify
from domain.errors import (
    CurrencyMismatch,
    InvalidDate,
    InvalidTransition,
    InvariantViolated,
    LoanNotActive,
    OverpaymentNotAllowed,
    ValidationError,
)
from domain.loan.accrual import daily_penalty, period_exact, segment_exact, unbilled_target
from domain.loan.invariants import (
    check_allocation,
    check_balance_limit,
    check_not_negative,
    check_sum,
    schedule_principal,
)
from domain.loan.position import LoanPosition
from domain.loan.repayment import due_items, plan_repayment
from domain.loan.restructuring import RestructurePlan, plan_restructure
from domain.loan.state import (
    CAPITALIZED,
    COMPONENTS,
    RESTRUCTURED,
    WRITTEN_OFF,
    InstallmentState,
    LoanState,
    LoanStatus,
    RestructureKind,
)
from domain.money import CALC, Currency
from domain.schedule import Installment, build_schedule, monthly_due_dates
from domain.terms import LoanTerms

ZERO = Decimal(0)
ONE_DAY = timedelta(days=1)
CLASS_KEYS = ("bucket", "category", "stage")
PERFORMING = classify(0).as_dict()  # copied by every new loan


def _schedule_dicts(installments: list[Installment]) -> list[dict[str, Any]]:
    return [i.as_dict() for i in installments]


class Loan(LoanPosition, Aggregate):
    TOPIC = "loan"
    State = LoanState  # every attribute __init__ sets, typed: what a snapshot stores

    class Event(Aggregate.Event):
        TOPIC = "loan.Event"

    class Snapshot(BaseSnapshot):
        TOPIC = "loan.Snapshot"

    # -------------------------------------------------------------------------- apply for
    class Applied(Aggregate.Created):
        TOPIC = "loan.Applied"
        borrower_id: str
        terms: dict[str, Any]
        business_date: date

    def __init__(self, borrower_id: str, terms: dict[str, Any], business_date: date) -> None:
        self.terms = LoanTerms.from_dict(terms)  # parsed once; snapshots transcode it
        self.borrower_id = borrower_id
        self.currency = self.terms.currency
        self.annual_rate = self.terms.annual_rate
        self.status = LoanStatus.APPLIED
        self.applied_on = business_date
        self.approved_on: date | None = None
        self.disbursed_on: date | None = None
        self.closed_on: date | None = None
        self.written_off_on: date | None = None
        self.last_closed_on: date | None = None  # last business day end of day closed
        self.accrued_through: date | None = None  # last day whose interest is posted
        self.penalty_through: date | None = None  # last day whose penalty is posted
        self.disbursed = ZERO
        self.capitalized = ZERO
        self.installments: list[InstallmentState] = []
        self.principal_not_due = ZERO
        self.interest_accrued = ZERO  # posted, not yet billed
        self.interest_accrued_total = ZERO
        self.period_exact_closed = ZERO  # exact accrual of closed segments in this period
        self.interest_settled_in_period = ZERO  # accrued interest paid before it was billed
        self.segment_start: date | None = None
        self.penalty_outstanding = ZERO
        self.penalty_accrued_total = ZERO
        self.penalty_carry = ZERO
        self.fees_outstanding = ZERO
        self.fees_charged_total = ZERO
        self.paid = dict.fromkeys(COMPONENTS, ZERO)
        self.overpayment = ZERO
        self.recovered = ZERO
        self.written_off: dict[str, Decimal] = {}
        self.overdue_since: date | None = None
        self.observation_until: date | None = None
        self.restructure_count = 0
        self.classification: dict[str, Any] = dict(PERFORMING)

    @classmethod
    def apply_for(
        cls, *, borrower_id: str, terms: LoanTerms, business_date: date, loan_id: UUID | None = None
    ) -> Loan:
        if not borrower_id or not borrower_id.strip():
            raise ValidationError(
                "borrower_id must not be empty", field="borrower_id", rule="required"
            )
        return cls._create(
            cls.Applied,
            id=loan_id,
            borrower_id=borrower_id.strip(),
            terms=terms.as_dict(),
            business_date=business_date,
        )

    @staticmethod
    def create_id(*_: Any, **__: Any) -> UUID:
        return uuid4()

    def __deepcopy__(self, memo: dict[int, Any]) -> Loan:
        # Repositories copy cached aggregates before every command. Events, Decimals, dates
        # and terms are immutable, so only the mutable containers need copying; a generic
        # deepcopy was the largest cost of loading a loan.
        clone = object.__new__(type(self))
        state = dict(self.__dict__)
        state["installments"] = [copy(i) for i in self.installments]
        for name in ("paid", "classification", "written_off"):
            state[name] = dict(state[name])
        if "_pending_events" in state:
            state["_pending_events"] = list(state["_pending_events"])
        clone.__dict__.update(state)
        return clone

    # ---------------------------------------------------------- approve, reject, withdraw
    def approve(self, business_date: date) -> None:
        self._check_status({LoanStatus.APPLIED}, "approve")
        self._check_not_before(business_date, self.applied_on)
        self.trigger_event(self.Approved, business_date=business_date)

    class Approved(Aggregate.Event):
        TOPIC = "loan.Approved"
        business_date: date

        def apply(self, loan: Loan) -> None:
            loan.status = LoanStatus.APPROVED
            loan.approved_on = self.business_date

    def reject(self, business_date: date, reason: str) -> None:
        self._check_status({LoanStatus.APPLIED}, "reject")
        self._check_not_before(business_date, self.applied_on)
        self.trigger_event(self.Rejected, business_date=business_date, reason=reason)

    class Rejected(Aggregate.Event):
        TOPIC = "loan.Rejected"
        business_date: date
        reason: str

        def apply(self, loan: Loan) -> None:
            loan.status = LoanStatus.REJECTED

    def withdraw(self, business_date: date, reason: str) -> None:
        self._check_status({LoanStatus.APPLIED, LoanStatus.APPROVED}, "withdraw")
        self._check_not_before(business_date, self.applied_on)
        self.trigger_event(self.Withdrawn, business_date=business_date, reason=reason)

    class Withdrawn(Aggregate.Event):
        TOPIC = "loan.Withdrawn"
        business_date: date
        reason: str

        def apply(self, loan: Loan) -> None:
            loan.status = LoanStatus.WITHDRAWN

    # --------------------------------------------------------------------------- disburse
    def disburse(self, business_date: date, first_due: date | None = None) -> None:
        self._check_status({LoanStatus.APPROVED}, "disburse")
        assert self.approved_on is not None
        self._check_not_before(business_date, self.approved_on)
        terms = self.terms
        first_due = first_due or monthly_due_dates(business_date, 2)[1]
        if first_due <= business_date:
            raise InvalidDate(
                "first_due must be after the disbursement date",
                field="first_due",
                rule="after_disbursement",
            )
        if first_due > business_date + timedelta(days=62):
            raise InvalidDate(
                "first_due must be within 62 days of disbursement",
                field="first_due",
                rule="first_period_at_most_62_days",
            )
        schedule = build_schedule(
            principal=terms.principal,
            annual_rate=terms.annual_rate,
            term=terms.term,
            method=terms.method,
            day_count=terms.day_count,
            start_date=business_date,
            first_due=first_due,
            currency=terms.money_currency,
            rounding=terms.product.rounding,
        )
        check_sum("Disbursed", "amount", terms.principal, schedule_principal(schedule))
        self.trigger_event(
            self.Disbursed,
            business_date=business_date,
            amount=terms.principal,
            first_due=first_due,
            schedule=_schedule_dicts(schedule),
        )

    class Disbursed(Aggregate.Event):
        TOPIC = "loan.Disbursed"
        business_date: date
        amount: Decimal
        first_due: date
        schedule: list[dict[str, Any]]

        def apply(self, loan: Loan) -> None:
            loan.status = LoanStatus.ACTIVE
            loan.disbursed_on = self.business_date
            loan.disbursed = self.amount
            loan.principal_not_due = self.amount
            loan.installments = [InstallmentState.from_dict(d) for d in self.schedule]
            loan.last_closed_on = self.business_date - ONE_DAY
            loan.accrued_through = self.business_date - ONE_DAY
            loan.segment_start = self.business_date

    # --------------------------------------------------------------- close a business day
    # In order, for each day: (1) interest accrual, (2) installments falling due, (3) overdue
    # after grace days, (4) penalty interest, (5) reclassification. The hot path of end of day.
    def close_day(self, business_date: date) -> None:
        """Close every business day up to ``business_date`` not yet closed, in order.

        Closing a day already closed posts nothing, so end of day can be rerun safely.
        """
        if self.status != LoanStatus.ACTIVE or self.last_closed_on is None:
            return
        day = self.last_closed_on + ONE_DAY
        while day <= business_date and self.status == LoanStatus.ACTIVE:
            self._close_one_day(day)
            day += ONE_DAY

    def _close_one_day(self, day: date) -> None:
        # After a same-day repayment already posted the day's interest, this posts zero and
        # bills nothing new; it still marks the day closed.
        self._accrue_and_bill(day, end_of_day=True)
        self._assess_arrears(day)

    def _accrue_and_bill(self, day: date, *, end_of_day: bool) -> None:
        # 1. interest accrual: cumulative exact accrual of the period, rounded, minus posted,
        #    so the rounding remainder is carried and the period sums exactly.
        terms = self.terms
        assert self.segment_start is not None
        exact = period_exact(
            self.period_exact_closed,
            self.principal_not_due,
            self.annual_rate,
            terms.day_count,
            self.segment_start,
            day,
        )
        amount = (
            unbilled_target(
                exact, terms.money_currency, terms.product.rounding, self.interest_settled_in_period
            )
            - self.interest_accrued
        )
        if amount < 0:  # the cumulative accrual never decreases; a day posts zero or more
            raise InvariantViolated(
                f"InterestAccrued: amount {amount} on {day} is negative",
                field="amount",
                rule="non_negative",
            )
        self.trigger_event(
            self.InterestAccrued,
            business_date=day,
            amount=amount,
            period_exact=exact,
            end_of_day=end_of_day,
        )
        # 2. installments falling due (the last one takes whatever principal is left).
        future = self.future()
        for inst in future:
            if inst.due_date > day:
                break
            is_last = inst is future[-1]
            principal = (
                self.principal_not_due if is_last else min(inst.principal, self.principal_not_due)
            )
            if principal < 0 or self.interest_accrued < 0:
                check_not_negative(
                    "InstallmentFellDue",
                    {"principal": principal, "interest": self.interest_accrued},
                )
            self.trigger_event(
                self.InstallmentFellDue,
                business_date=day,
                number=inst.number,
                due_date=inst.due_date,
                principal=principal,
                interest=self.interest_accrued,
            )

    class InterestAccrued(Aggregate.Event):
        """A business day's posted interest (may be zero) and, for audit, the period's exact
        cumulative accrual the posted amounts are rounded from.

        Posted by end of day (``end_of_day``: the day is closed), or earlier by a repayment
        that must see the day's interest and the installment falling due that day."""

        TOPIC = "loan.InterestAccrued"
        business_date: date
        amount: Decimal
        period_exact: Decimal
        end_of_day: bool

        def apply(self, loan: Loan) -> None:
            loan.interest_accrued += self.amount
            loan.interest_accrued_total += self.amount
            loan.accrued_through = self.business_date
            if self.end_of_day:
                loan.last_closed_on = self.business_date

    class InstallmentFellDue(Aggregate.Event):
        TOPIC = "loan.InstallmentFellDue"
        business_date: date
        number: int
        due_date: date
        principal: Decimal
        interest: Decimal

        def apply(self, loan: Loan) -> None:
            inst = loan.installment(self.number)
            inst.fell_due = True
            inst.principal = self.principal
            inst.interest = self.interest
            loan.principal_not_due -= self.principal
            loan.interest_accrued -= self.interest
            # A new accrual period starts on the due date with the reduced base.
            loan.period_exact_closed = ZERO
            loan.interest_settled_in_period = ZERO
            loan.segment_start = self.due_date

    def _assess_arrears(self, day: date) -> None:
        """Steps 3-5 of closing a day; each is idempotent, so a day whose interest a
        repayment already posted can be assessed again safely."""
        terms = self.terms
        # 3. overdue transition after grace days.
        dpd = self.dpd_on(day)
        grace = terms.product.grace_days
        if dpd > grace and self.overdue_since is None:
            oldest = self.oldest_unpaid_due_date()
            assert oldest is not None
            self.trigger_event(
                self.BecameOverdue,
                business_date=day,
                dpd=dpd,
                oldest_due_date=oldest,
                overdue_principal=self.principal_due_unpaid(),
                overdue_interest=self.interest_due_unpaid(),
            )
        # 4. penalty interest (罚息) on overdue principal, optionally compounding on interest.
        if dpd > grace and (self.penalty_through is None or day > self.penalty_through):
            base = self.penalty_base(day)
            if base > 0:
                posted, carry = daily_penalty(
                    base,
                    self.annual_rate,
                    terms.product.penalty_markup,
                    terms.day_count,
                    day,
                    self.penalty_carry,
                    terms.money_currency,
                    terms.product.rounding,
                )
                self.trigger_event(
                    self.PenaltyAccrued, business_date=day, amount=posted, base=base, carry=carry
                )
        # 5. delinquency classification; an event only when something changed.
        self._reclassify(day, dpd)

    class BecameOverdue(Aggregate.Event):
        TOPIC = "loan.BecameOverdue"
        business_date: date
        dpd: int
        oldest_due_date: date
        overdue_principal: Decimal
        overdue_interest: Decimal

        def apply(self, loan: Loan) -> None:
            loan.overdue_since = self.oldest_due_date

    class PenaltyAccrued(Aggregate.Event):
        TOPIC = "loan.PenaltyAccrued"
        business_date: date
        amount: Decimal
        base: Decimal
        carry: Decimal

        def apply(self, loan: Loan) -> None:
            loan.penalty_outstanding += self.amount
            loan.penalty_accrued_total += self.amount
            loan.penalty_carry = self.carry
            loan.penalty_through = self.business_date

    def _reclassify(self, day: date, dpd: int) -> None:
        current = classify(
            dpd, restructured_in_observation=self.is_in_observation(day), policy=self.policy
        ).as_dict()
        # A transition is a change of bucket, five-category or stage; DPD alone moves daily.
        if any(current[k] != self.classification.get(k) for k in CLASS_KEYS):
            self.trigger_event(
                self.DelinquencyChanged,
                business_date=day,
                previous=self.classification,
                current=current,
            )

    class DelinquencyChanged(Aggregate.Event):
        TOPIC = "loan.DelinquencyChanged"
        business_date: date
        previous: dict[str, Any]
        current: dict[str, Any]

        def apply(self, loan: Loan) -> None:
            loan.classification = dict(self.current)

    # ------------------------------------------------------------------------------- fees
    def charge_fee(self, business_date: date, amount: Decimal, kind: str) -> None:
        self._check_active("charge a fee")
        self._check_not_before(business_date, self.last_event_date)
        # Parsed like every other amount at the edge: strings accepted, booked in minor units.
        amount = self.money_currency.check_amount(amount, field="amount")
        self._check_balance_limit("fees outstanding", self.fees_outstanding + amount, "amount")
        self.trigger_event(self.FeeCharged, business_date=business_date, amount=amount, kind=kind)

    class FeeCharged(Aggregate.Event):
        TOPIC = "loan.FeeCharged"
        business_date: date
        amount: Decimal
        kind: str

        def apply(self, loan: Loan) -> None:
            loan.fees_outstanding += self.amount
            loan.fees_charged_total += self.amount

    # ------------------------------------------------------------------------- repayments
    def receive_repayment(
        self, business_date: date, amount: Decimal, currency: str, reference: str = ""
    ) -> None:
        self._check_active("receive a repayment")
        self._check_currency(currency)
        self._check_not_before(business_date, self.last_event_date)
        terms = self.terms
        amount = self.money_currency.check_amount(amount, field="amount")
        payoff = self.payoff_amount(business_date)
        if amount > payoff and not terms.product.allow_overpayment:
            raise OverpaymentNotAllowed(
                f"amount {amount} exceeds the payoff amount {payoff}",
                field="amount",
                rule="at_most_payoff",
            )
        # The payment sees today's interest and any installment falling due today.
        if self.accrued_through is None or business_date > self.accrued_through:
            self.close_day(business_date - ONE_DAY)
            self._accrue_and_bill(business_date, end_of_day=False)
        plan = plan_repayment(
            amount,
            due_items(
                self.billed(),
                self.penalty_outstanding,
                self.fees_outstanding,
                self.oldest_unpaid_due_date() or business_date,
            ),
            principal_not_due=self.principal_not_due,
            interest_accrued=self.interest_accrued,
            future=self.future(),
            annual_rate=self.annual_rate,
            terms=terms,
        )
        accrued_paid, prepaid = plan.accrued_interest_paid, plan.prepaid_principal
        overpayment, new_schedule = plan.overpayment, plan.new_schedule
        if new_schedule is not None and not plan.pays_off:
            check_sum(
                "RepaymentReceived",
                "principal not due after the prepayment",
                self.principal_not_due - prepaid,
                schedule_principal(new_schedule),
            )
        self._check_balance_limit("the overpayment held", self.overpayment + overpayment, "amount")
        stored = plan.allocation.as_dict()
        check_allocation(
            "RepaymentReceived",
            amount,
            stored,
            {
                "accrued_interest_paid": accrued_paid,
                "prepaid_principal": prepaid,
                "overpayment": overpayment,
            },
        )
        self.trigger_event(
            self.RepaymentReceived,
            business_date=business_date,
            amount=amount,
            allocation=stored,
            accrued_interest_paid=accrued_paid,
            prepaid_principal=prepaid,
            overpayment=overpayment,
            new_schedule=None if new_schedule is None else _schedule_dicts(new_schedule),
            reference=reference,
        )
        self._close_if_settled(business_date)

    class RepaymentReceived(Aggregate.Event):
        TOPIC = "loan.RepaymentReceived"
        business_date: date
        amount: Decimal
        allocation: dict[str, Any]
        accrued_interest_paid: Decimal
        prepaid_principal: Decimal
        overpayment: Decimal
        new_schedule: list[dict[str, Any]] | None
        reference: str

        def apply(self, loan: Loan) -> None:
            alloc = Allocation.from_dict(self.allocation)
            for line in alloc.lines:
                loan.apply_allocation_line(line.component, line.installment, line.amount)
            loan.paid[Component.PENALTY] += alloc.total(Component.PENALTY)
            loan.paid[Component.FEES] += alloc.total(Component.FEES)
            loan.paid[Component.INTEREST] += alloc.total(Component.INTEREST)
            loan.paid[Component.PRINCIPAL] += alloc.total(Component.PRINCIPAL)
            if self.accrued_interest_paid:
                loan.interest_accrued -= self.accrued_interest_paid
                loan.interest_settled_in_period += self.accrued_interest_paid
                loan.paid[Component.INTEREST] += self.accrued_interest_paid
            if self.prepaid_principal:
                # The repayment day still accrues on the old balance; the new one from tomorrow.
                loan.close_accrual_segment(self.business_date)
                loan.principal_not_due -= self.prepaid_principal
                loan.paid[Component.PRINCIPAL] += self.prepaid_principal
            loan.overpayment += self.overpayment
            if self.new_schedule is not None:
                loan.replace_future_installments(self.new_schedule)
            if not loan.arrears_due():
                loan.overdue_since = None

    # State changes of RepaymentReceived.apply (the last two shared with Restructured.apply).
    def apply_allocation_line(self, component: str, number: int | None, amount: Decimal) -> None:
        if component == Component.PENALTY:
            self.penalty_outstanding -= amount
        elif component == Component.FEES:
            self.fees_outstanding -= amount
        else:
            assert number is not None
            inst = self.installment(number)
            if component == Component.INTEREST:
                inst.interest_paid += amount
            else:
                inst.principal_paid += amount

    def close_accrual_segment(self, through: date | None) -> None:
        """Freeze the exact accrual on the current base up to ``through``; a new base follows."""
        if self.segment_start is None or through is None or through <= self.segment_start:
            return
        # CALC, not the ambient 28-digit context: the schedule keeps 34 digits, and an exact
        # half-cent must round the same way in both.
        self.period_exact_closed = CALC.add(
            self.period_exact_closed,
            segment_exact(
                self.principal_not_due,
                self.annual_rate,
                self.terms.day_count,
                self.segment_start,
                through,
            ),
        )
        self.segment_start = through

    def replace_future_installments(self, schedule: list[dict[str, Any]]) -> None:
        self.installments = self.billed() + [InstallmentState.from_dict(d) for d in schedule]

    def _close_if_settled(self, business_date: date) -> None:
        if (
            self.principal_outstanding == 0
            and self.arrears_due() == 0
            and self.interest_accrued == 0
            and not self.future()
        ):
            self.trigger_event(self.Closed, business_date=business_date, reason="repaid")

    class Closed(Aggregate.Event):
        TOPIC = "loan.Closed"
        business_date: date
        reason: str

        def apply(self, loan: Loan) -> None:
            loan.status = LoanStatus.CLOSED
            loan.closed_on = self.business_date

    # ------------------------------------------------------------------------ restructure
    def restructure(
        self,
        business_date: date,
        kind: RestructureKind,
        *,
        extend_months: int | None = None,
        new_term: int | None = None,
        new_annual_rate: Decimal | None = None,
        capitalize_arrears: bool = False,
    ) -> None:
        self._check_active("restructure")
        self._check_not_before(business_date, self.last_event_date)
        plan = plan_restructure(
            kind,
            business_date=business_date,
            terms=self.terms,
            annual_rate=self.annual_rate,
            installments=self.installments,
            principal_not_due=self.principal_not_due,
            principal_due=self.principal_due_unpaid(),
            interest_due=self.interest_due_unpaid(),
            penalty=self.penalty_outstanding,
            fees=self.fees_outstanding,
            extend_months=extend_months,
            new_term=new_term,
            new_annual_rate=new_annual_rate,
            capitalize_arrears=capitalize_arrears,
        )
        self._check_restructured(plan)
        self.trigger_event(
            self.Restructured,
            business_date=business_date,
            kind=str(kind),
            annual_rate=plan.annual_rate,
            capitalized=plan.capitalized,
            capitalized_interest=plan.capitalized_interest,
            capitalized_penalty=plan.capitalized_penalty,
            capitalized_fees=plan.capitalized_fees,
            principal_due_reamortized=plan.principal_due,
            reamortized_principal=plan.reamortized_principal,
            new_schedule=_schedule_dicts(plan.schedule),
            observation_until=business_date + timedelta(days=self.terms.product.observation_days),
        )
        self._reclassify(business_date, self.dpd_on(business_date))

    def _check_restructured(self, plan: RestructurePlan) -> None:
        event = "Restructured"
        parts = {
            "capitalized_interest": plan.capitalized_interest,
            "capitalized_penalty": plan.capitalized_penalty,
            "capitalized_fees": plan.capitalized_fees,
        }
        outstanding, principal_due = plan.principal_outstanding, plan.principal_due
        check_not_negative(event, parts | {"principal_due_reamortized": principal_due})
        check_sum(event, "capitalized", plan.capitalized, parts)
        check_sum(
            event,
            "reamortized_principal",
            plan.reamortized_principal,
            {"principal outstanding": outstanding, "capitalized": plan.capitalized},
        )
        if principal_due > outstanding:
            raise InvariantViolated(
                f"{event}: principal_due_reamortized {principal_due} is more than the principal"
                f" outstanding {outstanding}",
                field="principal_due_reamortized",
                rule="part_of_principal",
            )
        check_sum(
            event,
            "reamortized_principal",
            plan.reamortized_principal,
            schedule_principal(plan.schedule),
        )

    class Restructured(Aggregate.Event):
        TOPIC = "loan.Restructured"
        business_date: date
        kind: str
        annual_rate: Decimal
        capitalized: Decimal  # = capitalized interest + penalty + fees
        capitalized_interest: Decimal
        capitalized_penalty: Decimal
        capitalized_fees: Decimal
        principal_due_reamortized: Decimal  # billed, unpaid principal taken back into the plan
        reamortized_principal: Decimal
        new_schedule: list[dict[str, Any]]
        observation_until: date

        def apply(self, loan: Loan) -> None:
            loan.close_accrual_segment(self.business_date)
            closing = CAPITALIZED if self.capitalized else RESTRUCTURED
            for inst in loan.installments:
                if inst.fell_due:
                    # Unpaid billed principal goes back into the re-amortized balance (and,
                    # capitalizing, unpaid interest too): the installment is closed so.
                    if inst.principal != inst.principal_paid or (
                        self.capitalized and inst.interest != inst.interest_paid
                    ):
                        inst.closed_by = closing
                    inst.principal = inst.principal_paid
                    if self.capitalized:
                        inst.interest = inst.interest_paid
            if self.capitalized:
                loan.penalty_outstanding = ZERO
                loan.penalty_carry = ZERO
                loan.fees_outstanding = ZERO
                loan.capitalized += self.capitalized
            loan.principal_not_due = self.reamortized_principal
            loan.annual_rate = self.annual_rate
            loan.replace_future_installments(self.new_schedule)
            loan.observation_until = self.observation_until
            loan.restructure_count += 1
            if not loan.arrears_due():
                loan.overdue_since = None

    # ------------------------------------------------------------- write-off and recovery
    def write_off(self, business_date: date, reason: str) -> None:
        self._check_active("write off")
        self._check_not_before(business_date, self.last_event_date)
        parts = {
            "principal": self.principal_outstanding,
            "principal_due": self.principal_due_unpaid(),
            "interest": self.interest_due_unpaid(),
            "accrued_interest": self.interest_accrued,
            "penalty": self.penalty_outstanding,
            "fees": self.fees_outstanding,
        }
        check_not_negative("WrittenOff", parts)
        if parts["principal_due"] > parts["principal"]:
            raise InvariantViolated(
                f"WrittenOff: principal_due {parts['principal_due']} is more than principal"
                f" {parts['principal']}",
                field="principal_due",
                rule="part_of_principal",
            )
        self.trigger_event(
            self.WrittenOff,
            business_date=business_date,
            reason=reason,
            dpd=self.dpd_on(business_date),
            **parts,
        )

    class WrittenOff(Aggregate.Event):
        TOPIC = "loan.WrittenOff"
        business_date: date
        principal: Decimal  # all outstanding principal …
        principal_due: Decimal  # … of which billed and unpaid
        interest: Decimal  # billed and unpaid
        accrued_interest: Decimal  # accrued, not yet billed
        penalty: Decimal
        fees: Decimal
        reason: str
        dpd: int | None  # DPD on the write-off date; None in events stored before version 2

        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["dpd"] = None  # not recorded then: apply falls back to the last transition's

        def apply(self, loan: Loan) -> None:
            loan.status = LoanStatus.WRITTEN_OFF
            loan.written_off_on = self.business_date
            loan.written_off = {
                "principal": self.principal,
                "interest": self.interest,
                "accrued_interest": self.accrued_interest,
                "penalty": self.penalty,
                "fees": self.fees,
            }
            loan.principal_not_due = ZERO
            loan.interest_accrued = ZERO
            loan.penalty_outstanding = ZERO
            loan.fees_outstanding = ZERO
            for inst in loan.installments:
                if not inst.is_settled:
                    inst.closed_by = WRITTEN_OFF
                inst.principal = inst.principal_paid
                inst.interest = inst.interest_paid
            # Classified with the DPD on the write-off date, which the classification keeps
            # (``current_dpd`` of a written-off loan); older events: the last transition's.
            dpd = loan.classification_dpd() if self.dpd is None else self.dpd
            loan.classification = classify(dpd, written_off=True, policy=loan.policy).as_dict()

    def receive_recovery(
        self, business_date: date, amount: Decimal, currency: str, reference: str = ""
    ) -> None:
        if self.status != LoanStatus.WRITTEN_OFF:
            raise LoanNotActive(
                f"recoveries are only received on written-off loans; this loan is {self.status}",
                field="loan_id",
                rule="written_off",
            )
        self._check_currency(currency)
        self._check_not_before(business_date, self.last_event_date)
        amount = self.money_currency.check_amount(amount, field="amount")
        self._check_balance_limit("recovered", self.recovered + amount, "amount")
        self.trigger_event(
            self.RecoveryReceived, business_date=business_date, amount=amount, reference=reference
        )

    class RecoveryReceived(Aggregate.Event):
        TOPIC = "loan.RecoveryReceived"
        business_date: date
        amount: Decimal
        reference: str

        def apply(self, loan: Loan) -> None:
            loan.recovered += self.amount

    # ----------------------------------------------------------------------------- guards
    def _check_status(self, allowed: set[LoanStatus], action: str) -> None:
        if self.status not in allowed:
            wanted = " or ".join(sorted(str(s) for s in allowed))
            raise InvalidTransition(
                f"cannot {action} a loan that is {self.status}; it must be {wanted}",
                field="loan_id",
                rule=f"status_{action}",
            )

    def _check_active(self, action: str) -> None:
        if self.status != LoanStatus.ACTIVE:
            raise LoanNotActive(
                f"cannot {action}: the loan is {self.status}, not active",
                field="loan_id",
                rule="loan_active",
            )

    def _check_currency(self, currency: str) -> None:
        if Currency.of(currency).code != self.currency:
            raise CurrencyMismatch(
                f"payment currency {currency} does not match the loan currency {self.currency}",
                field="currency",
                rule="loan_currency",
            )

    def _check_balance_limit(self, balance: str, after: Decimal, field: str) -> None:
        check_balance_limit(self.money_currency, balance, after, field)

    def _check_not_before(self, business_date: date, earliest: date | None) -> None:
        if earliest is not None and business_date < earliest:
            raise InvalidDate(
                f"business_date {business_date} is before {earliest}, the last"
                f" date already booked on this loan",
                field="business_date",
                rule="not_backdated",
            )


# The library registers pinned topics of nested *events* only; snapshots need it done by hand,
# or a fresh process could not read a stored snapshot.
register_topic(Loan.Snapshot.TOPIC, Loan.Snapshot)
