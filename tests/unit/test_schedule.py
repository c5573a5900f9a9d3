"""Repayment schedules: textbook equality, rounding residuals, due dates and refusals."""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest

from domain.daycount import DayCount
from domain.errors import InvalidAmount, InvalidDate, InvalidRate, InvalidTerm, UnknownMethod
from domain.money import CALC, Currency
from domain.schedule import (
    AmortizationMethod,
    Installment,
    build_schedule,
    monthly_due_dates,
    period_interest,
)

CNY = Currency.of("CNY")


def schedule(**overrides: Any) -> list[Installment]:
    args: dict[str, Any] = {
        "principal": Decimal("100000.00"),
        "annual_rate": Decimal("0.12"),
        "term": 12,
        "method": AmortizationMethod.ANNUITY,
        "day_count": DayCount.THIRTY_360,
        "start_date": date(2024, 1, 15),
        "first_due": date(2024, 2, 15),
        "currency": CNY,
    }
    args.update(overrides)
    return build_schedule(**args)


def textbook_payment(principal: Decimal, annual_rate: Decimal, n: int) -> Decimal:
    i = CALC.divide(annual_rate, Decimal(12))
    discount = CALC.power(CALC.add(Decimal(1), i), -n)
    return CALC.divide(CALC.multiply(principal, i), CALC.subtract(Decimal(1), discount))


@pytest.mark.parametrize(
    ("principal", "rate", "term"),
    [("100000.00", "0.12", 12), ("250000.00", "0.049", 360), ("5000.00", "0.36", 24)],
)
def test_annuity_equals_textbook_formula_under_30_360(principal: str, rate: str, term: int) -> None:
    # given 30/360 and a one-month first period, every f_j is 1/12
    rows = schedule(principal=Decimal(principal), annual_rate=Decimal(rate), term=term)
    # then every installment but the last is P·i/(1−(1+i)^−n), rounded
    expected = CNY.round(textbook_payment(Decimal(principal), Decimal(rate), term))
    assert {row.total for row in rows[:-1]} == {expected}


def test_textbook_example_100000_at_12_percent_over_a_year() -> None:
    rows = schedule()
    assert rows[0].total == Decimal("8884.88")
    assert rows[0].interest == Decimal("1000.00")
    # the last installment absorbs the rounding residual
    assert rows[-1].total == Decimal("8884.85")
    assert sum(row.principal for row in rows) == Decimal("100000.00")


def test_zero_rate_annuity_splits_principal_evenly() -> None:
    rows = schedule(principal=Decimal("1000.00"), annual_rate=Decimal(0), term=3)
    assert [row.principal for row in rows] == [Decimal("333.33")] * 2 + [Decimal("333.34")]
    assert all(row.interest == 0 for row in rows)


def test_equal_principal_pays_level_principal_and_declining_interest() -> None:
    rows = schedule(principal=Decimal("1200.00"), term=3, method=AmortizationMethod.EQUAL_PRINCIPAL)
    assert [row.principal for row in rows] == [Decimal("400.00")] * 3
    # 12% a year is 1% a month under 30/360, on 1200, 800, 400
    assert [row.interest for row in rows] == [Decimal("12.00"), Decimal("8.00"), Decimal("4.00")]


def test_equal_principal_last_installment_absorbs_residual() -> None:
    rows = schedule(principal=Decimal("200.00"), term=3, method=AmortizationMethod.EQUAL_PRINCIPAL)
    assert [row.principal for row in rows] == [Decimal("66.67"), Decimal("66.67"), Decimal("66.66")]


def test_rounding_mode_is_applied() -> None:
    # given 1200 JPY at 2.5% for one 30/360 month: interest is exactly 2.5 yen
    args: dict[str, Any] = {
        "principal": Decimal("1200"),
        "annual_rate": Decimal("0.025"),
        "term": 1,
        "currency": Currency.of("JPY"),
    }
    # then half-even posts 2 and half-up posts 3
    assert schedule(**args)[0].interest == Decimal("2")
    assert schedule(**args, rounding=ROUND_HALF_UP)[0].interest == Decimal("3")


def test_tiny_loan_over_long_term_still_runs_the_full_term() -> None:
    # given 100.00 over 360 months, rounding 0.2777… up to 0.28 would repay it early
    rows = schedule(principal=Decimal("100.00"), annual_rate=Decimal(0), term=360)
    # then the term holds and the last installment takes the residual
    assert len(rows) == 360
    assert sum(row.principal for row in rows) == Decimal("100.00")
    assert rows[-1].principal >= rows[0].principal


def test_jpy_amounts_have_no_decimals() -> None:
    rows = schedule(
        principal=Decimal("1000000"),
        annual_rate=Decimal("0.035"),
        term=24,
        day_count=DayCount.ACT_365F,
        currency=Currency.of("JPY"),
    )
    assert sum(row.principal for row in rows) == Decimal("1000000")
    assert all(row.principal == row.principal.to_integral_value() for row in rows)
    assert all(row.interest == row.interest.to_integral_value() for row in rows)


