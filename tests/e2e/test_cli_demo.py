"""`ledger demo`: a newcomer seeds a small living portfolio and looks around with the CLI."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from uuid import UUID

import pytest

if TYPE_CHECKING:
    from tests.e2e.conftest import Ledger, Run

LOANS, DAYS = 12, 40


@dataclass(frozen=True)
class Demo:
    ledger: Ledger
    run: Run


@pytest.fixture(scope="module")
def demo(new_database: Callable[[], str], ledger_for: Callable[[str], Ledger]) -> Demo:
    # No `db upgrade` first: the demo migrates the database it is pointed at itself
    ledger = ledger_for(new_database())
    return Demo(ledger, ledger("demo", "--loans", str(LOANS), "--days", str(DAYS)))


def test_demo_prints_the_portfolio_summary(demo: Demo) -> None:
    shown = demo.run.text

    assert f"seeded {LOANS} loans, ran {DAYS} business days" in shown
    for section in ("M-buckets", "Five-category", "IFRS 9 stage", "NPL ratio"):
        assert section in shown
    assert "正常 normal" in shown and "stage 1" in shown and "M0" in shown


def test_demo_loans_are_visible_to_the_cli(demo: Demo) -> None:
    loan_ids = demo.ledger("loan", "list").stdout.split()

    assert len(loan_ids) == LOANS
    assert all(UUID(x) for x in loan_ids)
    # and any of them can be opened like a loan booked by hand
    loan = demo.ledger("loan", "show", loan_ids[0], "--format", "json").json()
    assert loan["loan_id"] == loan_ids[0]
    assert loan["status"] in {"applied", "rejected", "active", "closed", "written_off"}


def test_demo_refuses_an_empty_portfolio(offline_ledger: Ledger) -> None:
    run = offline_ledger("demo", "--loans", "0", expect=2)

    assert "[field=loans, rule=positive]" in run.stderr
