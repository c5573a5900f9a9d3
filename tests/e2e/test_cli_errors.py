"""What a user sees when something is wrong: one clear error naming the field and the rule,
nothing recorded, and an exit code a script can branch on (2 bad input, 3 conflict, 4 unknown).

Given (once per backend) a migrated ledger with an active loan and a paid-off one, closed
through 2026-02-15.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.e2e.conftest import Ledger

ACTIVE = "c0000000-0000-4000-8000-00000000000c"
CLOSED = "d0000000-0000-4000-8000-00000000000d"
UNKNOWN = "e0000000-0000-4000-8000-00000000000e"


def open_loan(loan_id: str, principal: str, term: int) -> list[dict[str, Any]]:
    return [
        {
            "type": "apply_for_loan",
            "idempotency_key": f"{loan_id}-apply",
            "loan_id": loan_id,
            "borrower_id": "C-7",
            "principal": principal,
            "currency": "CNY",
            "annual_rate": "0.12",
            "term": term,
            "method": "annuity",
            "day_count": "30/360",
            "business_date": "2026-01-05",
        },
        {
            "type": "approve_loan",
            "idempotency_key": f"{loan_id}-approve",
            "loan_id": loan_id,
            "business_date": "2026-01-06",
        },
        {
            "type": "disburse_loan",
            "idempotency_key": f"{loan_id}-disburse",
            "loan_id": loan_id,
            "first_due": "2026-02-10",
            "business_date": "2026-01-10",
        },
    ]


def repay(key: str, loan_id: str, amount: Any, currency: str = "CNY") -> dict[str, Any]:
    return {
        "type": "receive_repayment",
        "idempotency_key": key,
        "loan_id": loan_id,
        "amount": amount,
        "currency": currency,
    }


@dataclass(frozen=True)
class Given:
    ledger: Ledger
    closed_loan_events: int


@pytest.fixture(scope="module")
def given(
    new_database: Callable[[], str],
    ledger_for: Callable[[str], Ledger],
    write_batch: Callable[..., Path],
) -> Given:
    ledger = ledger_for(new_database())
    ledger("db", "upgrade")
    paid_off = {**repay(f"{CLOSED}-payoff", CLOSED, "1010.00"), "business_date": "2026-02-10"}
    batch = write_batch(
        "given.jsonl",
        [*open_loan(ACTIVE, "100000.00", 12), *open_loan(CLOSED, "1000.00", 1), paid_off],
    )
    results = ledger("submit", str(batch)).json_lines()
    assert results[-1]["events"][-1] == "Closed"
    ledger("eod", "--through", "2026-02-15")
    return Given(ledger, results[-1]["version"])


def error_line(stderr: str) -> str:
    [line] = [x for x in stderr.splitlines() if x.startswith("error:")]
    return line


def test_a_bad_line_fails_alone_and_the_rest_of_the_batch_is_processed(
    given: Given, write_batch: Callable[..., Path]
) -> None:
    batch = write_batch(
        "mixed.jsonl",
        [
            repay("bad-float", ACTIVE, 100.5),  # 1 a JSON float
            {
                "type": "teleport_loan",
                "idempotency_key": "bad-type",  # 2 unknown command
                "loan_id": ACTIVE,
            },
            repay("ok-1", ACTIVE, "100.00"),  # 3 fine
            repay("bad-currency", ACTIVE, "100.00", currency="USD"),  # 4 loan is in CNY
            repay("bad-closed", CLOSED, "10.00"),  # 5 loan is paid off
            "{not json",  # 6 not JSON at all
            repay("ok-2", ACTIVE, "200.00"),  # 7 fine
        ],
    )

    # The batch exits with its most severe failure's code: the conflict (3, line 5) over bad
    # input (2)
    run = given.ledger("submit", str(batch), expect=3)

    results = run.json_lines()
    assert [r["line"] for r in results] == [1, 2, 3, 4, 5, 6, 7]
    assert [r["ok"] for r in results] == [False, False, True, False, False, False, True]
    failed = {r["line"]: (r["field"], r["rule"]) for r in results if not r["ok"]}
    assert failed == {
        1: ("amount", "no_float"),
        2: ("type", "command_type"),
        4: ("currency", "loan_currency"),
        5: ("loan_id", "loan_active"),
        6: ("line", "json"),
    }
    assert all(r["message"] for r in results if not r["ok"])
    assert results[2]["events"][-1] == results[6]["events"][-1] == "RepaymentReceived"
    assert "5 command(s) failed" in run.stderr
    # and the refused repayment left the paid-off loan's history untouched
    history = given.ledger("loan", "history", CLOSED, "--format", "json").json()
    assert len(history) == given.closed_loan_events
    assert history[-1]["event"] == "Closed"


def test_an_unknown_loan_exits_4(given: Given) -> None:
    runs = given.ledger.side_by_side(
        show=("loan", "show", UNKNOWN), history=("loan", "history", UNKNOWN), expect=4
    )

    for run in runs.values():
        assert run.stdout == ""
        assert UNKNOWN in error_line(run.stderr)
        assert "[field=loan_id, rule=exists]" in error_line(run.stderr)


def test_eod_through_a_day_already_closed_has_nothing_to_do(given: Given) -> None:
    runs = given.ledger.side_by_side(
        earlier=("eod", "--through", "2026-02-01"), same=("eod", "--through", "2026-02-15")
    )

    for run in runs.values():
        assert "nothing to do" in run.text
        assert "closed through 2026-02-15" in run.text  # says where the clock stands
        assert run.stderr == ""


# ----------------------------------------------------- bad input, whatever the database holds
@pytest.mark.parametrize("command", ["show", "history", "schedule"])
def test_a_loan_id_that_is_not_a_uuid_exits_2(offline_ledger: Ledger, command: str) -> None:
    # Rejected before any database is opened (this one does not even exist)
    run = offline_ledger("loan", command, "loan-42", expect=2)

    assert run.stdout == ""
    assert "[field=loan_id, rule=uuid]" in error_line(run.stderr)


def test_eod_through_a_malformed_date_exits_2(offline_ledger: Ledger) -> None:
    run = offline_ledger("eod", "--through", "15/03/2026", expect=2)

    assert "[field=through, rule=iso_date]" in error_line(run.stderr)


def test_submit_a_missing_file_exits_2(offline_ledger: Ledger, scratch: Path) -> None:
    run = offline_ledger("submit", str(scratch / "nowhere.jsonl"), expect=2)

    assert "[field=file, rule=exists]" in error_line(run.stderr)


def test_an_unreachable_database_is_one_clear_line(offline_ledger: Ledger) -> None:
    # The SQLite file's directory does not exist, so not even `db upgrade` can create it
    run = offline_ledger("db", "upgrade", expect=1)

    assert "cannot open the database" in error_line(run.stderr)
    assert "rule=reachable" in error_line(run.stderr)


def test_a_read_command_never_creates_a_database(offline_ledger: Ledger, scratch: Path) -> None:
    # Given no database at the configured SQLite path (here: the current directory's)
    missing = scratch / "ledger-that-is-not-there.db"
    ledger = type(offline_ledger)(f"sqlite:///{missing}", scratch)

    runs = ledger.side_by_side(
        list=("loan", "list"),
        report=("report", "balances"),
        status=("projections", "status"),
        current=("db", "current"),
        expect=3,
    )

    for run in runs.values():
        assert "there is no ledger database" in error_line(run.stderr)
        assert "run `ledger db upgrade` first" in error_line(run.stderr)
    assert not missing.exists()


# ------------------------------------------------------------------- before `ledger db upgrade`
def test_commands_before_db_upgrade_say_to_run_it(
    new_database: Callable[[], str],
    ledger_for: Callable[[str], Ledger],
    write_batch: Callable[..., Path],
) -> None:
    # Given a brand-new, empty database
    ledger = ledger_for(new_database())
    batch = write_batch("early.jsonl", open_loan(ACTIVE, "5000.00", 3))

    runs = ledger.side_by_side(
        list=("loan", "list"),
        eod=("eod", "--through", "2026-02-01"),
        submit=("submit", str(batch)),
        expect=None,
    )

    for run in runs.values():
        assert run.returncode == 3, run  # a handled conflict, neither a crash nor success
        assert run.stdout == ""
        assert "run `ledger db upgrade` first" in error_line(run.stderr)
        assert "rule=migrated" in error_line(run.stderr)
