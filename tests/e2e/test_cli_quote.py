"""`ledger quote schedule`: a loan officer prices a loan before anything is booked.

The quote is a pure calculator, so every test here runs with ``LEDGER_DATABASE_URL`` pointing
into a directory that does not exist: if the command touched a database, it would fail.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.e2e.conftest import Ledger

TEXTBOOK = (
    "--principal",
    "100000",
    "--annual-rate",
    "0.12",
    "--term",
    "12",
    "--day-count",
    "30/360",
    "--disbursed-on",
    "2026-01-10",
    "--first-due",
    "2026-02-10",
)


def quote(ledger: Ledger, *args: str, expect: int | None = 0) -> str:
    return ledger("quote", "schedule", *args, expect=expect).stdout


def test_annuity_quote_is_the_textbook_schedule_as_json(offline_ledger: Ledger) -> None:
    # When an officer quotes 100 000 at 12 % over 12 months, 等额本息, as JSON
    data = offline_ledger(
        "quote", "schedule", *TEXTBOOK, "--method", "annuity", "--format", "json"
    ).json()

    # Then there are 12 monthly installments of the textbook 8 884.88, amounts as strings
    rows = data["installments"]
    assert [r["number"] for r in rows] == list(range(1, 13))
    assert set(rows[0]) == {"number", "due_date", "principal", "interest", "total"}
    assert all(isinstance(r[k], str) for r in rows for k in ("principal", "interest", "total"))
    assert [r["total"] for r in rows[:-1]] == ["8884.88"] * 11
    assert rows[0] == {
        "number": 1,
        "due_date": "2026-02-10",
        "principal": "7884.88",
        "interest": "1000.00",
        "total": "8884.88",
    }
    assert rows[-1]["due_date"] == "2027-01-10"
    # and the last installment absorbs the rounding so principal sums to the loan exactly
    assert sum(Decimal(r["principal"]) for r in rows) == Decimal("100000.00")
    for r in rows:
        assert Decimal(r["principal"]) + Decimal(r["interest"]) == Decimal(r["total"])


def test_equal_principal_quote_repays_the_same_principal_each_month(offline_ledger: Ledger) -> None:
    rows = offline_ledger(
        "quote", "schedule", *TEXTBOOK, "--method", "equal_principal", "--format", "json"
    ).json()["installments"]

    # 等额本金: 8 333.33 principal a month (the last takes the residual), falling interest
    assert [r["principal"] for r in rows[:-1]] == ["8333.33"] * 11
    assert rows[-1]["principal"] == "8333.37"
    assert rows[0]["interest"] == "1000.00"
    interest = [Decimal(r["interest"]) for r in rows]
    assert interest == sorted(interest, reverse=True)
    assert sum(Decimal(r["principal"]) for r in rows) == Decimal("100000.00")


def test_table_is_the_default_format_and_reads_like_a_schedule(offline_ledger: Ledger) -> None:
    shown = quote(offline_ledger, *TEXTBOOK)

    assert "annuity schedule" in shown
    assert "2026-02-10" in shown and "2027-01-10" in shown
    assert "8884.88" in shown
    assert "100000.00" in shown  # the totals row


def test_csv_format_has_a_header_and_one_row_per_installment(offline_ledger: Ledger) -> None:
    rows = list(csv.DictReader(io.StringIO(quote(offline_ledger, *TEXTBOOK, "--format", "csv"))))

    assert len(rows) == 12
    assert list(rows[0]) == ["number", "due_date", "principal", "interest", "total"]
    assert rows[0] == {
        "number": "1",
        "due_date": "2026-02-10",
        "principal": "7884.88",
        "interest": "1000.00",
        "total": "8884.88",
    }
    assert sum(Decimal(r["principal"]) for r in rows) == Decimal("100000.00")


@pytest.mark.parametrize(
    ("option", "value", "field", "rule"),
    [
        ("--term", "0", "term", None),
        ("--annual-rate", "0.5", "annual_rate", "rate_cap"),
        ("--day-count", "ACT/999", "day_count", None),
        ("--principal", "1.234", "principal", None),
        ("--currency", "XYZ", "currency", None),
    ],
    ids=["term-0", "rate-above-cap", "unknown-day-count", "too-many-decimals", "unknown-currency"],
)
def test_bad_input_exits_2_naming_field_and_rule(
    offline_ledger: Ledger, option: str, value: str, field: str, rule: str | None
) -> None:
    args = dict(zip(TEXTBOOK[::2], TEXTBOOK[1::2], strict=True))
    args[option] = value

    run = offline_ledger(
        "quote", "schedule", *(x for kv in args.items() for x in kv), "--format", "json", expect=2
    )

    # Then one error line names the field and the rule, and nothing reaches stdout
    assert run.stdout == ""
    [line] = run.stderr.splitlines()
    assert line.startswith("error: ")
    assert f"field={field}," in line
    assert f"rule={rule}]" in line if rule else "rule=" in line


def test_quote_needs_no_database(offline_ledger: Ledger, no_database_url: str) -> None:
    # Given LEDGER_DATABASE_URL points into a directory that does not exist
    database = Path(no_database_url.removeprefix("sqlite:///"))
    assert not database.parent.exists()

    # When quoting, it still works, and nothing was created on the way
    data = offline_ledger("quote", "schedule", *TEXTBOOK, "--format", "json").json()
    assert len(data["installments"]) == 12
    assert not database.parent.exists()

    # (whereas a command that needs the ledger fails cleanly on the same setting)
    assert offline_ledger("loan", "list", expect=None).returncode != 0
