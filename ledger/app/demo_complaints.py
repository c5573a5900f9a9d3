"""The demo's complaint desk: some late borrowers complain; a complaint is acknowledged the next
day, sometimes escalated after five, mostly resolved after ten — through ordinary commands."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING
from uuid import UUID

from ledger.app import commands as c

if TYPE_CHECKING:
    from ledger.app.demo import Demo


class ComplaintDesk:
    def __init__(self, demo: Demo) -> None:
        self.demo = demo
        #: (loan id, the day its borrower complains) until filed; then (complaint id, filed on)
        self.pending: list[tuple[UUID, date]] = []

    def work(self, today: date) -> None:
        """File the complaints due today, then move the open ones along."""
        still_open = []
        for loan_id, filed in self.pending:
            if filed == today:
                result = self.demo.send(
                    c.FileComplaint(
                        idempotency_key=self.demo.key(),
                        business_date=today,
                        loan_id=loan_id,
                        complaint_id=self.demo.uuid(),
                        category=self.demo.rng.choice(
                            ("billing", "collection_practice", "interest_calculation")
                        ),
                        description="borrower disputes the amount due",
                    )
                )
                if result:
                    still_open.append((UUID(result["aggregate_id"]), today))
            else:
                still_open.append((loan_id, filed))
        self.pending = [x for x in still_open if x[1] != today] + [
            x for x in still_open if x[1] == today
        ]
        self._progress_complaints(today)

    def _progress_complaints(self, today: date) -> None:
        for complaint_id, filed in self.pending:
            age = (today - filed).days
            if filed == today or not self._is_complaint(complaint_id):
                continue
            if age == 1:
                self.demo.send(
                    c.AcknowledgeComplaint(
                        idempotency_key=self.demo.key(),
                        business_date=today,
                        complaint_id=complaint_id,
                        handler="ops-team",
                    )
                )
            elif age == 5 and self.demo.rng.random() < 0.3:
                self.demo.send(
                    c.EscalateComplaint(
                        idempotency_key=self.demo.key(),
                        business_date=today,
                        complaint_id=complaint_id,
                        reason="borrower unsatisfied",
                    )
                )
            elif age == 10 and self.demo.rng.random() < 0.8:
                self.demo.send(
                    c.ResolveComplaint(
                        idempotency_key=self.demo.key(),
                        business_date=today,
                        complaint_id=complaint_id,
                        resolution="fee waived and explained",
                    )
                )

    def _is_complaint(self, aggregate_id: UUID) -> bool:
        return not any(b.loan_id == aggregate_id for b in self.demo.borrowers)
