"""Queries with business meaning over the event store: a loan (now, as of a business date, or
at a version), a complaint, a loan's history, the loans of the directory.

``LoanLedger`` inherits them; the as-of axis is the business date (the state effective at the
close of that day), never later than the open business day.
"""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from domain.complaint import Complaint
from domain.errors import ComplaintNotFound, LoanNotFound
from domain.loan import Loan
from ledger.app import directory
from ledger.app.clock import BusinessClock
from ledger.persistence.store import EventStore, project


class LoanQueries(EventStore):
    clock: BusinessClock

    def get_loan(
        self, loan_id: UUID, *, version: int | None = None, as_of: date | None = None
    ) -> Loan:
        if as_of is not None:
            self.clock.check_as_of(as_of)
            version = self._version_as_of(loan_id, as_of)
        try:
            loan = self.repository.get(loan_id, version=version, projector_func=project)
        except AggregateNotFoundError:
            raise LoanNotFound(
                f"no loan with id {loan_id}", field="loan_id", rule="exists"
            ) from None
        if not isinstance(loan, Loan):
            raise LoanNotFound(f"{loan_id} is not a loan", field="loan_id", rule="exists")
        return loan

    def get_complaint(self, complaint_id: UUID) -> Complaint:
        try:
            complaint = self.repository.get(complaint_id, projector_func=project)
        except AggregateNotFoundError:
            raise ComplaintNotFound(
                f"no complaint with id {complaint_id}", field="complaint_id", rule="exists"
            ) from None
        if not isinstance(complaint, Complaint):
            raise ComplaintNotFound(
                f"{complaint_id} is not a complaint", field="complaint_id", rule="exists"
            )
        return complaint

    def loan_history(self, loan_id: UUID) -> list[Any]:
        events = list(self.events.get(loan_id))
        if not events or not isinstance(events[0], Loan.Applied):
            raise LoanNotFound(f"no loan with id {loan_id}", field="loan_id", rule="exists")
        return events

    def _version_as_of(self, loan_id: UUID, as_of: date) -> int:
        version: int | None = None
        for event in self.loan_history(loan_id):
            if event.business_date > as_of:
                break
            version = int(event.originator_version)
        if version is None:
            raise LoanNotFound(
                f"loan {loan_id} did not exist on {as_of}", field="as_of", rule="exists_on_date"
            )
        return version

    def loan_ids(
        self, status: str | None = None, *, after: str = "", limit: int | None = None
    ) -> list[UUID]:
        return directory.loan_ids(self.engine, status, after=after, limit=limit)
