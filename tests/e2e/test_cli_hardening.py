"""What a new user sees when they push on the edges, through the `ledger` command line only.

Given (once per backend) a migrated ledger with four loans from one JSONL batch — A pays, W is
never paid and is written off with a recovery after, R is restructured with its arrears
capitalized (展期), J is a yen loan — closed through the month end 2026-03-31 and projected.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.e2e.conftest import Ledger

A = "a1000000-0000-4000-8000-00000000000a"
W = "b1000000-0000-4000-8000-00000000000b"
R = "c1000000-0000-4000-8000-00000000000c"
J = "d1000000-0000-4000-8000-00000000000d"


def open_loan(loan_id: str, principal: str, currency: str = "CNY") -> list[dict[str, Any]]:
    return [
        {
            "type": "apply_for_loan",
            "idempotency_key": f"{loan_id}-apply",
            "loan_id": loan_id,
            "borrower_id": f"C-{loan_id[:2]}",
            "principal": principal,
            "currency": currency,
            "annual_rate": "0.12",
            "term": 12,
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


def repay(key: str, loan_id: str, amount: str, **more: Any) -> dict[str, Any]:
    return {
        "type": "receive_repayment",
        "idempotency_key": key,
        "loan_id": loan_id,
        "amount": amount,
        "currency": more.pop("currency", "CNY"),
        **more,
    }


@dataclass(frozen=True)
class Given:
    ledger: Ledger
    seen: dict[str, Any]


@pytest.fixture(scope="module")
def given(
    new_database: Callable[[], str],
    ledger_for: Callable[[str], Ledger],
    write_batch: Callable[..., Path],
) -> Given:
    ledger = ledger_for(new_database())
    ledger("db", "upgrade")
    ledger(
        "submit",
        str(
            write_batch(
                "open.jsonl",
                [
                    *open_loan(A, "100000.00"),
                    *open_loan(W, "50000.00"),
                    *open_loan(R, "30000.00"),
                    *open_loan(J, "1000000", currency="JPY"),
                    repay("A-1", A, "8884.88", business_date="2026-02-10"),
                    repay("J-1", J, "88849", currency="JPY", business_date="2026-02-10"),
                ],
            )
        ),
    )
    ledger("eod", "--through", "2026-03-20")
    # On the open day, 2026-03-21: W is written off (and recovers a little), R is extended
    ledger(
        "submit",
        str(
            write_batch(
                "day.jsonl",
                [
                    {
                        "type": "write_off_loan",
                        "idempotency_key": "W-off",
                        "loan_id": W,
                        "reason": "borrower insolvent",
                    },
                    {
                        "type": "receive_recovery",
                        "idempotency_key": "W-rec",
                        "loan_id": W,
                        "amount": "1200.00",
                        "currency": "CNY",
                        "reference": "agency",
                    },
                    {
                        "type": "restructure_loan",
                        "idempotency_key": "R-ext",
                        "loan_id": R,
                        "kind": "extension",
                        "extend_months": 3,
                        "capitalize_arrears": True,
                    },
                ],
            )
        ),
    )
    ledger("eod", "--through", "2026-03-31")
    ledger("projections", "run", "--once")
    seen = ledger.side_by_side(
        w_show=("loan", "show", W, "--format", "json"),
        j_show=("loan", "show", J, "--format", "json"),
        r_schedule=("loan", "schedule", R, "--format", "json"),
        balances_json=("report", "balances", "--format", "json"),
        balances=("report", "balances"),
        trial=("report", "trial-balance"),
        trial_json=("report", "trial-balance", "--format", "json"),
        portfolio=("report", "portfolio"),
        portfolio_json=("report", "portfolio", "--format", "json"),
        portfolio_csv=("report", "portfolio", "--format", "csv"),
        show_table=("loan", "show", W),
    )
    return Given(ledger, seen)


def error_line(stderr: str) -> str:
    [line] = [x for x in stderr.splitlines() if x.startswith("error:")]
    return line


# ---------------------------------------------------------------------- settings
@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("LEDGER_RATE_CAP", "abc", "valid decimal"),
        ("LEDGER_GRACE_DAYS", "-1", "greater than or equal to 0"),
        ("LEDGER_EOD_TIME", "25:00", "pattern"),
        ("LEDGER_TIMEZONE", "Mars/Olympus", "IANA timezone"),
        ("LEDGER_MAX_AMOUNTS", "not json", "not valid JSON"),
        ("LEDGER_DATABASE_URL", "not a url", "not a database URL"),
        ("LEDGER_DATABASE_URL", "oracle://scott@db/ledger", "not supported"),
        ("LEDGER_DATABASE_URL", "postgresql+asyncpg://u:secret@db/ledger", "not supported"),
        ("LEDGER_DATABASE_URL", "postgresql+pg8000://u:secret@db/ledger", "not supported"),
    ],
)
def test_a_bad_setting_is_one_line_naming_it(
    offline_ledger: Ledger, variable: str, value: str, expected: str
) -> None:
    run = offline_ledger("loan", "list", expect=2, env={variable: value})

    line = error_line(run.stderr)
    assert variable in line and expected in line
    assert "secret" not in run.stderr  # a URL's password is never echoed
    assert run.stdout == ""


# ------------------------------------------------------------------------ submit
def test_submit_refuses_what_is_not_a_jsonl_file(given: Given, scratch: Path) -> None:
    binary = scratch / "photo.jsonl"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    latin1 = scratch / "latin1.jsonl"
    latin1.write_bytes('{"reference": "caf\xe9"}\n'.encode("latin-1"))

    runs = given.ledger.side_by_side(
        directory=("submit", str(scratch)),
        binary=("submit", str(binary)),
        latin1=("submit", str(latin1)),
        expect=2,
    )

    assert "is a directory" in error_line(runs["directory"].stderr)
    assert "not a text file" in error_line(runs["binary"].stderr)
    assert "not UTF-8 text" in error_line(runs["latin1"].stderr)
    for run in runs.values():
        assert "[field=file, rule=" in error_line(run.stderr)
        assert run.stdout == ""


def test_submit_reads_standard_input_and_skips_a_byte_order_mark(given: Given) -> None:
    line = json.dumps(repay("A-stdin", A, "10.00"))

    run = given.ledger("submit", "-", stdin=b"\xef\xbb\xbf" + line.encode() + b"\n")

    [result] = run.json_lines()
    assert result["ok"] and result["business_date"] == "2026-04-01"  # the open business day


def test_submit_says_what_is_wrong_with_each_line(given: Given) -> None:
    truncated = json.dumps(repay("A-cut", A, "10.00"))[:-12]
    lines = [
        "[1, 2]",  # 1 not an object
        truncated,  # 2 cut off
        json.dumps({**repay("A-date", A, "10.00"), "business_date": "20270610"}),  # 3
        '{"type": "receive_repayment", "amount": "1", "amount": "1000"}',  # 4 twice
        json.dumps(repay("A-big", A, "1e30")),  # 5 an exponent
    ]

    run = given.ledger("submit", "-", stdin="\n".join(lines).encode(), expect=2)

    results = run.json_lines()
    assert [(r["line"], r["field"], r["rule"]) for r in results] == [
        (1, "command", "json_object"),
        (2, "line", "json"),
        (3, "business_date", "iso_date"),
        (4, "amount", "duplicate_key"),
        (5, "amount", "decimal"),
    ]
    assert "JSON object" in results[0]["message"] and "JSON array" in results[0]["message"]
    assert re.search(r"at column \d+: Unterminated string", results[1]["message"])
    assert "cut off" in results[1]["message"]
    assert "YYYY-MM-DD" in results[2]["message"]


# ------------------------------------------------------------------ what is seen
def test_a_written_off_loan_shows_what_was_written_off_and_recovered(given: Given) -> None:
    loan = given.seen["w_show"].json()

    assert loan["status"] == "written_off"
    # W never paid: its first installment fell due on 02-10, so on 03-21 it was 39 days past
    assert loan["written_off"]["on"] == "2026-03-21" and loan["written_off"]["dpd"] == 39
    assert loan["written_off"]["principal"] == "50000.00"
    assert loan["recovered"] == "1200.00"
    shown = given.seen["show_table"].stdout
    assert "written off principal" in shown and "None" not in shown


def test_amounts_are_in_each_currencys_minor_units(given: Given) -> None:
    yen = given.seen["j_show"].json()

    assert yen["currency"] == "JPY"
    assert re.fullmatch(r"\d+", yen["principal_outstanding"])  # no decimals for yen
    assert yen["paid"]["fees"] == "0"
    for row in given.seen["balances_json"].json()["rows"]:
        places = 0 if row["currency"] == "JPY" else 2
        for name in ("principal_outstanding", "interest_paid", "fees_outstanding"):
            assert len(row[name].partition(".")[2]) == places, (name, row[name])


def test_capitalized_installments_show_as_capitalized(given: Given) -> None:
    states = [r["state"] for r in given.seen["r_schedule"].json()["installments"]]

    # R's first two installments were billed and unpaid when its arrears were capitalized
    assert states[:2] == ["capitalized", "capitalized"]
    assert "paid" not in states


def test_the_balances_json_carries_every_documented_column(given: Given) -> None:
    documented = set(
        re.findall(r"^\| `(\w+)`", _read_models_section("loan_balances"), re.MULTILINE)
    )
    documented |= {"principal_paid", "interest_paid", "penalty_paid", "fees_paid"}

    for row in given.seen["balances_json"].json()["rows"]:
        assert documented <= set(row), documented - set(row)


def _read_models_section(table: str) -> str:
    text = (Path(__file__).resolve().parents[2] / "docs" / "READ_MODELS.md").read_text()
    start = text.index(f"### `{table}`")
    return text[start : text.index("###", start + 4)]


def test_tables_fit_80_columns_and_never_cut_a_number(given: Given) -> None:
    balances = given.seen["balances_json"].json()["rows"]
    trial = given.seen["trial_json"].json()["rows"]

    for name in ("balances", "trial", "portfolio", "show_table"):
        assert max(len(line) for line in given.seen[name].stdout.splitlines()) <= 80, name
    # every figure a narrow table shows is whole: the JSON's figures appear digit for digit
    for row in balances:
        assert row["principal_outstanding"] in given.seen["balances"].stdout
    for row in trial:
        for name in ("debit_total", "credit_total", "balance"):
            assert row[name] in given.seen["trial"].stdout
    # and what was left out is named
    assert "more columns at this width" in given.seen["balances"].stdout
    for shown in given.seen.values():
        assert "{'" not in shown.stdout and "None" not in shown.stdout


def test_the_roll_rates_cover_the_month_just_closed_with_counts(given: Given) -> None:
    roll = given.seen["portfolio_json"].json()["totals"]["roll_rates"]

    # Closed through 2026-03-31: March is the last complete month
    assert (roll["from_month_end"], roll["to_month_end"]) == ("2026-02-28", "2026-03-31")
    # At 02-28 A and J were current (their second installment, due 03-10, is unpaid by 03-31:
    # M1), W and R were in M1 (18 days past due); at 03-31 W is written off and R, its
    # arrears capitalized, is current
    assert roll["loans"]["M0"] == {"M1": 2}
    assert roll["loans"]["M1"] == {"M0": 1, "written_off": 1}
    assert "50.00% (1)" in given.seen["portfolio"].stdout  # a share beside its count


def test_the_portfolio_csv_carries_the_npl_ratio(given: Given) -> None:
    rows = list(csv.DictReader(io.StringIO(given.seen["portfolio_csv"].stdout)))

    npl = {r["currency"]: r for r in rows if r["dimension"] == "npl"}
    assert set(npl) == {"CNY", "JPY"}
    assert all(r["share"] for r in rows)
    assert npl["CNY"]["share"] == "0.0000"  # W is written off, no longer in the book


def test_an_as_of_in_the_future_is_refused(given: Given) -> None:
    run = given.ledger("loan", "show", A, "--as-of", "2027-01-01", expect=2)

    assert "[field=as_of, rule=not_in_future]" in error_line(run.stderr)


def test_help_lists_each_command_in_one_sentence(offline_ledger: Ledger) -> None:
    from typer.main import get_command

    from ledger.cli import app

    def commands(group: Any, prefix: str = "") -> Any:
        for name, command in group.commands.items():
            yield f"{prefix}{name}", command
            if hasattr(command, "commands"):
                yield from commands(command, f"{prefix}{name} ")

    for name, command in commands(get_command(app)):
        first = (command.help or "").strip().split("\n\n")[0]
        assert "\n" not in first, f"ledger {name}: the help listing would break this line"
        assert first.endswith("."), name
    assert offline_ledger("--help").stdout.count("│") > 0


# --------------------------------------------------------------------- end of day
def test_closing_far_ahead_asks_for_yes_and_counts_loan_days(
    new_database: Callable[[], str],
    ledger_for: Callable[[str], Ledger],
    write_batch: Callable[..., Path],
) -> None:
    ledger = ledger_for(new_database())
    ledger("db", "upgrade")
    ledger("submit", str(write_batch("one.jsonl", open_loan(A, "1000.00"))))
    ledger("eod", "--through", "2026-01-31")

    # 2026-12-31 is 333 days past the open day 2026-02-01: every loan would post them all
    refused = ledger("eod", "--through", "2026-12-31", expect=2)
    assert "pass --yes" in error_line(refused.stderr)
    assert "rule=confirm_days_ahead" in error_line(refused.stderr)
    assert "closed through 2026-01-31" in ledger("eod", "--through", "2026-01-15").text

    closed = ledger("eod", "--through", "2026-03-31", "--yes")
    assert "1 loans, 59 loan-days" in closed.text  # 2026-02-01 … 03-31 for one loan
    assert "loan-days" in closed.stderr  # the progress bar counts them too


# -------------------------------------------------------------------------- demo
def test_the_demo_is_reproducible_and_asks_before_adding_to_a_ledger(
    new_database: Callable[[], str], ledger_for: Callable[[str], Ledger]
) -> None:
    first, second = ledger_for(new_database()), ledger_for(new_database())
    args = ("demo", "--loans", "6", "--days", "20", "--seed", "11", "--start", "2026-05-01")

    runs = [first(*args), second(*args)]

    counts = [
        re.search(r"\(2026-05-01 → 2026-05-20\): (\d+) commands, (\d+) events", r.text)
        for r in runs
    ]
    assert counts[0] and counts[1] and counts[0].groups() == counts[1].groups()
    assert first("loan", "list").stdout == second("loan", "list").stdout
    again = first(*args, expect=3)
    assert "--append" in error_line(again.stderr)
    assert first("demo", "--loans", "2", "--days", "3", "--append").returncode == 0
