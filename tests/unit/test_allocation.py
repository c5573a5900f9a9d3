"""Payment allocation stories: given what is due, when a payment arrives, then how it splits."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from domain.allocation import (
    Allocation,
    AllocationLine,
    Component,
    DueItem,
    Waterfall,
    allocate,
)
from domain.errors import InvalidAmount, InvalidWaterfall

P, F, IN, PR = Component.PENALTY, Component.FEES, Component.INTEREST, Component.PRINCIPAL
JAN, FEB = date(2024, 1, 15), date(2024, 2, 15)


def D(text: str) -> Decimal:
    return Decimal(text)


def two_overdue_installments() -> list[DueItem]:
    # Given two overdue installments plus loan-level penalty and a fee, listed newest first.
    return [
        DueItem(PR, FEB, D("100.00"), 2),
        DueItem(IN, FEB, D("10.00"), 2),
        DueItem(PR, JAN, D("100.00"), 1),
        DueItem(IN, JAN, D("12.00"), 1),
        DueItem(F, JAN, D("5.00")),
        DueItem(P, FEB, D("2.00")),
        DueItem(P, JAN, D("3.00")),
    ]


def keys(allocation: Allocation) -> list[tuple[Component, date, str]]:
    return [(line.component, line.due_date, str(line.amount)) for line in allocation.lines]


def test_default_waterfall_pays_penalties_fees_interest_principal_oldest_first() -> None:
    # When enough arrives to clear everything,
    result = allocate(D("232.00"), two_overdue_installments())
    # then each component is cleared, oldest due date first, before the next component.
    assert keys(result) == [
        (P, JAN, "3.00"),
        (P, FEB, "2.00"),
        (F, JAN, "5.00"),
        (IN, JAN, "12.00"),
        (IN, FEB, "10.00"),
        (PR, JAN, "100.00"),
        (PR, FEB, "100.00"),
    ]
    assert result.remainder == 0
    assert result.total(IN) == D("22.00")


def test_interest_first_puts_interest_ahead_of_penalty_and_fees() -> None:
    result = allocate(D("25.00"), two_overdue_installments(), Waterfall.parse("interest_first"))
    # Interest (22) first, then the oldest penalty takes what is left.
    assert keys(result) == [(IN, JAN, "12.00"), (IN, FEB, "10.00"), (P, JAN, "3.00")]


def test_principal_first_recovers_capital_before_income() -> None:
    result = allocate(D("150.00"), two_overdue_installments(), Waterfall.parse("principal_first"))
    assert keys(result) == [(PR, JAN, "100.00"), (PR, FEB, "50.00")]
    assert result.total(P) == D("0.00")


def test_by_installment_clears_the_oldest_due_date_before_the_next() -> None:
    result = allocate(D("125.00"), two_overdue_installments(), Waterfall.parse("by_installment"))
    # January: penalty, fee, interest, principal; then February's penalty with the last 5.
    assert keys(result) == [
        (P, JAN, "3.00"),
        (F, JAN, "5.00"),
        (IN, JAN, "12.00"),
        (PR, JAN, "100.00"),
        (P, FEB, "2.00"),
        (IN, FEB, "3.00"),
    ]


def test_partial_payment_stops_mid_item() -> None:
    # When only 10 arrives against penalty 3, fee 5 and interest 12,
    result = allocate(D("10.00"), two_overdue_installments())
    # then the interest line is partly paid and nothing is left over.
    assert keys(result) == [(P, JAN, "3.00"), (P, FEB, "2.00"), (F, JAN, "5.00")]
    result = allocate(D("20.00"), two_overdue_installments())
    assert result.lines[-1] == AllocationLine(IN, JAN, D("10.00"), 1)
    assert result.allocated == D("20.00") and result.remainder == 0


def test_overpayment_is_left_as_remainder_for_the_caller() -> None:
    result = allocate(D("300.00"), two_overdue_installments())
    assert result.allocated == D("232.00")
    assert result.remainder == D("68.00")


def test_same_due_date_ties_go_to_the_lower_installment_then_input_order() -> None:
    items = [DueItem(IN, JAN, D("5"), 2), DueItem(IN, JAN, D("5"), 1), DueItem(F, JAN, D("1"))]
    result = allocate(D("6"), items)
    assert [line.installment for line in result.lines] == [None, 1]


def test_zero_due_items_receive_nothing_and_leave_no_line() -> None:
    result = allocate(D("5.00"), [DueItem(IN, JAN, D("0.00"), 1), DueItem(PR, JAN, D("9.00"), 1)])
    assert keys(result) == [(PR, JAN, "5.00")]


@pytest.mark.parametrize("payment", [D("0"), D("-1.00")])
def test_payment_must_be_positive(payment: Decimal) -> None:
    with pytest.raises(InvalidAmount) as error:
        allocate(payment, two_overdue_installments())
    assert error.value.field == "amount" and error.value.rule == "positive"


@pytest.mark.parametrize(
    ("spec", "rule"),
    [
        ("newest_first", "preset_or_components"),
        ("interest,principal,penalty", "preset_or_components"),
        ("interest,principal,penalty,penalty", "preset_or_components"),
        ("interest,principal,penalty,fees,fees", "preset_or_components"),
        ("standard:by_due", "option"),
        ("", "preset_or_components"),
    ],
)
def test_parse_errors_name_the_field_and_rule(spec: str, rule: str) -> None:
    with pytest.raises(InvalidWaterfall) as error:
        Waterfall.parse(spec, field="product.waterfall")
    assert error.value.field == "product.waterfall"
    assert error.value.rule == rule


def test_parse_accepts_a_component_list_with_the_by_installment_suffix() -> None:
    parsed = Waterfall.parse(" Interest, principal,penalty,fees : by_installment ")
    assert parsed == Waterfall((IN, PR, P, F), by_installment=True)


@pytest.mark.parametrize(
    "spec",
    [
        "standard",
        "interest_first",
        "principal_first",
        "by_installment",
        "interest,principal,penalty,fees",
        "fees,interest,penalty,principal:by_installment",
        "principal_first:by_installment",
    ],
)
def test_spec_round_trips_through_parse(spec: str) -> None:
    waterfall = Waterfall.parse(spec)
    assert Waterfall.parse(waterfall.spec()) == waterfall
    assert waterfall.spec() == Waterfall.parse(waterfall.spec()).spec()


def test_preset_specs_are_their_names() -> None:
    assert Waterfall().spec() == "standard"
    assert Waterfall.parse("penalty,fees,interest,principal:by_installment").spec() == (
        "by_installment"
    )


def test_allocation_dict_carries_amounts_as_strings_and_round_trips() -> None:
    result = allocate(D("20.00"), two_overdue_installments())
    data = result.as_dict()
    assert data["penalty"] == "5.00" and data["fees"] == "5.00"
    assert data["interest"] == "10.00" and data["principal"] == "0.00"
    assert data["remainder"] == "0.00"
    assert data["lines"] == [
        {"component": "penalty", "due_date": "2024-01-15", "amount": "3.00", "installment": None},
        {"component": "penalty", "due_date": "2024-02-15", "amount": "2.00", "installment": None},
        {"component": "fees", "due_date": "2024-01-15", "amount": "5.00", "installment": None},
        {"component": "interest", "due_date": "2024-01-15", "amount": "10.00", "installment": 1},
    ]
    assert Allocation.from_dict(data) == result
    assert Allocation.from_dict(data).as_dict() == data
