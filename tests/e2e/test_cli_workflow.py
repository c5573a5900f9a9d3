"""A servicing day in the life of the ledger, driven only through the `ledger` command line.

The story (once per backend): an operator migrates a fresh database, submits a JSONL batch from
the core system — loan A (100 000 CNY, 12 months, 等额本息) is applied for, approved, disbursed
and pays its first installment; loan B (1 000 CNY, one month) is paid off — then closes the
business days through 2026-03-15. Loan A's second installment (due 2026-03-10) is unpaid by then,
so A is 5 days past due. The user then looks at the outcome with the read commands (run side by
side to keep the suite fast), and each test checks one of those views.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.e2e.conftest import Ledger, Run

LOAN_A = "a0000000-0000-4000-8000-00000000000a"
LOAN_B = "b0000000-0000-4000-8000-00000000000b"

BATCH: list[dict[str, Any]] = [
    {
        "type": "apply_for_loan",
        "idempotency_key": "core-A-apply",
        "loan_id": LOAN_A,
        "borrower_id": "C-1001",
        "principal": "100000.00",
        "currency": "CNY",
        "annual_rate": "0.12",
        "term": 12,
        "method": "annuity",
        "day_count": "30/360",
        "business_date": "2026-01-05",
    },
    {
        "type": "approve_loan",
        "idempotency_key": "core-A-approve",
        "loan_id": LOAN_A,
        "business_date": "2026-01-06",
    },
    {
        "type": "disburse_loan",
        "idempotency_key": "core-A-disburse",
        "loan_id": LOAN_A,
        "first_due": "2026-02-10",
        "business_date": "2026-01-10",
    },
    {
        "type": "apply_for_loan",
        "idempotency_key": "core-B-apply",
        "loan_id": LOAN_B,
        "borrower_id": "C-1002",
        "principal": "1000.00",
        "currency": "CNY",
        "annual_rate": "0.12",
        "term": 1,
        "method": "annuity",
        "day_count": "30/360",
        "business_date": "2026-01-05",
    },
    {
        "type": "approve_loan",
        "idempotency_key": "core-B-approve",
        "loan_id": LOAN_B,
        "business_date": "2026-01-06",
    },
    {
        "type": "disburse_loan",
        "idempotency_key": "core-B-disburse",
        "loan_id": LOAN_B,
        "first_due": "2026-02-10",
        "business_date": "2026-01-10",
    },
    {
        "type": "receive_repayment",
        "idempotency_key": "pay-9001",
        "loan_id": LOAN_A,
        "amount": "8884.88",
        "currency": "CNY",
        "business_date": "2026-02-10",
    },
    {
        "type": "receive_repayment",
        "idempotency_key": "pay-9002",
        "loan_id": LOAN_B,
        "amount": "1010.00",
        "currency": "CNY",
        "business_date": "2026-02-10",
    },
]


@dataclass(frozen=True)
class Story:
    ledger: Ledger
    batch: Path
    upgraded: Run
    submitted: Run
    closed: Run
    seen: dict[str, Run]


@pytest.fixture(scope="module")
def story(
    new_database: Callable[[], str],
    ledger_for: Callable[[str], Ledger],
    write_batch: Callable[..., Path],
) -> Story:
    ledger = ledger_for(new_database())
    upgraded = ledger("db", "upgrade")
    batch = write_batch("core-batch.jsonl", BATCH)
    submitted = ledger("submit", str(batch))
    closed = ledger("eod", "--through", "2026-03-15")
    # Reports read the projections: bring them up to the log first, as `ledger serve` would.
    projected = ledger("projections", "run", "--once")
    seen = ledger.side_by_side(
        show=("loan", "show", LOAN_A, "--format", "json"),
        show_as_of=("loan", "show", LOAN_A, "--as-of", "2026-02-09", "--format", "json"),
        schedule=("loan", "schedule", LOAN_A, "--format", "json"),
        history=("loan", "history", LOAN_A, "--no-accruals"),
        events=("loan", "history", LOAN_A, "--format", "json"),
        active=("loan", "list", "--status", "active"),
        portfolio=("report", "portfolio", "--format", "json"),
        balances=("report", "balances", "--format", "json"),
        trial_balance=("report", "trial-balance", "--format", "json"),
        status=("projections", "status", "--format", "json"),
    )
    seen["projected"] = projected
    return Story(ledger, batch, upgraded, submitted, closed, seen)


def history(ledger: Ledger, loan_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = ledger("loan", "history", loan_id, "--format", "json").json()
    return events


def test_db_upgrade_reports_the_revision(story: Story) -> None:
    assert "is at revision" in story.upgraded.text


def test_submit_prints_one_ok_result_per_line(story: Story) -> None:
    results = story.submitted.json_lines()

    assert [r["line"] for r in results] == list(range(1, len(BATCH) + 1))
    assert all(r["ok"] for r in results)
    assert [r["command"] for r in results] == [c["type"] for c in BATCH]
    assert [r["aggregate_id"] for r in results] == [c["loan_id"] for c in BATCH]
    assert [r["business_date"] for r in results] == [c["business_date"] for c in BATCH]
    assert results[0]["events"] == ["Applied"]
    assert results[2]["events"] == ["Disbursed"]
    # Repaying on the due date first brings the loan up to that day, then takes the money
    assert results[6]["events"][-2:] == ["InstallmentFellDue", "RepaymentReceived"]
    # and paying B's only installment in full closes it
    assert results[7]["events"][-1] == "Closed"


def test_rerunning_the_same_file_records_nothing_new(story: Story) -> None:
    before = len(story.seen["events"].json())

    # When the core system resends the whole batch (after the day was closed, even)
    rerun = story.ledger("submit", str(story.batch))

    # Then every line answers with its first outcome, and no event is appended
    assert rerun.stdout == story.submitted.stdout
    assert len(history(story.ledger, LOAN_A)) == before


def test_eod_closes_the_business_days(story: Story) -> None:
    assert "→ 2026-03-15" in story.closed.text
    assert "1 loans" in story.closed.text  # B is closed: only A is serviced


def test_loan_show_gives_balances_and_delinquency_as_json(story: Story) -> None:
    loan = story.seen["show"].json()

    assert loan["loan_id"] == LOAN_A and loan["borrower_id"] == "C-1001"
    assert loan["status"] == "active" and loan["currency"] == "CNY"
    assert loan["last_closed_on"] == "2026-03-15"
    # Installment 1 is paid; installment 2 (7 963.73 + 921.15) is overdue since 2026-03-10
    assert loan["paid"]["principal"] == "7884.88" and loan["paid"]["interest"] == "1000.00"
    assert loan["principal_outstanding"] == "92115.12"
    assert loan["principal_overdue"] == "7963.73"
    assert loan["interest_overdue"] == "921.15"
    assert Decimal(loan["principal_not_due"]) + Decimal(loan["principal_overdue"]) == Decimal(
        loan["principal_outstanding"]
    )
    assert Decimal(loan["penalty_outstanding"]) > 0  # 罚息 on the overdue principal
    assert (loan["dpd"], loan["bucket"], loan["ifrs9_stage"]) == (5, "M1", 1)


def test_loan_show_as_of_a_past_date_replays_the_loan_then(story: Story) -> None:
    # The day before the first due date: nothing billed yet, 29 days of 30/360 interest accrued
    loan = story.seen["show_as_of"].json()

    assert loan["last_closed_on"] == "2026-02-09"
    assert loan["principal_outstanding"] == "100000.00"
    assert loan["interest_accrued"] == "966.67"
    assert loan["paid"]["principal"] == "0.00"
    assert (loan["dpd"], loan["bucket"]) == (0, "M0")


def test_loan_schedule_shows_what_is_paid_due_and_scheduled(story: Story) -> None:
    schedule = story.seen["schedule"].json()

    assert schedule["loan_id"] == LOAN_A and schedule["currency"] == "CNY"
    rows = schedule["installments"]
    assert len(rows) == 12
    assert [r["state"] for r in rows[:3]] == ["paid", "due", "scheduled"]
    assert rows[0]["total"] == "8884.88" and rows[0]["principal_paid"] == "7884.88"
    assert sum(Decimal(r["principal"]) for r in rows) == Decimal("100000.00")


def test_loan_history_lists_the_events_in_order(story: Story) -> None:
    shown = story.seen["history"].stdout

    events = [
        "Applied",
        "Approved",
        "Disbursed",
        "InstallmentFellDue",
        "RepaymentReceived",
        "BecameOverdue",
        "DelinquencyChanged",
    ]
    positions = [shown.find(e) for e in events]
    assert -1 not in positions, shown
    assert positions == sorted(positions)
    # --no-accruals leaves out the daily postings, interest and penalty alike
    assert "InterestAccrued" not in shown and "PenaltyAccrued" not in shown
    # and a repayment shows how it was allocated (line by line in the JSON below)
    assert "allocation:" in shown
    # As JSON, with the daily accruals: every version once, in business-date order
    events = story.seen["events"].json()
    assert [e["version"] for e in events] == list(range(1, len(events) + 1))
    dates = [e["business_date"] for e in events]
    assert dates == sorted(dates) and dates[-1] == "2026-03-15"
    assert {"InterestAccrued", "PenaltyAccrued"} <= {e["event"] for e in events}
    [repayment] = [e for e in events if e["event"] == "RepaymentReceived"]
    assert repayment["details"]["allocation"]["lines"] == [
        {"component": "interest", "installment": 1, "due_date": "2026-02-10", "amount": "1000.00"},
        {"component": "principal", "installment": 1, "due_date": "2026-02-10", "amount": "7884.88"},
    ]


def test_loan_list_filters_by_status(story: Story) -> None:
    # B, paid off, is in the directory too, but not among the active loans
    assert story.seen["active"].stdout.split() == [LOAN_A]


def test_portfolio_report_as_json(story: Story) -> None:
    report = story.seen["portfolio"].json()
    totals = report["totals"]
    loans = {(r["dimension"], r["class"]): r["loans"] for r in report["rows"]}

    assert totals["loans_by_status"] == {"active": 1, "closed": 1}
    assert {k: Decimal(v) for k, v in totals["outstanding_principal"].items()} == {
        "CNY": Decimal("92115.12")
    }
    assert loans[("bucket", "M1")] == 1
    assert loans[("five_category", "special_mention")] == 1
    assert loans[("ifrs9_stage", "1")] == 1
    assert Decimal(totals["npl_ratio"]) == 0
    # and the report says how fresh its projections are.
    assert {f["name"] for f in report["freshness"]} == {"balances", "delinquency"}
    assert all(f["lag_events"] == 0 for f in report["freshness"])


def test_balances_and_trial_balance_come_from_the_projections(story: Story) -> None:
    balances = {r["loan_id"]: r for r in story.seen["balances"].json()["rows"]}
    assert Decimal(balances[LOAN_A]["principal_outstanding"]) == Decimal("92115.12")
    trial = story.seen["trial_balance"].json()
    assert trial["totals"]["balanced"] is True
    status = {s["name"]: s for s in story.seen["status"].json()}
    assert set(status) == {"balances", "delinquency", "journal", "complaints"}
    assert all(s["lag_events"] == 0 and s["position"] == s["head"] for s in status.values())
