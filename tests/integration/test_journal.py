"""The journal projection on SQLite and PostgreSQL: loans driven through commands and end of
day, then the journal caught up; its books must equal the aggregates, balance per currency,
post nothing twice and rebuild to identical tables."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import select

from domain.accounting import (
    ACCRUED_INTEREST,
    CASH,
    CREDIT_LOSSES,
    FEES_RECEIVABLE,
    INTEREST_RECEIVABLE,
    OVERPAYMENTS,
    PENALTY_RECEIVABLE,
    PRINCIPAL_DUE,
    PRINCIPAL_NOT_DUE,
    RECOVERIES_INCOME,
)
from domain.loan import Loan
from domain.loan.state import LoanStatus
from ledger.service import Ledger
from projections.journal import (
    Journal,
    account_balances,
    journal_entries,
    journal_loans,
    journal_report,
    trial_balance_report,
)

Submit = Callable[..., dict[str, Any]]
OpenLoan = Callable[..., UUID]
D = Decimal


def balances(app: Ledger) -> dict[tuple[str, str], Decimal]:
    with app.engine.connect() as conn:
        return {
            (r.account, r.currency): D(r.balance) for r in conn.execute(select(account_balances))
        }


def table_rows(app: Ledger, table: Any) -> list[tuple[Any, ...]]:
    with app.engine.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(select(table)))


def sub_ledger(app: Ledger, loan_id: UUID) -> dict[str, Decimal]:
    with app.engine.connect() as conn:
        row = (
            conn.execute(select(journal_loans).where(journal_loans.c.loan_id == str(loan_id)))
            .mappings()
            .one()
        )
    return {k: D(v) for k, v in row.items() if k not in ("loan_id", "currency")}


def aggregate_balances(loan: Loan) -> dict[str, Decimal]:
    return {
        "principal_not_due": loan.principal_not_due,
        "principal_due": loan.principal_due_unpaid(),
        "accrued_interest": loan.interest_accrued,
        "interest_receivable": loan.interest_due_unpaid(),
        "penalty_receivable": loan.penalty_outstanding,
        "fees_receivable": loan.fees_outstanding,
        "overpayments": -loan.overpayment,
    }


def test_the_journal_equals_the_loans_and_the_trial_balance_is_zero(
    ledger_app: Ledger, submit: Submit, open_loan: OpenLoan
) -> None:
    app = ledger_app
    runner = app.projection_runner([Journal()], batch_size=50)

    # Given three loans, one of them in USD
    a = open_loan(app, borrower_id="A")
    b = open_loan(app, borrower_id="B", principal="20000", currency="USD", term=6)
    c = open_loan(app, borrower_id="C", principal="50000", grace_days=0)
    app.close_business_days(date(2026, 2, 10))
    runner.catch_up()  # incrementally, part-way through the story

    # When A pays its first installment and prepays 5,000; C is charged a fee; a month later
    # A pays off with 10 too much, B is restructured with its arrears capitalized and C,
    # months overdue, is written off and recovers 3,000
    submit(
        app,
        "receive_repayment",
        loan_id=a,
        amount="13884.88",
        currency="CNY",
        business_date=date(2026, 2, 11),
    )
    submit(app, "charge_fee", loan_id=c, amount="75.00", business_date=date(2026, 2, 11))
    app.close_business_days(date(2026, 4, 15))
    payoff = app.get_loan(a).payoff_amount(date(2026, 4, 16))
    submit(
        app,
        "receive_repayment",
        loan_id=a,
        amount=str(payoff + 10),
        currency="CNY",
        business_date=date(2026, 4, 16),
    )
    submit(
        app,
        "restructure_loan",
        loan_id=b,
        kind="extension",
        extend_months=3,
        capitalize_arrears=True,
        business_date=date(2026, 4, 16),
    )
    submit(
        app, "write_off_loan", loan_id=c, reason="uncollectable", business_date=date(2026, 4, 16)
    )
    submit(
        app,
        "receive_recovery",
        loan_id=c,
        amount="3000",
        currency="CNY",
        business_date=date(2026, 4, 16),
    )
    app.close_business_days(date(2026, 5, 31))
    runner.catch_up()

    # Then each loan's sub-ledger equals the aggregate's balances
    loans = {x: app.get_loan(x) for x in (a, b, c)}
    assert loans[a].status == LoanStatus.CLOSED
    assert loans[c].status == LoanStatus.WRITTEN_OFF
    for loan_id, loan in loans.items():
        assert sub_ledger(app, loan_id) == aggregate_balances(loan)

    # And the general ledger's principal accounts equal the principal outstanding
    gl = balances(app)
    assert gl[(PRINCIPAL_NOT_DUE, "USD")] + gl.get((PRINCIPAL_DUE, "USD"), D(0)) == (
        loans[b].principal_outstanding
    )
    assert gl[(PRINCIPAL_NOT_DUE, "CNY")] + gl[(PRINCIPAL_DUE, "CNY")] == 0  # paid off, lost
    for account, expected in (
        (ACCRUED_INTEREST, loans[b].interest_accrued),
        (INTEREST_RECEIVABLE, loans[b].interest_due_unpaid()),
        (PENALTY_RECEIVABLE, loans[b].penalty_outstanding),
        (FEES_RECEIVABLE, loans[b].fees_outstanding),
    ):
        assert gl.get((account, "USD"), D(0)) == expected
    assert gl[(OVERPAYMENTS, "CNY")] == D("-10")
    assert gl[(RECOVERIES_INCOME, "CNY")] == D("-3000")
    written_off = loans[c].written_off
    assert gl[(CREDIT_LOSSES, "CNY")] == sum(written_off.values(), D(0)) > 0
    paid_cny = sum((sum(loans[x].paid.values(), D(0)) for x in (a, c)), D(0))
    assert gl[(CASH, "CNY")] == D("-150000") + paid_cny + D("10") + D("3000")

    # And the trial balance nets to zero in each currency, and so does every entry
    with app.engine.connect() as conn:
        report = trial_balance_report(conn)
        one_loan = journal_report(conn, loan_id=str(c))
    assert report.sources == ("journal",)
    assert report.totals["balanced"] is True
    assert set(report.totals["by_currency"]) == {"CNY", "USD"}
    assert all(
        t["difference"] == 0 and t["debit_total"] > 0 for t in report.totals["by_currency"].values()
    )
    entries: dict[int, Decimal] = defaultdict(Decimal)
    for row in table_rows(app, journal_entries):
        entries[row[0]] += D(row[6]) - D(row[7])
    assert set(entries.values()) == {0}
    assert {r["loan_id"] for r in one_loan.rows} == {str(c)}
    assert one_loan.totals["debit"] == one_loan.totals["credit"]
    assert "WrittenOff" in {r["event_type"] for r in one_loan.rows}


def test_rerunning_posts_nothing_and_a_rebuild_gives_identical_tables(
    ledger_app: Ledger, submit: Submit, open_loan: OpenLoan
) -> None:
    app = ledger_app
    runner = app.projection_runner([Journal()], batch_size=7)
    loan_id = open_loan(app)
    app.close_business_days(date(2026, 3, 20))
    submit(
        app,
        "receive_repayment",
        loan_id=loan_id,
        amount="5000",
        currency="CNY",
        business_date=date(2026, 3, 21),
    )
    first = runner.catch_up()
    assert first["journal"] > 0
    before = {t.name: table_rows(app, t) for t in Journal.tables}

    # When the journal is caught up again, nothing is posted twice
    assert runner.catch_up() == {"journal": 0}
    assert {t.name: table_rows(app, t) for t in Journal.tables} == before

    # And a rebuild from zero gives the same rows at the same position
    result = runner.rebuild("journal")
    assert result["position"] == runner.head()
    assert {t.name: table_rows(app, t) for t in Journal.tables} == before

    # And the journal keeps going incrementally after the rebuild
    app.close_business_days(date(2026, 4, 15))
    runner.catch_up()
    assert sub_ledger(app, loan_id) == aggregate_balances(app.get_loan(loan_id))
    assert len(table_rows(app, journal_entries)) > len(before["journal_entries"])
