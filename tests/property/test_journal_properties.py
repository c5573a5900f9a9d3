"""Invariants of the journal over random command histories driven through the application on
SQLite: the books balance at every batch boundary, and a rebuild equals the incremental build."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from domain.errors import LedgerError
from ledger.app.commands import parse_command
from ledger.bootstrap import build_ledger
from ledger.persistence import migrations
from ledger.service import Ledger
from ledger.settings import Settings
from projections.journal import Journal, account_balances, journal_entries, journal_loans

D = Decimal
CENT = D("0.01")
START = date(2026, 1, 10)
FAST = settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass(frozen=True)
class Step:
    kind: str
    loan: int  # which of the loans opened so far (modulo their number)
    days: int  # how far end of day moves the business date
    size: int  # per-mille of the reference amount


steps = st.lists(
    st.builds(
        Step,
        kind=st.sampled_from(
            [
                "open",
                "open_usd",
                "eod",
                "eod",
                "eod",
                "repay",
                "repay",
                "payoff",
                "fee",
                "restructure",
                "capitalize",
                "write_off",
                "recover",
                "recover",
                "project",
            ]
        ),
        loan=st.integers(min_value=0, max_value=3),
        days=st.integers(min_value=1, max_value=70),
        size=st.integers(min_value=1, max_value=1100),
    ),
    min_size=3,
    max_size=14,
)

#: Every history starts with a loan a month into its life (interest accrued, one installment due).
PROLOGUE = [Step("open", 0, 1, 100), Step("eod", 0, 32, 1)]


@cache
def _template() -> Path:
    """One migrated database, copied for each example (migrating is the slow part)."""
    folder = tempfile.mkdtemp(prefix="journal_props_")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = Path(folder) / "template.db"
    migrations.upgrade(f"sqlite:///{path}")
    return path


@contextmanager
def fresh_ledger() -> Iterator[Ledger]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ledger.db"
        shutil.copy(_template(), path)
        app = build_ledger(Settings(database_url=f"sqlite:///{path}"))
        try:
            yield app
        finally:
            app.close()


class Story:
    """Plays steps against the ledger as an integration would; refused commands change nothing
    and are simply skipped."""

    def __init__(self, app: Ledger) -> None:
        self.app = app
        self.today = START
        self.loans: list[UUID] = []

    def send(self, type_: str, **fields: Any) -> None:
        fields = {
            k: str(v) if isinstance(v, date | UUID | Decimal) else v for k, v in fields.items()
        }
        with suppress(LedgerError):
            self.app.execute(
                parse_command(
                    {
                        "type": type_,
                        "idempotency_key": str(uuid4()),
                        "business_date": str(self.today),
                        **fields,
                    }
                )
            )

    def play(self, step: Step) -> None:
        if step.kind in ("open", "open_usd"):
            loan_id = uuid4()
            self.send(
                "apply_for_loan",
                loan_id=loan_id,
                borrower_id=f"B{len(self.loans)}",
                principal=str(1000 * step.size),
                term=1 + step.days % 12,
                currency="USD" if step.kind == "open_usd" else "CNY",
                annual_rate="0.12",
                day_count="30/360",
                grace_days=step.loan % 2,
            )
            self.send("approve_loan", loan_id=loan_id)
            self.send("disburse_loan", loan_id=loan_id)
            self.loans.append(loan_id)
            return
        if step.kind == "eod":
            through = self.today + timedelta(days=step.days - 1)
            self.app.close_business_days(through)
            self.today = through + timedelta(days=1)
            return
        if not self.loans:
            return
        loan_id = self.loans[step.loan % len(self.loans)]
        loan = self.app.get_loan(loan_id)
        currency = loan.currency
        if step.kind in ("repay", "payoff"):
            base = loan.payoff_amount(self.today) if loan.status == "active" else D(0)
            size = step.size if step.kind == "repay" else 1000 + step.size % 50
            amount = max(CENT, (base * size / 1000).quantize(CENT))
            self.send("receive_repayment", loan_id=loan_id, amount=amount, currency=currency)
        elif step.kind == "fee":
            self.send("charge_fee", loan_id=loan_id, amount=D(step.size) / 10)
        elif step.kind in ("restructure", "capitalize"):
            self.send(
                "restructure_loan",
                loan_id=loan_id,
                kind="extension",
                extend_months=1 + step.size % 6,
                capitalize_arrears=step.kind == "capitalize",
            )
        elif step.kind == "write_off":
            self.send("write_off_loan", loan_id=loan_id, reason="property test")
        elif step.kind == "recover":
            self.send("receive_recovery", loan_id=loan_id, amount=D(step.size), currency=currency)


def differences(app: Ledger) -> set[Decimal]:
    """Debits minus credits per currency, over the journal lines and over the balances."""
    with app.engine.connect() as conn:
        lines = conn.execute(
            select(
                journal_entries.c.currency,
                func.sum(journal_entries.c.debit),
                func.sum(journal_entries.c.credit),
            ).group_by(journal_entries.c.currency)
        ).all()
        totals = conn.execute(
            select(account_balances.c.currency, func.sum(account_balances.c.balance)).group_by(
                account_balances.c.currency
            )
        ).all()
    # SQLite sums NUMERIC as floating point: quantize to the stored scale before comparing.
    q = D("0.0001")
    return {D(str(dr)).quantize(q) - D(str(cr)).quantize(q) for _, dr, cr in lines} | {
        D(str(b)).quantize(q) for _, b in totals
    }


def snapshot(app: Ledger) -> dict[str, list[tuple[Any, ...]]]:
    with app.engine.connect() as conn:
        return {t.name: sorted(tuple(r) for r in conn.execute(select(t))) for t in Journal.tables}


@FAST
@given(history=steps, batch_size=st.integers(min_value=1, max_value=25))
def test_trial_balance_is_zero_at_every_batch_boundary(
    history: list[Step], batch_size: int
) -> None:
    with fresh_ledger() as app:
        story = Story(app)
        runner = app.projection_runner([Journal()], batch_size=batch_size)
        runner.ensure_tracking()
        journal = runner.get("journal")
        for step in [*PROLOGUE, *history]:
            story.play(step)
            while runner.run_batch(journal):
                assert differences(app) <= {D(0)}
        assert runner.position("journal") == runner.head()


@FAST
@given(history=steps, batch_size=st.integers(min_value=1, max_value=25))
def test_rebuilt_journal_equals_incremental(history: list[Step], batch_size: int) -> None:
    with fresh_ledger() as app:
        story = Story(app)
        runner = app.projection_runner([Journal()], batch_size=batch_size)
        for step in [*PROLOGUE, *history, Step("eod", 0, 40, 1)]:
            if step.kind == "project":
                runner.catch_up()
            else:
                story.play(step)
        runner.catch_up()
        incremental = snapshot(app)

        runner.rebuild("journal")

        assert snapshot(app) == incremental
        # and both equal the aggregates, loan by loan
        subledger = {r[0]: r for r in incremental[journal_loans.name]}
        for loan_id in story.loans:
            loan = app.get_loan(loan_id)
            row = subledger.get(str(loan_id))
            if row is None:  # refused before it was applied for
                continue
            assert [D(v) for v in row[2:]] == [
                loan.principal_not_due,
                loan.principal_due_unpaid(),
                loan.interest_accrued,
                loan.interest_due_unpaid(),
                loan.penalty_outstanding,
                loan.fees_outstanding,
                -loan.overpayment,
            ]
