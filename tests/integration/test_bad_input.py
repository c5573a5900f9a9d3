"""Bad input gets a clear error naming the field and the rule, and changes nothing.

Every test sends one bad command to a ledger that already holds a loan, then checks the error's
class, ``field`` and ``rule``, and that neither an event nor a command-log row was written (so a
corrected retry with the same idempotency key is still possible).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any
from uuid import UUID

import pytest

from domain.errors import (
    CurrencyMismatch,
    InvalidAmount,
    InvalidDate,
    InvalidTerm,
    InvalidTransition,
    LedgerError,
    LoanNotActive,
    RateAboveCap,
    TooManyDecimals,
    UnknownCurrency,
    UnknownDayCount,
    ValidationError,
)
from ledger.app.commands import parse_command
from ledger.service import Ledger

Submit = Callable[..., dict[str, Any]]

APPLICATION: dict[str, Any] = {
    "type": "apply_for_loan",
    "borrower_id": "B9",
    "principal": "50000",
    "currency": "CNY",
    "annual_rate": "0.12",
    "term": 12,
    "day_count": "ACT/365F",
    "business_date": "2026-01-12",
}


class Refusal:
    """Runs a command that must be refused, then checks nothing was written."""

    def __init__(
        self,
        app: Ledger,
        count_events: Callable[[Ledger], int],
        count_commands: Callable[[Ledger], int],
    ) -> None:
        self.app = app
        self.count_events = count_events
        self.count_commands = count_commands

    @contextmanager
    def expect(
        self, error: type[LedgerError], *, field: str, rule: str
    ) -> Iterator[pytest.ExceptionInfo[LedgerError]]:
        events_before = self.count_events(self.app)
        commands_before = self.count_commands(self.app)
        with pytest.raises(error) as caught:
            yield caught
        assert type(caught.value) is error
        assert caught.value.field == field
        assert caught.value.rule == rule
        assert self.count_events(self.app) == events_before, "an event was recorded"
        assert self.count_commands(self.app) == commands_before, "a command was logged"

    def send(self, **command: Any) -> dict[str, Any]:
        command.setdefault("idempotency_key", "bad-1")
        return self.app.execute(parse_command(command))


@pytest.fixture
def loan_id(ledger_app: Ledger, open_loan: Callable[..., UUID]) -> UUID:
    """Given an active CNY loan, disbursed on 2026-01-10."""
    return open_loan(ledger_app)


@pytest.fixture
def refused(
    ledger_app: Ledger,
    loan_id: UUID,
    count_events: Callable[[Ledger], int],
    count_commands: Callable[[Ledger], int],
) -> Refusal:
    return Refusal(ledger_app, count_events, count_commands)


def repayment(loan_id: UUID, amount: Any, currency: str = "CNY") -> dict[str, Any]:
    return {
        "type": "receive_repayment",
        "loan_id": str(loan_id),
        "amount": amount,
        "currency": currency,
        "business_date": "2026-01-20",
    }


# --------------------------------------------------------------------------- amounts
def test_zero_amount_is_refused(refused: Refusal, loan_id: UUID) -> None:
    with refused.expect(InvalidAmount, field="amount", rule="positive"):
        refused.send(**repayment(loan_id, "0"))


def test_zero_principal_is_refused(refused: Refusal) -> None:
    with refused.expect(InvalidAmount, field="principal", rule="positive"):
        refused.send(**{**APPLICATION, "principal": "0.00"})


def test_negative_amount_is_refused(refused: Refusal, loan_id: UUID) -> None:
    with refused.expect(InvalidAmount, field="amount", rule="positive"):
        refused.send(**repayment(loan_id, "-100.00"))


def test_more_decimals_than_cny_allows_is_refused(refused: Refusal, loan_id: UUID) -> None:
    with refused.expect(TooManyDecimals, field="amount", rule="minor_units") as caught:
        refused.send(**repayment(loan_id, "1.234"))
    assert "CNY" in caught.value.message


def test_more_decimals_than_jpy_allows_is_refused(
    ledger_app: Ledger, open_loan: Callable[..., UUID], refused: Refusal
) -> None:
    jpy_loan = open_loan(ledger_app, principal="1000000", currency="JPY", borrower_id="B-JP")
    with refused.expect(TooManyDecimals, field="amount", rule="minor_units") as caught:
        refused.send(**repayment(jpy_loan, "1.5", currency="JPY"))
    assert "JPY" in caught.value.message


def test_a_jpy_principal_with_decimals_is_refused(refused: Refusal) -> None:
    with refused.expect(TooManyDecimals, field="principal", rule="minor_units"):
        refused.send(**{**APPLICATION, "currency": "JPY", "principal": "100000.5"})


def test_float_amount_in_json_is_refused(refused: Refusal, loan_id: UUID) -> None:
    line = json.dumps(repayment(loan_id, 0.1))  # a JSON number, not a decimal string
    with refused.expect(InvalidAmount, field="amount", rule="no_float") as caught:
        refused.send(**json.loads(line))
    assert "string" in caught.value.message


def test_float_principal_in_json_is_refused(refused: Refusal) -> None:
    line = (
        '{"type": "apply_for_loan", "idempotency_key": "k", "borrower_id": "B9",'
        ' "principal": 50000.10, "annual_rate": "0.1", "term": 12}'
    )
    with refused.expect(InvalidAmount, field="principal", rule="no_float"):
        refused.send(**json.loads(line))


# ------------------------------------------------------------------------- terms
def test_unknown_currency_is_refused(refused: Refusal) -> None:
    with refused.expect(UnknownCurrency, field="currency", rule="iso4217") as caught:
        refused.send(**{**APPLICATION, "currency": "XYZ"})
    assert "XYZ" in caught.value.message


def test_unknown_day_count_is_refused(refused: Refusal) -> None:
    with refused.expect(UnknownDayCount, field="day_count", rule="day_count") as caught:
        refused.send(**{**APPLICATION, "day_count": "ACT/999"})
    assert "ACT/365F" in caught.value.message  # says what is accepted


def test_rate_above_the_cap_is_refused_naming_the_cap(refused: Refusal) -> None:
    with refused.expect(RateAboveCap, field="annual_rate", rule="rate_cap") as caught:
        refused.send(**{**APPLICATION, "annual_rate": "0.30"})
    assert "0.24" in caught.value.message
    assert "cap" in caught.value.message


def test_the_rate_cap_is_configurable(
    database_url: str, make_ledger: Callable[..., Ledger], count_events: Callable[[Ledger], int]
) -> None:
    app = make_ledger(database_url, rate_cap="0.15")
    with pytest.raises(RateAboveCap) as caught:
        app.execute(parse_command({**APPLICATION, "idempotency_key": "k", "annual_rate": "0.18"}))
    assert "0.15" in caught.value.message
    assert count_events(app) == 0


def test_term_zero_is_refused(refused: Refusal) -> None:
    with refused.expect(InvalidTerm, field="term", rule="term_1_to_600"):
        refused.send(**{**APPLICATION, "term": 0})


# ------------------------------------------------------------------------- state
def test_disbursing_before_approval_is_refused(
    ledger_app: Ledger, submit: Submit, refused: Refusal
) -> None:
    applied = ledger_app.execute(parse_command({**APPLICATION, "idempotency_key": "a"}))
    with refused.expect(InvalidTransition, field="loan_id", rule="status_disburse") as caught:
        refused.send(
            type="disburse_loan", loan_id=applied["aggregate_id"], business_date="2026-01-13"
        )
    assert "applied" in caught.value.message and "approved" in caught.value.message


def test_repaying_a_closed_loan_is_refused(
    ledger_app: Ledger, submit: Submit, open_loan: Callable[..., UUID], refused: Refusal
) -> None:
    short = open_loan(ledger_app, principal="3000", term=1, borrower_id="B-short")
    payoff = ledger_app.get_loan(short).payoff_amount(date(2026, 1, 15))
    submit(
        ledger_app,
        "receive_repayment",
        loan_id=short,
        amount=str(payoff),
        currency="CNY",
        business_date=date(2026, 1, 15),
    )
    assert ledger_app.get_loan(short).status == "closed"

    with refused.expect(LoanNotActive, field="loan_id", rule="loan_active") as caught:
        refused.send(**repayment(short, "100.00"))
    assert "closed" in caught.value.message


def test_repaying_a_written_off_loan_is_refused(
    ledger_app: Ledger, submit: Submit, loan_id: UUID, refused: Refusal
) -> None:
    submit(
        ledger_app,
        "write_off_loan",
        loan_id=loan_id,
        reason="fraud",
        business_date=date(2026, 1, 15),
    )

    with refused.expect(LoanNotActive, field="loan_id", rule="loan_active") as caught:
        refused.send(**repayment(loan_id, "100.00"))
    assert "written_off" in caught.value.message


def test_payment_in_the_wrong_currency_is_refused(refused: Refusal, loan_id: UUID) -> None:
    with refused.expect(CurrencyMismatch, field="currency", rule="loan_currency") as caught:
        refused.send(**repayment(loan_id, "100.00", currency="USD"))
    assert "USD" in caught.value.message and "CNY" in caught.value.message


# --------------------------------------------------------------------- commands
def test_unknown_command_type_is_refused(refused: Refusal, loan_id: UUID) -> None:
    with refused.expect(ValidationError, field="type", rule="command_type") as caught:
        refused.send(type="forgive_loan", loan_id=str(loan_id))
    assert "forgive_loan" in caught.value.message


def test_business_date_in_an_already_closed_day_is_refused(
    ledger_app: Ledger, loan_id: UUID, refused: Refusal
) -> None:
    ledger_app.close_business_days(date(2026, 1, 31))

    with refused.expect(InvalidDate, field="business_date", rule="not_in_closed_day") as caught:
        refused.send(**{**repayment(loan_id, "100.00"), "business_date": "2026-01-31"})
    assert "2026-01-31" in caught.value.message


def test_a_refused_key_can_be_used_again_once_corrected(ledger_app: Ledger, loan_id: UUID) -> None:
    with pytest.raises(InvalidAmount):
        ledger_app.execute(parse_command({**repayment(loan_id, "0"), "idempotency_key": "k1"}))

    result = ledger_app.execute(
        parse_command({**repayment(loan_id, "10.00"), "idempotency_key": "k1"})
    )

    assert result["events"][-1] == "RepaymentReceived"
