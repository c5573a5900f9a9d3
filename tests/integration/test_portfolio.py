"""The portfolio report over the projections says what the oracle
``tests.portfolio_oracle.summarize`` says over the aggregates, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

from ledger.service import Ledger
from tests.integration.test_balances import run_varied_history, runner_for
from tests.portfolio_oracle import summarize

Submit = Callable[..., dict[str, Any]]


def by_class(rows: list[dict[str, Any]], dimension: str) -> dict[str, dict[str, str]]:
    """Rows of one dimension added over currencies, shaped like ``summarize().as_dict()``."""
    out: dict[str, list[Any]] = {}
    for row in rows:
        if row["dimension"] == dimension:
            cell = out.setdefault(row["class"], [0, Decimal(0)])
            cell[0] += row["loans"]
            cell[1] += row["principal"]
    return {k: {"loans": v[0], "principal": v[1]} for k, v in out.items()}


def normalized(section: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        k: {"loans": v["loans"], "principal": Decimal(str(v["principal"]))}
        for k, v in section.items()
    }


def test_portfolio_report_equals_the_summary_of_the_aggregates(
    ledger_app: Ledger, submit: Submit, open_loan: Callable[..., UUID]
) -> None:
    app = ledger_app
    # Given a varied portfolio in two currencies, projected
    run_varied_history(app, submit, open_loan, lambda: None)
    app.close_business_days(date(2026, 8, 3))
    runner_for(app, batch_size=200).catch_up()

    # When the report is read from the projections (as of the ledger's last closed day)
    report, _ = app.report("portfolio")
    expected = summarize(app.get_loan(i) for i in app.loan_ids()).as_dict()

    # Then every figure matches the aggregates
    assert report.sources == ("balances", "delinquency")
    for dimension, section in (
        ("bucket", "by_bucket"),
        ("five_category", "by_category"),
        ("ifrs9_stage", "by_stage"),
    ):
        assert by_class(report.rows, dimension) == normalized(expected[section]), dimension
    totals = report.totals
    assert str(totals["npl_ratio"]) == expected["npl_ratio"]
    assert totals["npl_ratio"] > 0  # the late loan is substandard by now
    assert totals["loans_by_status"] == expected["loans_by_status"]
    assert {k: Decimal(v) for k, v in expected["outstanding_principal"].items()} == totals[
        "outstanding_principal"
    ]
    assert sum(totals["written_off_principal"].values()) == Decimal(
        expected["written_off_principal"]
    )
    assert sum(totals["recovered"].values()) == Decimal(expected["recovered"])
    assert sum(totals["overpayments"].values()) == Decimal(expected["overpayments"])
    # Five-category rows carry their Chinese names
    assert {r["class_zh"] for r in report.rows if r["dimension"] == "five_category"} == {
        "正常",
        "关注",
        "次级",
        "可疑",
        "损失",
    }

    # And the roll-rate matrix covers the last complete month (June to July)
    rolls = totals["roll_rates"]
    assert (rolls["from_month_end"], rolls["to_month_end"]) == ("2026-06-30", "2026-07-31")
    assert set(rolls["loans"]["M4"]) == {"M5"}  # unpaid loans keep rolling
    for from_state, shares in rolls["shares"].items():
        assert sum(shares.values()) == Decimal(1), from_state
