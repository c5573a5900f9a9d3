"""The LoanLedger application: one intention-revealing method per use case.

Every command runs the same way (``_run``): a repeat of a recorded idempotency key returns the
first outcome; otherwise the aggregates are loaded, any business days the loan has not closed
yet are closed first (inline catch-up, so the command sees true balances), the domain decides,
and the new events, the command-log row and the loan-directory row are written in one
transaction. A concurrent writer makes that transaction fail on the aggregate's version; the
command is then re-decided on fresh state a bounded number of times.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from domain.complaint import Complaint
from domain.errors import (
    AlreadyExists,
    ConcurrencyConflict,
    InvalidAmount,
)
from domain.loan import Loan
from domain.terms import LoanTerms, PrepaymentOption
from ledger.app import commands as c
from ledger.app import directory, idempotency
from ledger.app.clock import BusinessClock
from ledger.app.queries import LoanQueries
from ledger.settings import Settings

ONE_DAY = timedelta(days=1)


class LoanLedger(LoanQueries):
    """The use cases over the event store: commands (``execute``) and loan queries."""

    name = "ledger"  # the library names an application's tables after it: ledger_events …

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__(settings)
        self.clock = BusinessClock(self.engine, self.settings.timezone)

    # ------------------------------------------------------------ business date
    def closed_through(self) -> date | None:
        return self.clock.closed_through()

    def today(self) -> date:
        """The calendar date now in the bank's timezone (``LEDGER_TIMEZONE``)."""
        return self.clock.today()

    def business_date(self) -> date:
        """The open business day: the day after the last closed one (today if none closed)."""
        return self.clock.open_day()

    def _check_amount(self, currency: str, amount: Decimal, field: str = "amount") -> None:
        """The product's maximum single amount in ``currency`` (a setting, so it is checked
        after the idempotency lookup: a retry returns its first outcome whatever it says)."""
        limit = self.settings.max_amount(currency)
        if amount > limit:
            raise InvalidAmount(
                f"{field} {amount} is above the maximum amount {limit:,f}"
                f" {currency} (LEDGER_MAX_AMOUNTS)",
                field=field,
                rule="max_amount",
            )

    # ----------------------------------------------------------------- commands
    def execute(self, command: c.Command) -> dict[str, Any]:
        handler: Callable[[LoanLedger, Any], dict[str, Any]] = HANDLERS[type(command)]
        return handler(self, command)

    def apply_for_loan(self, cmd: c.ApplyForLoan) -> dict[str, Any]:
        def decide(on: date) -> list[Aggregate]:
            defaults = self.settings.product_terms()
            overrides: dict[str, Any] = {}
            if cmd.grace_days is not None:
                overrides["grace_days"] = cmd.grace_days
            if cmd.penalty_markup is not None:
                overrides["penalty_markup"] = cmd.penalty_markup
            if cmd.waterfall is not None:
                overrides["waterfall"] = cmd.waterfall
            if cmd.prepayment is not None:
                overrides["prepayment"] = PrepaymentOption(cmd.prepayment)
            product = replace(defaults, **overrides) if overrides else defaults
            self._check_amount(cmd.currency, cmd.principal, "principal")
            terms = LoanTerms.create(
                principal=cmd.principal,
                currency=cmd.currency,
                annual_rate=cmd.annual_rate,
                term=cmd.term,
                method=cmd.method,
                day_count=cmd.day_count,
                product=product,
            )
            return [
                Loan.apply_for(
                    borrower_id=cmd.borrower_id, terms=terms, business_date=on, loan_id=cmd.loan_id
                )
            ]

        return self._run(cmd, decide)

    def approve_loan(self, cmd: c.ApproveLoan) -> dict[str, Any]:
        return self._on_loan(cmd, lambda loan, on: loan.approve(on), catch_up=False)

    def reject_loan(self, cmd: c.RejectLoan) -> dict[str, Any]:
        return self._on_loan(cmd, lambda loan, on: loan.reject(on, cmd.reason), catch_up=False)

    def withdraw_application(self, cmd: c.WithdrawApplication) -> dict[str, Any]:
        return self._on_loan(cmd, lambda loan, on: loan.withdraw(on, cmd.reason), catch_up=False)

    def disburse_loan(self, cmd: c.DisburseLoan) -> dict[str, Any]:
        return self._on_loan(cmd, lambda loan, on: loan.disburse(on, cmd.first_due), catch_up=False)

    def receive_repayment(self, cmd: c.ReceiveRepayment) -> dict[str, Any]:
        return self._on_loan(
            cmd,
            lambda loan, on: loan.receive_repayment(on, cmd.amount, cmd.currency, cmd.reference),
            amount=cmd.amount,
        )

    def charge_fee(self, cmd: c.ChargeFee) -> dict[str, Any]:
        return self._on_loan(
            cmd, lambda loan, on: loan.charge_fee(on, cmd.amount, cmd.kind), amount=cmd.amount
        )

    def restructure_loan(self, cmd: c.RestructureLoan) -> dict[str, Any]:
        return self._on_loan(
            cmd,
            lambda loan, on: loan.restructure(
                on,
                cmd.kind,
                extend_months=cmd.extend_months,
                new_term=cmd.new_term,
                new_annual_rate=cmd.new_annual_rate,
                capitalize_arrears=cmd.capitalize_arrears,
            ),
        )

    def write_off_loan(self, cmd: c.WriteOffLoan) -> dict[str, Any]:
        return self._on_loan(cmd, lambda loan, on: loan.write_off(on, cmd.reason))

    def receive_recovery(self, cmd: c.ReceiveRecovery) -> dict[str, Any]:
        return self._on_loan(
            cmd,
            lambda loan, on: loan.receive_recovery(on, cmd.amount, cmd.currency, cmd.reference),
            catch_up=False,
            amount=cmd.amount,
        )

    def file_complaint(self, cmd: c.FileComplaint) -> dict[str, Any]:
        def decide(on: date) -> list[Aggregate]:
            loan = self.get_loan(cmd.loan_id)
            return [
                Complaint.file(
                    loan_id=loan.id,
                    borrower_id=loan.borrower_id,
                    category=cmd.category,
                    description=cmd.description,
                    business_date=on,
                    complaint_id=cmd.complaint_id,
                )
            ]

        return self._run(cmd, decide)

    def acknowledge_complaint(self, cmd: c.AcknowledgeComplaint) -> dict[str, Any]:
        return self._on_complaint(cmd, lambda x, on: x.acknowledge(on, cmd.handler))

    def escalate_complaint(self, cmd: c.EscalateComplaint) -> dict[str, Any]:
        return self._on_complaint(cmd, lambda x, on: x.escalate(on, cmd.reason))

    def resolve_complaint(self, cmd: c.ResolveComplaint) -> dict[str, Any]:
        return self._on_complaint(cmd, lambda x, on: x.resolve(on, cmd.resolution))

    def reopen_complaint(self, cmd: c.ReopenComplaint) -> dict[str, Any]:
        return self._on_complaint(cmd, lambda x, on: x.reopen(on, cmd.reason))

    # ----------------------------------------------------------------- plumbing
    def _on_loan(
        self,
        cmd: c.LoanCommand,
        action: Callable[[Loan, date], None],
        *,
        catch_up: bool = True,
        amount: Decimal | None = None,
    ) -> dict[str, Any]:
        def decide(on: date) -> list[Aggregate]:
            loan = self.get_loan(cmd.loan_id)
            if amount is not None:
                self._check_amount(loan.currency, amount)
            if catch_up:
                loan.close_day(on - ONE_DAY)
            action(loan, on)
            return [loan]

        return self._run(cmd, decide)

    def _on_complaint(
        self, cmd: c.ComplaintCommand, action: Callable[[Complaint, date], None]
    ) -> dict[str, Any]:
        def decide(on: date) -> list[Aggregate]:
            complaint = self.get_complaint(cmd.complaint_id)
            action(complaint, on)
            return [complaint]

        return self._run(cmd, decide)

    def _run(self, cmd: c.Command, decide: Callable[[date], Sequence[Aggregate]]) -> dict[str, Any]:
        digest = idempotency.request_hash(cmd)
        first = idempotency.recorded(self.engine, cmd, digest)
        if first is not None:
            return first
        for _attempt in range(self.settings.command_retries):
            on = self.clock.resolve(cmd.business_date)
            aggregates = list(decide(on))
            created = [a for a in aggregates if a.version == len(a.pending_events)]
            try:
                with self.transaction() as session:
                    recordings = self.save(*aggregates)
                    if self.clock.closed_meanwhile(session, on):
                        raise _DayClosed  # roll back; the next attempt takes the open day
                    result = {
                        "command": cmd.type,  # type: ignore[attr-defined]
                        "aggregate_id": str(aggregates[-1].id),
                        "version": aggregates[-1].version,
                        "business_date": on.isoformat(),
                        "events": [type(r.domain_event).__name__ for r in recordings],
                        "position": recordings[-1].notification.id if recordings else None,
                    }
                    idempotency.record(session, cmd, digest, result)
                    directory.index_loans(session, aggregates, recordings)
                return result
            except _DayClosed:
                continue
            except (IntegrityError, SAIntegrityError):
                # The same key won a race, another writer moved the aggregate on, or a new
                # aggregate's id is taken.
                first = idempotency.recorded(self.engine, cmd, digest)
                if first is not None:
                    return first
                self._check_new_ids(created)
        raise ConcurrencyConflict(
            f"the aggregate kept changing under {self.settings.command_retries} attempts;"
            " retry later with the same idempotency key",
            field="idempotency_key",
            rule="concurrent_modification",
        )

    def _check_new_ids(self, created: Sequence[Aggregate]) -> None:
        """A failed insert of aggregates this command created: is one's id already taken?"""
        for aggregate in created:
            if self.recorder.select_events(aggregate.id, limit=1):
                what = "loan" if isinstance(aggregate, Loan) else "complaint"
                raise AlreadyExists(
                    f"{what}_id {aggregate.id} already exists: a new {what} needs a new id"
                    " (or omit it to have one assigned)",
                    field=f"{what}_id",
                    rule="unique_id",
                )


class _DayClosed(Exception):
    """End of day closed the command's business day before the command committed."""


#: Command class -> the application method that carries it out (tested to cover every one).
HANDLERS: dict[type[c.Command], Callable[[LoanLedger, Any], dict[str, Any]]] = {
    c.ApplyForLoan: LoanLedger.apply_for_loan,
    c.ApproveLoan: LoanLedger.approve_loan,
    c.RejectLoan: LoanLedger.reject_loan,
    c.WithdrawApplication: LoanLedger.withdraw_application,
    c.DisburseLoan: LoanLedger.disburse_loan,
    c.ReceiveRepayment: LoanLedger.receive_repayment,
    c.ChargeFee: LoanLedger.charge_fee,
    c.RestructureLoan: LoanLedger.restructure_loan,
    c.WriteOffLoan: LoanLedger.write_off_loan,
    c.ReceiveRecovery: LoanLedger.receive_recovery,
    c.FileComplaint: LoanLedger.file_complaint,
    c.AcknowledgeComplaint: LoanLedger.acknowledge_complaint,
    c.EscalateComplaint: LoanLedger.escalate_complaint,
    c.ResolveComplaint: LoanLedger.resolve_complaint,
    c.ReopenComplaint: LoanLedger.reopen_complaint,
}
