"""Invariants of the balances and delinquency projections over random command histories driven
through the application on SQLite: however the log is cut into batches, the tables equal a
rebuild from zero, and every row equals its aggregate."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.errors import LedgerError
from ledger.bootstrap import build_ledger
from ledger.persistence import migrations
from ledger.service import Ledger
from ledger.settings import Settings
from projections.balances import LoanBalances
from projections.delinquency import Delinquency
from projections.runner import ProjectionRunner
from tests.conftest import open_loan, submit
from tests.integration.test_balances import assert_balances_match_aggregates, table_rows
from tests.integration.test_delinquency_projection import assert_delinquency_matches_aggregates

PROPERTY_SETTINGS = settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
CENT = Decimal("0.01")


@dataclass(frozen=True)
class Step:
    kind: str
    loan: int
    days: int
    size: int  # per-mille of the reference amount
    batch: int  # 0: no catch-up after this step; else the catch-up batch size


steps = st.lists(
    st.builds(
        Step,
        kind=st.sampled_from(
            [
                "eod",
                "eod",
                "eod",
                "repay",
                "repay",
                "payoff",
                "fee",
                "extend",
                "capitalize",
                "write_off",
                "recover",
            ]
        ),
        loan=st.integers(0, 2),
        days=st.integers(1, 45),
        size=st.integers(1, 1500),
        batch=st.sampled_from([0, 0, 1, 3, 7, 25]),
    ),
    min_size=3,
    max_size=12,
)

_databases = itertools.count()


@pytest.fixture(scope="module")
def database_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("projection_properties")


def fresh_app(directory: Path) -> Ledger:
    url = f"sqlite:///{directory / f'ledger_{next(_databases)}.db'}"
    migrations.upgrade(url)
    return build_ledger(Settings(database_url=url))


def runner(app: Ledger, batch_size: int = 5000) -> ProjectionRunner:
    return app.projection_runner([LoanBalances(), Delinquency()], batch_size=batch_size)


def play(app: Ledger, history: list[Step]) -> None:
    """Three loans (annuity / equal principal, both prepayment options, two currencies) and
    the history's commands; commands the domain refuses simply change nothing."""
    loans = [
        open_loan(app, borrower_id="B1", principal="60000", term=6),
        open_loan(
            app,
            borrower_id="B2",
            principal="30000",
            term=4,
            method="equal_principal",
            prepayment="lower_installment",
            currency="USD",
        ),
        open_loan(app, borrower_id="B3", principal="12000", term=3, waterfall="by_installment"),
    ]
    today = date(2026, 1, 11)
    for step in history:
        today += timedelta(days=step.days)
        loan_id = loans[step.loan]
        currency = "USD" if step.loan == 1 else "CNY"
        try:
            if step.kind == "eod":
                app.close_business_days(today)
            else:
                loan = app.get_loan(loan_id)
                reference = loan.payoff_amount(today) if loan.status == "active" else Decimal(1)
                amount = max(CENT, (reference * step.size / 1000).quantize(CENT))
                command: dict[str, Any] = {
                    "repay": {"type": "receive_repayment", "amount": amount, "currency": currency},
                    "payoff": {
                        "type": "receive_repayment",
                        "amount": reference + CENT,
                        "currency": currency,
                    },
                    "fee": {"type": "charge_fee", "amount": Decimal(step.size) / 10},
                    "extend": {
                        "type": "restructure_loan",
                        "kind": "extension",
                        "extend_months": 1 + step.size % 6,
                    },
                    "capitalize": {"type": "restructure_loan", "kind": "capitalization"},
                    "write_off": {"type": "write_off_loan", "reason": "property test"},
                    "recover": {
                        "type": "receive_recovery",
                        "amount": Decimal(step.size),
                        "currency": currency,
                    },
                }[step.kind]
                kind = command.pop("type")
                submit(
                    app,
                    kind,
                    loan_id=loan_id,
                    business_date=today,
                    **{k: str(v) if isinstance(v, Decimal) else v for k, v in command.items()},
                )
        except LedgerError:
            pass
        if step.batch:
            runner(app, step.batch).catch_up()


TABLES = [t for p in (LoanBalances, Delinquency) for t in p.tables]


@PROPERTY_SETTINGS
@given(history=steps)
def test_rebuilt_projection_equals_incremental(database_dir: Path, history: list[Step]) -> None:
    app = fresh_app(database_dir)
    try:
        # Given projections caught up in random small batches between commands
        play(app, history)
        runner(app, 11).catch_up()
        incremental = [table_rows(app, t) for t in TABLES]

        # When both are rebuilt from zero
        for name in ("balances", "delinquency"):
            runner(app).rebuild(name)

        # Then every table is identical
        assert [table_rows(app, t) for t in TABLES] == incremental
    finally:
        app.close()
        app.engine.dispose()


@PROPERTY_SETTINGS
@given(history=steps)
def test_balances_equal_aggregates(database_dir: Path, history: list[Step]) -> None:
    app = fresh_app(database_dir)
    try:
        play(app, history)
        runner(app, 17).catch_up()
        assert_balances_match_aggregates(app)
        assert_delinquency_matches_aggregates(app)
    finally:
        app.close()
        app.engine.dispose()