def test_due_dates_keep_the_month_end_anchor() -> None:
    assert monthly_due_dates(date(2024, 1, 31), 5) == [
        date(2024, 1, 31),
        date(2024, 2, 29),
        date(2024, 3, 31),
        date(2024, 4, 30),
        date(2024, 5, 31),
    ]
    assert monthly_due_dates(date(2023, 11, 30), 4) == [
        date(2023, 11, 30),
        date(2023, 12, 30),
        date(2024, 1, 30),
        date(2024, 2, 29),
    ]


def test_periods_chain_from_disbursement_to_due_dates() -> None:
    rows = schedule(
        start_date=date(2024, 1, 10), first_due=date(2024, 1, 31), term=3, first_number=7
    )
    assert [row.number for row in rows] == [7, 8, 9]
    assert [(row.start_date, row.due_date) for row in rows] == [
        (date(2024, 1, 10), date(2024, 1, 31)),
        (date(2024, 1, 31), date(2024, 2, 29)),
        (date(2024, 2, 29), date(2024, 3, 31)),
    ]


def test_period_interest_is_exact() -> None:
    value = period_interest(
        Decimal("1000"), Decimal("0.1"), DayCount.ACT_365F, date(2024, 1, 1), date(2024, 1, 2)
    )
    assert value == CALC.divide(Decimal(100), Decimal(365))


def test_fixed_payment_shortens_the_term() -> None:
    # given the installment of the original loan kept after a 30000 prepayment
    rows = schedule(principal=Decimal("70000.00"), fixed_payment=Decimal("8884.88"))
    # then the loan ends earlier, the last installment taking what is left
    assert len(rows) < 12
    assert all(row.total == Decimal("8884.88") for row in rows[:-1])
    assert rows[-1].total <= Decimal("8884.88")
    assert sum(row.principal for row in rows) == Decimal("70000.00")


def test_fixed_principal_shortens_equal_principal_term() -> None:
    rows = schedule(
        principal=Decimal("1000.00"),
        term=12,
        fixed_payment=Decimal("300.00"),
        method=AmortizationMethod.EQUAL_PRINCIPAL,
    )
    assert [row.principal for row in rows] == [Decimal("300.00")] * 3 + [Decimal("100.00")]


def test_fixed_payment_too_small_leaves_the_rest_to_the_last_installment() -> None:
    rows = schedule(
        principal=Decimal("1000.00"),
        term=3,
        fixed_payment=Decimal("100.00"),
        method=AmortizationMethod.EQUAL_PRINCIPAL,
    )
    assert [row.principal for row in rows] == [
        Decimal("100.00"),
        Decimal("100.00"),
        Decimal("800.00"),
    ]


def test_installment_round_trips_through_dict() -> None:
    row = schedule()[0]
    data = row.as_dict()
    assert data == {
        "number": 1,
        "start_date": "2024-01-15",
        "due_date": "2024-02-15",
        "principal": "7884.88",
        "interest": "1000.00",
        "total": "8884.88",
    }
    assert Installment.from_dict(data) == row
    assert (
        Installment.from_dict({**data, "start_date": row.start_date, "principal": row.principal})
        == row
    )


@pytest.mark.parametrize(
    ("overrides", "error", "field"),
    [
        ({"principal": Decimal(0)}, InvalidAmount, "principal"),
        ({"principal": Decimal("-1.00")}, InvalidAmount, "principal"),
        ({"term": 0}, InvalidTerm, "term"),
        ({"term": 601}, InvalidTerm, "term"),
        ({"annual_rate": Decimal("-0.01")}, InvalidRate, "annual_rate"),
        ({"first_due": date(2024, 1, 15)}, InvalidDate, "first_due"),
        ({"first_due": date(2024, 1, 1)}, InvalidDate, "first_due"),
    ],
)
def test_bad_input_names_the_field(
    overrides: dict[str, Any], error: type[Exception], field: str
) -> None:
    with pytest.raises(error) as caught:
        schedule(**overrides)
    assert getattr(caught.value, "field", None) == field


def test_term_zero_breaks_the_term_rule() -> None:
    with pytest.raises(InvalidTerm) as caught:
        schedule(term=0)
    assert caught.value.rule == "term_at_least_1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("annuity", AmortizationMethod.ANNUITY),
        ("等额本息", AmortizationMethod.ANNUITY),
        ("Equal-Principal", AmortizationMethod.EQUAL_PRINCIPAL),
        ("等额本金", AmortizationMethod.EQUAL_PRINCIPAL),
    ],
)
def test_method_parse_accepts_english_and_chinese(text: str, expected: AmortizationMethod) -> None:
    assert AmortizationMethod.parse(text) is expected


def test_unknown_method_names_the_field() -> None:
    with pytest.raises(UnknownMethod) as caught:
        AmortizationMethod.parse("balloon", field="product.method")
    assert caught.value.field == "product.method"
