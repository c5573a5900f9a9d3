"""Bounds (PRODUCT.md): what a command may carry, on SQLite and PostgreSQL.

Each story gives a ledger holding a loan, sends a command outside the bounds — a future date, an
amount no column holds exactly, a loosely typed value, a taken id — and checks the error names
the field and the rule and that nothing was recorded; then that the book is still sound (every
projection catches up, the trial balance is zero).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any
from uuid import UUID

import pytest

from domain.errors import (
    KINDS,
    AlreadyExists,
    InvalidAmount,
    InvalidDate,
    LedgerError,
    UnknownCurrency,
    ValidationError,
)
from ledger.app import commands as c
from ledger.app.application import HANDLERS
from ledger.app.commands import parse_command
from ledger.cli.common import EXIT_CODES, SEVERITY
from ledger.service import Ledger
from projections.journal import trial_balance_report

Submit = Callable[..., dict[str, Any]]
Count = Callable[[Ledger], int]
DISBURSED = date(2026, 1, 10)


@pytest.fixture
def loan_id(ledger_app: Ledger, open_loan: Callable[..., UUID]) -> UUID:
    """Given an active CNY loan disbursed on 2026-01-10, the ledger closed through 01-20."""
    loan = open_loan(ledger_app)
    ledger_app.close_business_days(date(2026, 1, 20))
    return loan


def refused(
    app: Ledger,
    count_events: Count,
    count_commands: Count,
    command: dict[str, Any],
    error: type[LedgerError],
    field: str,
    rule: str,
) -> LedgerError:
    """Send ``command``; it must fail with ``error`` on ``field``/``rule``, recording nothing."""
    before = count_events(app), count_commands(app)
    with pytest.raises(error) as caught:
        app.execute(parse_command({"idempotency_key": "bad", **command}))
    assert (caught.value.field, caught.value.rule) == (field, rule), caught.value.message
    assert (count_events(app), count_commands(app)) == before, "something was recorded"
    return caught.value


def repayment(loan_id: UUID, amount: Any, **more: Any) -> dict[str, Any]:
    return {
        "type": "receive_repayment",
        "loan_id": str(loan_id),
        "amount": amount,
        "currency": "CNY",
        **more,
    }


def assert_book_is_sound(app: Ledger) -> None:
    """Every projection catches up and the journal balances."""
    app.catch_up()
    with app.engine.connect() as conn:
        assert trial_balance_report(conn).totals["balanced"] is True


# ------------------------------------------------------------------------- dates
def test_a_command_dated_in_the_future_is_refused(
    ledger_app: Ledger, loan_id: UUID, count_events: Count, count_commands: Count
) -> None:
    # The open business day is 2026-01-21; a repayment dated 2099 would close decades of days
    error = refused(
        ledger_app,
        count_events,
        count_commands,
        repayment(loan_id, "100.00", business_date="2099-01-01"),
        InvalidDate,
        "business_date",
        "not_in_future",
    )
    assert "2026-01-21" in error.message
    # One day ahead is the future too
    refused(
        ledger_app,
        count_events,
        count_commands,
        repayment(loan_id, "100.00", business_date="2026-01-22"),
        InvalidDate,
        "business_date",
        "not_in_future",
    )
    # and so is a complaint filed tomorrow
    refused(
        ledger_app,
        count_events,
        count_commands,
        {
            "type": "file_complaint",
            "loan_id": str(loan_id),
            "category": "billing",
            "description": "why?",
            "business_date": "2099-01-01",
        },
        InvalidDate,
        "business_date",
        "not_in_future",
    )
    # The loan was not caught up past the open business day
    assert ledger_app.get_loan(loan_id).last_closed_on == date(2026, 1, 20)
    assert_book_is_sound(ledger_app)


def test_a_command_without_a_date_lands_on_the_open_business_day(
    ledger_app: Ledger, loan_id: UUID, submit: Submit
) -> None:
    result = submit(
        ledger_app, "receive_repayment", loan_id=loan_id, amount="100.00", currency="CNY"
    )

    assert result["business_date"] == "2026-01-21"


def test_before_the_first_close_a_command_may_not_be_dated_after_today(
    ledger_app: Ledger, count_events: Count, count_commands: Count
) -> None:
    # A new ledger has no calendar yet: any day up to today (a book being loaded), not later
    tomorrow = ledger_app.today() + timedelta(days=1)
    refused(
        ledger_app,
        count_events,
        count_commands,
        {
            "type": "apply_for_loan",
            "borrower_id": "B1",
            "principal": "1000.00",
            "annual_rate": "0.1",
            "term": 3,
            "business_date": tomorrow.isoformat(),
        },
        InvalidDate,
        "business_date",
        "not_in_future",
    )


def test_a_state_as_of_a_future_date_is_refused(ledger_app: Ledger, loan_id: UUID) -> None:
    with pytest.raises(InvalidDate) as caught:
        ledger_app.get_loan(loan_id, as_of=date(2026, 1, 22))
    assert (caught.value.field, caught.value.rule) == ("as_of", "not_in_future")
    # The open business day itself is not the future
    assert ledger_app.get_loan(loan_id, as_of=date(2026, 1, 21)).status == "active"


def test_a_command_decided_while_end_of_day_closes_its_day_moves_to_the_next_day(
    database_url: str,
    make_ledger: Callable[..., Ledger],
    open_loan: Callable[..., UUID],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    operator, integration = make_ledger(database_url), make_ledger(database_url)
    open_loan(operator)
    operator.close_business_days(date(2026, 1, 20))
    real_save = integration.app.save
    closed: list[date] = []

    # The integration has decided an application for 2026-01-21 (the open day) when end of
    # day (another process: here a thread, outside the integration's transaction) closes that
    # very day, just before the application is written.
    def close_the_day_first(*aggregates: Any) -> Any:
        if not closed:
            eod = threading.Thread(
                target=lambda: closed.append(
                    operator.close_business_days(date(2026, 1, 21)).closed_through
                )
            )
            eod.start()
            eod.join(timeout=60)
        return real_save(*aggregates)

    monkeypatch.setattr(integration.app, "save", close_the_day_first)

    result = integration.execute(
        parse_command(
            {
                "type": "apply_for_loan",
                "idempotency_key": "late",
                "borrower_id": "B2",
                "principal": "5000.00",
                "annual_rate": "0.1",
                "term": 6,
            }
        )
    )

    # It was rolled back and decided again on the next open day: nothing lands in a closed day
    assert closed == [date(2026, 1, 21)]
    assert result["business_date"] == "2026-01-22"
    applied = operator.get_loan(UUID(result["aggregate_id"]))
    assert (applied.version, applied.applied_on) == (1, date(2026, 1, 22))


# ----------------------------------------------------------------------- amounts
@pytest.mark.parametrize(
    ("amount", "rule"),
    [
        ("1e30", "decimal"),  # an exponent: once accepted, its parts no longer added up
        ("100000000000000000", "max_amount"),  # 10^17 overflowed NUMERIC(20,4) on PostgreSQL
        ("100000000000.01", "max_amount"),  # just above what every column holds exactly
        (" 1.00 ", "decimal"),
        ("1,000.00", "decimal"),
        (100, "decimal_string"),  # a JSON integer
        (0.1, "no_float"),
        (True, "decimal_string"),
    ],
)
def test_an_amount_outside_the_bounds_is_refused(
    ledger_app: Ledger,
    loan_id: UUID,
    count_events: Count,
    count_commands: Count,
    amount: Any,
    rule: str,
) -> None:
    refused(
        ledger_app,
        count_events,
        count_commands,
        repayment(loan_id, amount),
        InvalidAmount,
        "amount",
        rule,
    )


@pytest.mark.parametrize("principal", ["1e30", "100000000000000000"])
def test_a_principal_outside_the_bounds_is_refused(
    ledger_app: Ledger, loan_id: UUID, count_events: Count, count_commands: Count, principal: str
) -> None:
    refused(
        ledger_app,
        count_events,
        count_commands,
        {
            "type": "apply_for_loan",
            "borrower_id": "B2",
            "principal": principal,
            "annual_rate": "0.1",
            "term": 12,
        },
        InvalidAmount,
        "principal",
        "decimal" if "e" in principal else "max_amount",
    )
    assert_book_is_sound(ledger_app)


def test_the_largest_amount_every_column_holds_is_accepted_and_projected_exactly(
    ledger_app: Ledger, open_loan: Callable[..., UUID], submit: Submit
) -> None:
    # 10^11 CNY less a cent: 13 significant digits, exact on SQLite's REAL and in NUMERIC(20,4)
    biggest = open_loan(ledger_app, principal="99999999999.99", borrower_id="B-big")
    submit(
        ledger_app,
        "receive_repayment",
        loan_id=biggest,
        amount="99999999999.99",
        currency="CNY",
        business_date=date(2026, 1, 12),
    )

    runner = ledger_app.runner
    runner.catch_up()
    from projections.balances import balances_report

    with ledger_app.engine.connect() as conn:
        [row] = [r for r in balances_report(conn).rows if r["loan_id"] == str(biggest)]
        assert trial_balance_report(conn).totals["balanced"] is True
    loan = ledger_app.get_loan(biggest)
    assert row["principal_paid"] == loan.paid["principal"]
    assert row["interest_paid"] == loan.paid["interest"]


def test_a_product_maximum_per_currency_is_enforced_after_the_idempotency_lookup(
    database_url: str,
    make_ledger: Callable[..., Ledger],
    open_loan: Callable[..., UUID],
    count_events: Count,
    count_commands: Count,
) -> None:
    generous = make_ledger(database_url)
    loan_id = open_loan(generous)
    first = generous.execute(
        parse_command(
            {
                **repayment(loan_id, "6000.00"),
                "idempotency_key": "pay-6000",
                "business_date": "2026-01-12",
            }
        )
    )
    # When the product's maximum is lowered to 5 000 CNY
    strict = make_ledger(database_url, max_amounts={"CNY": "5000"})

    # a new repayment above it is refused, naming the maximum
    error = refused(
        strict,
        count_events,
        count_commands,
        repayment(loan_id, "5000.01", business_date="2026-01-12"),
        InvalidAmount,
        "amount",
        "max_amount",
    )
    assert "5,000" in error.message and "CNY" in error.message
    # but a retry of the earlier one returns its first outcome
    retried = strict.execute(
        parse_command(
            {
                **repayment(loan_id, "6000.00"),
                "idempotency_key": "pay-6000",
                "business_date": "2026-01-12",
            }
        )
    )
    assert retried == first


def test_a_retried_application_returns_its_first_outcome_under_a_lower_rate_cap(
    database_url: str, make_ledger: Callable[..., Ledger], count_events: Count
) -> None:
    command = {
        "type": "apply_for_loan",
        "idempotency_key": "apply-20",
        "borrower_id": "B1",
        "principal": "10000.00",
        "annual_rate": "0.20",
        "term": 6,
        "business_date": "2026-01-05",
    }
    first = make_ledger(database_url).execute(parse_command(command))

    capped = make_ledger(database_url, rate_cap="0.15")

    assert capped.execute(parse_command(command)) == first
    assert count_events(capped) == 1


# ------------------------------------------------------------------------- types
@pytest.mark.parametrize(
    ("changes", "error", "field", "rule"),
    [
        ({"term": True}, ValidationError, "term", "integer"),  # once made a 1-month loan
        ({"term": "12"}, ValidationError, "term", "integer"),
        ({"term": 12.0}, ValidationError, "term", "integer"),
        ({"currency": "cny"}, UnknownCurrency, "currency", "iso4217"),
        ({"borrower_id": "B\x00"}, ValidationError, "borrower_id", "printable"),
        ({"borrower_id": "B\x1b[2J"}, ValidationError, "borrower_id", "printable"),
        ({"borrower_id": " B1"}, ValidationError, "borrower_id", "no_surrounding_spaces"),
        ({"borrower_id": "B" * 65}, ValidationError, "borrower_id", "max_length"),
        ({"business_date": "20270610"}, InvalidDate, "business_date", "iso_date"),
        ({"business_date": 20270610}, InvalidDate, "business_date", "iso_date"),
        ({"loan_id": "not-a-uuid"}, ValidationError, "loan_id", "uuid"),
        ({"surprise": 1}, ValidationError, "surprise", "unknown_field"),
    ],
)
def test_loosely_typed_input_is_refused_saying_what_is_expected(
    ledger_app: Ledger,
    loan_id: UUID,
    count_events: Count,
    count_commands: Count,
    changes: dict[str, Any],
    error: type[LedgerError],
    field: str,
    rule: str,
) -> None:
    application = {
        "type": "apply_for_loan",
        "borrower_id": "B1",
        "principal": "1000.00",
        "annual_rate": "0.1",
        "term": 12,
        "currency": "CNY",
    }
    caught = refused(
        ledger_app, count_events, count_commands, {**application, **changes}, error, field, rule
    )
    assert "\x00" not in caught.message and "\x1b" not in caught.message


def test_control_characters_in_a_reference_are_refused(
    ledger_app: Ledger, loan_id: UUID, count_events: Count, count_commands: Count
) -> None:
    refused(
        ledger_app,
        count_events,
        count_commands,
        repayment(loan_id, "10.00", reference="pay\x1b]0;pwned\x07"),
        ValidationError,
        "reference",
        "printable",
    )


def test_a_flag_must_be_a_json_boolean(
    ledger_app: Ledger, loan_id: UUID, count_events: Count, count_commands: Count
) -> None:
    refused(
        ledger_app,
        count_events,
        count_commands,
        {
            "type": "restructure_loan",
            "loan_id": str(loan_id),
            "kind": "extension",
            "extend_months": 3,
            "capitalize_arrears": "true",
        },
        ValidationError,
        "capitalize_arrears",
        "boolean",
    )


# --------------------------------------------------------------------------- ids
def test_reusing_a_loan_id_says_the_id_exists(
    ledger_app: Ledger, loan_id: UUID, count_events: Count, count_commands: Count
) -> None:
    error = refused(
        ledger_app,
        count_events,
        count_commands,
        {
            "type": "apply_for_loan",
            "loan_id": str(loan_id),
            "borrower_id": "B7",
            "principal": "1000.00",
            "annual_rate": "0.1",
            "term": 12,
        },
        AlreadyExists,
        "loan_id",
        "unique_id",
    )
    assert str(loan_id) in error.message and "already exists" in error.message


def test_reusing_a_complaint_id_says_the_id_exists(
    ledger_app: Ledger, loan_id: UUID, submit: Submit, count_events: Count, count_commands: Count
) -> None:
    filed = submit(
        ledger_app,
        "file_complaint",
        loan_id=loan_id,
        category="billing",
        description="charged twice",
    )
    refused(
        ledger_app,
        count_events,
        count_commands,
        {
            "type": "file_complaint",
            "complaint_id": filed["aggregate_id"],
            "loan_id": str(loan_id),
            "category": "fees",
            "description": "again",
        },
        AlreadyExists,
        "complaint_id",
        "unique_id",
    )


# ------------------------------------------------------------------------ tables
def test_every_command_has_a_handler_and_every_kind_an_exit_code() -> None:
    assert set(HANDLERS) == set(c.COMMANDS)
    assert set(EXIT_CODES) == set(KINDS) == set(SEVERITY)
