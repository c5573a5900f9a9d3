"""``ledger demo``: seed a realistic portfolio and run business days through the real commands.

Borrowers follow profiles (on-time payers, late payers, defaulters, prepayers); one struggling
borrower gets an extension with capitalized arrears (展期), the worst defaulter is written off and
later pays a recovery, and some borrowers complain. Every action is an ordinary idempotent
command, so the demo exercises exactly what an integration would.

Everything random comes from one seeded generator — loan ids, idempotency keys, profiles and
amounts — so the same seed and start date give the same ledger, event for event. On a new
ledger the demo starts ``days`` days before today and ends with today as the open business day;
a ledger that already holds loans gets the demo only when asked (``append``), from its open
business day on.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Protocol
from uuid import UUID

from domain.errors import LedgerError, StateConflict
from domain.loan import Loan
from domain.loan.state import LoanStatus, RestructureKind
from ledger.app import commands as c
from ledger.app.demo_complaints import ComplaintDesk

ONE_DAY = timedelta(days=1)
PROFILES = (("on_time", 55), ("late", 15), ("defaulter", 12), ("prepayer", 13), ("struggler", 5))


@dataclass
class Borrower:
    loan_id: UUID
    borrower_id: str
    profile: str
    originate_on: date
    currency: str
    paid_installments: int = 0
    stop_after: int = 99
    lag_days: int = 0
    prepay_on: date | None = None
    restructured: bool = False
    due_dates: set[date] = field(default_factory=set)
    first_missed: date | None = None
    pending: set[date] = field(default_factory=set)  # days the borrower pays what is due


class DemoLedger(Protocol):
    """What the demo drives: the service (``ledger.service.Ledger``), as any face would."""

    def execute(self, command: c.Command) -> dict[str, Any]: ...
    def get_loan(self, loan_id: UUID) -> Loan: ...
    def loan_ids(self, status: str | None = None, *, limit: int | None = None) -> list[UUID]: ...
    def closed_through(self) -> date | None: ...
    def business_date(self) -> date: ...
    def today(self) -> date: ...
    def close_business_days(self, through: date) -> Any: ...


class Demo:
    def __init__(self, ledger: DemoLedger, rng: random.Random, start: date) -> None:
        self.ledger = ledger
        self.rng = rng
        self.start = start
        self.commands = 0
        self.events = 0
        self.borrowers: list[Borrower] = []
        self.desk = ComplaintDesk(self)
        self.written_off: UUID | None = None

    def send(self, command: c.Command) -> dict[str, Any] | None:
        try:
            result = self.ledger.execute(command)
        except LedgerError:
            return None  # a borrower action the ledger refuses (e.g. loan already closed)
        self.commands += 1
        self.events += len(result["events"])
        return result

    def uuid(self) -> UUID:
        return UUID(int=self.rng.getrandbits(128), version=4)

    def key(self) -> str:
        return f"demo-{self.uuid()}"

    # ----------------------------------------------------------------- seeding
    def plan(self, loans: int, days: int) -> None:
        window = max(1, min(30, days // 4))
        names = [name for name, _ in PROFILES]
        weights = [weight for _, weight in PROFILES]
        for n in range(loans):
            profile = self.rng.choices(names, weights)[0]
            b = Borrower(
                loan_id=self.uuid(),
                borrower_id=f"B{n + 1:05d}",
                profile=profile,
                originate_on=self.start + timedelta(days=self.rng.randrange(window)),
                currency="CNY",
            )
            if profile == "defaulter":
                b.stop_after = self.rng.randrange(0, 2)
            elif profile == "late":
                b.lag_days = self.rng.randrange(3, 40)
            elif profile == "prepayer":
                b.prepay_on = b.originate_on + timedelta(days=self.rng.randrange(40, 200))
            elif profile == "struggler":
                b.stop_after = 1
            self.borrowers.append(b)
        # The first defaulter is the one we write off; make sure there is one.
        if not any(b.profile == "defaulter" for b in self.borrowers):
            self.borrowers[-1].profile, self.borrowers[-1].stop_after = "defaulter", 0

    def originate(self, b: Borrower, today: date) -> None:
        rng = self.rng
        term = rng.choice((6, 12, 12, 24, 36))
        method = rng.choice(("annuity", "annuity", "equal_principal"))
        principal = Decimal(rng.randrange(20, 500) * 1000)
        rate = Decimal(rng.choice(("0.0435", "0.0650", "0.0880", "0.1200", "0.1500", "0.1800")))
        applied = self.send(
            c.ApplyForLoan(
                idempotency_key=self.key(),
                business_date=today,
                loan_id=b.loan_id,
                borrower_id=b.borrower_id,
                principal=principal,
                currency=b.currency,
                annual_rate=rate,
                term=term,
                method=method,
                day_count="ACT/365F",
            )
        )
        if applied is None:
            return
        if rng.random() < 0.03:  # a few applications never become loans
            self.send(
                c.RejectLoan(
                    idempotency_key=self.key(),
                    business_date=today,
                    loan_id=b.loan_id,
                    reason="affordability",
                )
            )
            return
        self.send(c.ApproveLoan(idempotency_key=self.key(), business_date=today, loan_id=b.loan_id))
        self.send(
            c.DisburseLoan(idempotency_key=self.key(), business_date=today, loan_id=b.loan_id)
        )

    # ------------------------------------------------------------------ a day
    def act(self, b: Borrower, today: date) -> None:
        """What the borrower does today; the loan is loaded only on days it acts."""
        if today == b.originate_on:
            self.originate(b, today)
            self._learn_schedule(b)
            return
        if today < b.originate_on or (not b.due_dates and not b.pending):
            return
        if b.prepay_on == today:
            self._with_loan(b, lambda loan: self._prepay(b, loan, today))
            self._learn_schedule(b)
            return
        missed = b.first_missed
        if (
            b.profile == "struggler"
            and not b.restructured
            and missed
            and (today - missed).days >= 25
        ):
            b.restructured, b.stop_after = True, 99
            self.send(
                c.RestructureLoan(
                    idempotency_key=self.key(),
                    business_date=today,
                    loan_id=b.loan_id,
                    kind=RestructureKind.EXTENSION,
                    extend_months=6,
                    capitalize_arrears=True,
                )
            )
            self._learn_schedule(b)
            return
        if (
            b.profile == "defaulter"
            and self.written_off is None
            and missed
            and (today - missed).days > 60
        ):
            self.written_off = b.loan_id
            self.send(
                c.WriteOffLoan(
                    idempotency_key=self.key(),
                    business_date=today,
                    loan_id=b.loan_id,
                    reason="uncollectible after 60 DPD",
                )
            )
            b.due_dates.clear()
            return
        if today in b.due_dates:
            if b.paid_installments < b.stop_after:
                b.paid_installments += 1
                b.pending.add(today + timedelta(days=b.lag_days))
                if b.profile in ("late", "defaulter") and self.rng.random() < 0.15:
                    self.desk.pending.append((b.loan_id, today))
            elif b.first_missed is None:
                b.first_missed = today
        if today in b.pending:
            b.pending.discard(today)
            self._with_loan(b, lambda loan: self._pay_arrears(b, loan, today))

    def _learn_schedule(self, b: Borrower) -> None:
        loan = self._loan(b)
        active = loan is not None and loan.status == LoanStatus.ACTIVE
        b.due_dates = {i.due_date for i in loan.future()} if loan and active else set()

    def _with_loan(self, b: Borrower, action: Callable[[Loan], None]) -> None:
        loan = self._loan(b)
        if loan is not None and loan.status == LoanStatus.ACTIVE:
            action(loan)

    def _loan(self, b: Borrower) -> Loan | None:
        try:
            return self.ledger.get_loan(b.loan_id)
        except LedgerError:
            return None

    def _pay_arrears(self, b: Borrower, loan: Loan, today: date) -> None:
        due = loan.arrears_due() + sum(
            (i.total for i in loan.future() if i.due_date == today), Decimal(0)
        )
        if due > 0:
            self.send(
                c.ReceiveRepayment(
                    idempotency_key=self.key(),
                    business_date=today,
                    loan_id=b.loan_id,
                    amount=due,
                    currency=b.currency,
                    reference="demo",
                )
            )

    def _prepay(self, b: Borrower, loan: Loan, today: date) -> None:
        payoff = loan.payoff_amount(today)
        full = self.rng.random() < 0.5
        amount = payoff if full else (payoff * Decimal("0.4")).quantize(Decimal("0.01"))
        self.send(
            c.ReceiveRepayment(
                idempotency_key=self.key(),
                business_date=today,
                loan_id=b.loan_id,
                amount=amount,
                currency=b.currency,
                reference="prepayment",
            )
        )

    def recover(self, today: date) -> None:
        if self.written_off is not None:
            self.send(
                c.ReceiveRecovery(
                    idempotency_key=self.key(),
                    business_date=today,
                    loan_id=self.written_off,
                    amount=Decimal("1500.00"),
                    currency="CNY",
                    reference="collection agency",
                )
            )


class DemoNeedsAppend(StateConflict):
    """The ledger already holds loans and the demo was not asked to add to them."""


def run_demo(
    ledger: DemoLedger,
    *,
    loans: int,
    days: int,
    seed: int,
    start: date | None = None,
    append: bool = False,
    on_day: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    if ledger.loan_ids(limit=1) and not append:
        raise DemoNeedsAppend(
            "the ledger already holds loans: pass --append to add the demo's loans to"
            " them (or point LEDGER_DATABASE_URL at a new database)",
            field="append",
            rule="empty_ledger",
        )
    closed = ledger.closed_through()
    first = start or (ledger.business_date() if closed else ledger.today() - timedelta(days=days))
    started = time.perf_counter()
    demo = Demo(ledger, random.Random(seed), first)
    demo.plan(loans, days)
    recovery_day = days - 5
    today = demo.start
    for day in range(days):
        today = demo.start + timedelta(days=day)
        for borrower in demo.borrowers:
            demo.act(borrower, today)
        demo.desk.work(today)
        if day == recovery_day:
            demo.recover(today)
        summary = ledger.close_business_days(today)
        demo.events += summary.events
        on_day()
    sample = next((b.loan_id for b in demo.borrowers if b.profile == "late"), None)
    return {
        "start": demo.start,
        "end": today,
        "commands": demo.commands,
        "events": demo.events,
        "seconds": time.perf_counter() - started,
        "sample": str(sample) if sample else None,
    }
