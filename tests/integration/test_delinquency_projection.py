"""The delinquency projection against the aggregates, on SQLite and on PostgreSQL: DPD at the
close of each day, the domain's bucket / five-category / stage, the transitions history and
the roll-rate counts kept from it."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

from domain.loan.state import LoanStatus
from ledger.service import Ledger
from projections.delinquency import (
    delinquency_report,
    delinquency_roll_counts,
    delinquency_summary,
    delinquency_transitions,
    loan_delinquency,
    loan_installments,
    month_end,
    previous_month_end,
)
from tests.integration.test_balances import pay, run_varied_history, runner_for, table_rows

Submit = Callable[..., dict[str, Any]]
DELINQUENCY_TABLES = (
    loan_delinquency,
    loan_installments,
    delinquency_transitions,
    delinquency_summary,
    delinquency_roll_counts,
)


def assert_delinquency_matches_aggregates(app: Ledger) -> None:
    rows = {r["loan_id"]: r for r in table_rows(app, loan_delinquency)}
    assert sorted(rows) == sorted(str(i) for i in app.loan_ids())
    for loan_id in app.loan_ids():
        loan, row = app.get_loan(loan_id), rows[str(loan_id)]
        expected = {
            "status": str(loan.status),
            "dpd": loan.current_dpd,
            "bucket": loan.classification["bucket"],
            "five_category": loan.classification["category"],
            "ifrs9_stage": loan.classification["stage"],
            "oldest_unpaid_due_date": loan.oldest_unpaid_due_date(),
            "overdue_since": loan.overdue_since,
            "observation_until": loan.observation_until,
            "principal_outstanding": loan.principal_outstanding,
        }
        if loan.status == LoanStatus.ACTIVE:
            expected["as_of"] = loan.last_closed_on
        assert {k: row[k] for k in expected} == expected, f"loan {loan_id}"
    summary: Counter[tuple[str, str, str, int]] = Counter()
    principal: dict[tuple[str, str, str, int], Decimal] = {}
    for row in rows.values():
        if row["status"] == "active":
            key = (row["currency"], row["bucket"], row["five_category"], row["ifrs9_stage"])
            summary[key] += 1
            principal[key] = principal.get(key, Decimal(0)) + row["principal_outstanding"]
    kept = {
        (r["currency"], r["bucket"], r["five_category"], r["ifrs9_stage"]): (
            r["loans"],
            r["principal_outstanding"],
        )
        for r in table_rows(app, delinquency_summary)
        if r["loans"]
    }
    assert kept == {k: (n, principal[k]) for k, n in summary.items()}


def roll_counts_from_history(app: Ledger, to_end: date) -> dict[tuple[str, str], int]:
    """Roll counts straight from the transitions history: each loan's state at a month end is
    its transition with business_date <= M < valid_until."""
    from_end = previous_month_end(to_end)

    def state_at(history: list[dict[str, Any]], day: date) -> str | None:
        for t in history:
            if t["business_date"] <= day and (t["valid_until"] is None or t["valid_until"] > day):
                return str(t["roll_state"])
        return None

    by_loan: dict[str, list[dict[str, Any]]] = {}
    for t in table_rows(app, delinquency_transitions):
        by_loan.setdefault(t["loan_id"], []).append(t)
    counts: Counter[tuple[str, str]] = Counter()
    for history in by_loan.values():
        before, after = state_at(history, from_end), state_at(history, to_end)
        if before is not None and before not in ("closed", "written_off"):
            assert after is not None
            counts[(before, after)] += 1
    return dict(counts)


def kept_roll_counts(app: Ledger, to_end: date) -> dict[tuple[str, str], int]:
    return {
        (r["from_state"], r["to_state"]): r["loans"]
        for r in table_rows(app, delinquency_roll_counts)
        if r["month_end"] == to_end and r["loans"]
    }


def test_dpd_and_classification_equal_the_aggregates_at_every_chapter(
    ledger_app: Ledger, submit: Submit, open_loan: Callable[..., UUID]
) -> None:
    app = ledger_app
    runner = runner_for(app, batch_size=83)

    def check() -> None:
        runner.catch_up(["delinquency"])
        assert_delinquency_matches_aggregates(app)

    # Given a loan that settles principal first, so only penalty is left in arrears
    penalty_only = open_loan(app, borrower_id="B9", waterfall="principal_first")
    loans = run_varied_history(app, submit, open_loan, check)
    app.close_business_days(date(2026, 6, 20))
    loan = app.get_loan(penalty_only)
    owed = loan.principal_due_unpaid() + loan.interest_due_unpaid()
    pay(submit, app, penalty_only, owed, date(2026, 6, 21))
    loan = app.get_loan(penalty_only)
    assert loan.penalty_outstanding > 0 and loan.oldest_unpaid_due_date() == loan.overdue_since
    check()
    app.close_business_days(date(2026, 7, 3))
    check()

    rows = {r["loan_id"]: r for r in table_rows(app, loan_delinquency)}
    late = rows[str(loans["late"])]
    assert late["dpd"] > 90 and late["five_category"] == "substandard" and late["ifrs9_stage"] == 3
    assert rows[str(loans["written_off"])]["five_category"] == "loss"
    assert rows[str(loans["restructured"])]["observation_until"] is not None

    # Then the transitions history tells each loan's classification story
    history = [
        t for t in table_rows(app, delinquency_transitions) if t["loan_id"] == str(loans["late"])
    ]
    history.sort(key=lambda t: t["position"])
    assert [t["to_bucket"] for t in history] == ["M0", "M1", "M2", "M3", "M4", "M5"]
    assert history[0]["kind"] == "disbursed"
    assert all(a["valid_until"] == b["business_date"] for a, b in itertools.pairwise(history))
    kinds = Counter(t["kind"] for t in table_rows(app, delinquency_transitions))
    assert kinds["closed"] == 1 and kinds["written_off"] == 1 and kinds["disbursed"] == 8

    # And the roll-rate counts equal what the history says, month end by month end
    for end in (
        date(2026, 2, 28),
        date(2026, 3, 31),
        date(2026, 4, 30),
        date(2026, 5, 31),
        date(2026, 6, 30),
    ):
        assert kept_roll_counts(app, end) == roll_counts_from_history(app, end), end
    assert kept_roll_counts(app, date(2026, 2, 28))[("M0", "closed")] == 1
    assert kept_roll_counts(app, date(2026, 4, 30))[("M2", "written_off")] == 1


def test_catching_up_again_changes_nothing_and_a_rebuild_is_identical(
    ledger_app: Ledger, submit: Submit, open_loan: Callable[..., UUID]
) -> None:
    app = ledger_app
    runner = runner_for(app, batch_size=61)
    run_varied_history(app, submit, open_loan, lambda: runner.catch_up(["delinquency"]))
    incremental = [table_rows(app, t) for t in DELINQUENCY_TABLES]

    assert runner.catch_up(["delinquency"]) == {"delinquency": 0}
    assert [table_rows(app, t) for t in DELINQUENCY_TABLES] == incremental

    runner.rebuild("delinquency")
    assert [table_rows(app, t) for t in DELINQUENCY_TABLES] == incremental
    assert_delinquency_matches_aggregates(app)


def test_the_delinquency_report_lists_active_loans_worst_first(
    ledger_app: Ledger, submit: Submit, open_loan: Callable[..., UUID]
) -> None:
    app = ledger_app
    run_varied_history(app, submit, open_loan, lambda: None)
    runner_for(app).catch_up(["delinquency"])

    with app.engine.connect() as conn:
        report = delinquency_report(conn)
        everything = delinquency_report(conn, status=None)

    assert report.sources == ("delinquency",)
    assert {r["status"] for r in report.rows} == {"active"}
    assert [r["dpd"] for r in report.rows] == sorted((r["dpd"] for r in report.rows), reverse=True)
    assert report.rows[0]["five_category_zh"] in ("关注", "次级")
    assert len(everything.rows) == len(app.loan_ids())
    assert sum(report.totals["by_bucket"].values()) == report.totals["loans"]


def test_month_end_helpers() -> None:
    assert month_end(date(2026, 2, 10)) == date(2026, 2, 28)
    assert previous_month_end(date(2026, 3, 31)) == date(2026, 2, 28)
