"""The loan balances projection against the aggregates, on SQLite and on PostgreSQL.

A varied portfolio is driven through the application (disbursement, end of day, on-time and
late payments, prepayments with both options, payoff with overpayment, a fee, a restructure
with capitalized arrears, a write-off and a recovery); after each chapter the projection is
caught up and every row must equal what the aggregate says.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import select

from ledger.service import Ledger
from projections.balances import LoanBalances, balances_report, balances_summary, loan_balances
from projections.delinquency import Delinquency
from projections.runner import ProjectionRunner
from tests.factories import balances_of

Submit = Callable[..., dict[str, Any]]


def runner_for(app: Ledger, batch_size: int = 5000) -> ProjectionRunner:
    return app.projection_runner([LoanBalances(), Delinquency()], batch_size=batch_size)


def table_rows(app: Ledger, table: Any) -> list[dict[str, Any]]:
    """Every row of ``table`` in primary-key order, for comparing whole tables."""
    with app.engine.connect() as conn:
        return [
            dict(r)
            for r in conn.execute(select(table).order_by(*table.primary_key.columns)).mappings()
        ]


def assert_balances_match_aggregates(app: Ledger) -> None:
    rows = {r["loan_id"]: r for r in table_rows(app, loan_balances)}
    ids = app.loan_ids()
    assert sorted(rows) == sorted(str(i) for i in ids)
    for loan_id in ids:
        loan = app.get_loan(loan_id)
        view, row = balances_of(loan), rows[str(loan_id)]
        expected = {
            "borrower_id": view.borrower_id,
            "currency": view.currency,
            "status": view.status,
            "principal_not_due": view.principal_not_due,
            "principal_overdue": view.principal_overdue,
            "principal_outstanding": view.principal_outstanding,
            "interest_accrued": view.interest_accrued,
            "interest_overdue": view.interest_overdue,
            "penalty_outstanding": view.penalty_outstanding,
            "fees_outstanding": view.fees_outstanding,
            "overpayment": view.overpayment,
            "disbursed": loan.disbursed,
            "capitalized": loan.capitalized,
            "principal_paid": loan.paid["principal"],
            "interest_paid": loan.paid["interest"],
            "penalty_paid": loan.paid["penalty"],
            "fees_paid": loan.paid["fees"],
            "written_off_principal": loan.written_off.get("principal", Decimal(0)),
            "recovered": loan.recovered,
        }
        assert {k: row[k] for k in expected} == expected, f"loan {loan_id}"
    # The summary is the sum of the rows.
    summary: dict[tuple[str, str], list[Any]] = {}
    for row in rows.values():
        cell = summary.setdefault((row["status"], row["currency"]), [0, Decimal(0)])
        cell[0] += 1
        cell[1] += row["principal_outstanding"]
    kept = {
        (r["status"], r["currency"]): [r["loans"], r["principal_outstanding"]]
        for r in table_rows(app, balances_summary)
        if r["loans"]
    }
    assert kept == summary


def varied_portfolio(
    app: Ledger, submit: Submit, open_loan: Callable[..., UUID]
) -> dict[str, UUID]:
    """Build a portfolio chapter by chapter; ``check()`` runs after each one."""
    loans = {
        "on_time": open_loan(app, borrower_id="B1"),
        "late": open_loan(app, borrower_id="B2"),
        "shorten": open_loan(app, borrower_id="B3"),
        "lower": open_loan(app, borrower_id="B4", prepayment="lower_installment"),
        "payoff": open_loan(app, borrower_id="B5", principal="12000", annual_rate="0.06", term=3),
        "restructured": open_loan(app, borrower_id="B6"),
        "written_off": open_loan(app, borrower_id="B7", currency="USD"),
    }
    submit(
        app,
        "apply_for_loan",
        borrower_id="B8",
        principal="5000",
        annual_rate="0.1",
        term=6,
        business_date=date(2026, 1, 5),
    )  # an application never disbursed
    return loans


def pay(
    submit: Submit,
    app: Ledger,
    loan_id: UUID,
    amount: str | Decimal,
    on: date,
    currency: str = "CNY",
) -> None:
    submit(
        app,
        "receive_repayment",
        loan_id=loan_id,
        amount=str(amount),
        currency=currency,
        business_date=on,
    )


def run_varied_history(
    app: Ledger, submit: Submit, open_loan: Callable[..., UUID], check: Callable[[], None]
) -> dict[str, UUID]:
    loans = varied_portfolio(app, submit, open_loan)
    check()
    # A fee before the first due date
    submit(
        app,
        "charge_fee",
        loan_id=loans["on_time"],
        amount="200.00",
        kind="service",
        business_date=date(2026, 1, 20),
    )
    app.close_business_days(date(2026, 2, 10))
    check()
    # On-time payments, prepayments under both options, a payoff with an overpayment
    pay(submit, app, loans["on_time"], "9084.88", date(2026, 2, 11))
    pay(submit, app, loans["shorten"], "18884.88", date(2026, 2, 11))
    pay(submit, app, loans["lower"], "18884.88", date(2026, 2, 11))
    payoff = app.get_loan(loans["payoff"]).payoff_amount(date(2026, 2, 11))
    pay(submit, app, loans["payoff"], payoff + Decimal("50.00"), date(2026, 2, 11))
    check()
    # Months pass: the late loan and the one to be restructured fall behind
    app.close_business_days(date(2026, 4, 20))
    check()
    pay(submit, app, loans["late"], "5000.00", date(2026, 4, 21))  # late and partial
    submit(
        app,
        "restructure_loan",
        loan_id=loans["restructured"],
        kind="extension",
        extend_months=6,
        capitalize_arrears=True,
        business_date=date(2026, 4, 21),
    )
    submit(
        app,
        "write_off_loan",
        loan_id=loans["written_off"],
        reason="insolvent",
        business_date=date(2026, 4, 21),
    )
    check()
    app.close_business_days(date(2026, 6, 5))
    submit(
        app,
        "receive_recovery",
        loan_id=loans["written_off"],
        amount="3000.00",
        currency="USD",
        business_date=date(2026, 6, 6),
    )
    check()
    return loans


def test_balances_equal_the_aggregates_through_a_varied_history(
    ledger_app: Ledger, submit: Submit, open_loan: Callable[..., UUID]
) -> None:
    app = ledger_app
    runner = runner_for(app, batch_size=97)  # batches cut through days and loans

    def check() -> None:
        runner.catch_up(["balances"])
        assert_balances_match_aggregates(app)

    loans = run_varied_history(app, submit, open_loan, check)

    rows = {r["loan_id"]: r for r in table_rows(app, loan_balances)}
    assert rows[str(loans["payoff"])]["status"] == "closed"
    assert rows[str(loans["payoff"])]["overpayment"] == Decimal("50.00")
    assert rows[str(loans["restructured"])]["capitalized"] > 0
    assert rows[str(loans["written_off"])]["recovered"] == Decimal("3000.00")
    assert rows[str(loans["late"])]["principal_overdue"] > 0
    # And the projection says how fresh it is
    assert runner.position("balances") == runner.head()


def test_catching_up_again_changes_nothing_and_a_rebuild_is_identical(
    ledger_app: Ledger, submit: Submit, open_loan: Callable[..., UUID]
) -> None:
    app = ledger_app
    runner = runner_for(app, batch_size=50)
    run_varied_history(app, submit, open_loan, lambda: runner.catch_up(["balances"]))
    incremental = table_rows(app, loan_balances), table_rows(app, balances_summary)

    # When the runner catches up again, nothing changes
    assert runner.catch_up(["balances"]) == {"balances": 0}
    assert (table_rows(app, loan_balances), table_rows(app, balances_summary)) == incremental

    # When the projection is rebuilt from zero, the tables are identical
    result = runner.rebuild("balances")
    assert result["position"] == runner.head()
    assert (table_rows(app, loan_balances), table_rows(app, balances_summary)) == incremental
    assert_balances_match_aggregates(app)


def test_the_balances_report_reads_the_table_and_sums_per_currency(
    ledger_app: Ledger, submit: Submit, open_loan: Callable[..., UUID]
) -> None:
    app = ledger_app
    runner = runner_for(app)
    run_varied_history(app, submit, open_loan, lambda: None)
    runner.catch_up(["balances"])

    with app.engine.connect() as conn:
        report = balances_report(conn)
        active = balances_report(conn, status="active", limit=2)

    assert report.sources == ("balances",)
    assert len(report.rows) == len(app.loan_ids())
    outstanding = sum(r["principal_outstanding"] for r in report.rows if r["currency"] == "CNY")
    assert report.totals["by_currency"]["CNY"]["principal_outstanding"] == outstanding
    assert report.totals["by_currency"]["USD"]["loans"] == 1
    assert len(active.rows) == 2 and {r["status"] for r in active.rows} == {"active"}
