"""Day count conventions: known values, aliases and refusals."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from domain.daycount import DayCount, year_fraction
from domain.errors import InvalidDate, UnknownDayCount
from domain.money import CALC


def frac(num: int, den: int) -> Decimal:
    return CALC.divide(Decimal(num), Decimal(den))


@pytest.mark.parametrize(
    ("day_count", "start", "end", "expected"),
    [
        # ACT/365F: actual days over 365, even across a leap day
        (DayCount.ACT_365F, date(2024, 1, 1), date(2024, 3, 1), frac(60, 365)),
        (DayCount.ACT_365F, date(2023, 1, 1), date(2024, 1, 1), Decimal(1)),
        # ACT/360: actual days over 360
        (DayCount.ACT_360, date(2024, 1, 15), date(2024, 2, 15), frac(31, 360)),
        # 30/360: every whole month is 30 days
        (DayCount.THIRTY_360, date(2024, 1, 15), date(2024, 2, 15), frac(30, 360)),
        (DayCount.THIRTY_360, date(2024, 1, 15), date(2025, 1, 15), Decimal(1)),
        # D1 = 31 becomes 30
        (DayCount.THIRTY_360, date(2024, 1, 31), date(2024, 3, 15), frac(45, 360)),
        # D2 = 31 becomes 30 only when D1 >= 30
        (DayCount.THIRTY_360, date(2024, 1, 30), date(2024, 3, 31), frac(60, 360)),
        (DayCount.THIRTY_360, date(2024, 1, 31), date(2024, 3, 31), frac(60, 360)),
        (DayCount.THIRTY_360, date(2024, 1, 15), date(2024, 3, 31), frac(76, 360)),
        # Bond basis: no February month-end adjustment
        (DayCount.THIRTY_360, date(2023, 2, 28), date(2023, 3, 31), frac(33, 360)),
        (DayCount.THIRTY_360, date(2023, 1, 31), date(2023, 2, 28), frac(28, 360)),
        # ACT/ACT ISDA: split at Jan 1; 2023 days /365, 2024 (leap) days /366
        (
            DayCount.ACT_ACT_ISDA,
            date(2023, 12, 1),
            date(2024, 2, 1),
            CALC.add(frac(31, 365), frac(31, 366)),
        ),
        (DayCount.ACT_ACT_ISDA, date(2024, 1, 1), date(2025, 1, 1), Decimal(1)),
        (
            DayCount.ACT_ACT_ISDA,
            date(2023, 7, 1),
            date(2025, 7, 1),
            CALC.add(CALC.add(frac(184, 365), Decimal(1)), frac(181, 365)),
        ),
    ],
)
def test_known_year_fractions(
    day_count: DayCount, start: date, end: date, expected: Decimal
) -> None:
    assert year_fraction(day_count, start, end) == expected


@pytest.mark.parametrize("day_count", list(DayCount))
def test_empty_period_is_zero(day_count: DayCount) -> None:
    # given a period that starts and ends on the same day, then no interest accrues
    assert year_fraction(day_count, date(2024, 2, 29), date(2024, 2, 29)) == 0


@pytest.mark.parametrize("day_count", list(DayCount))
def test_end_before_start_is_refused(day_count: DayCount) -> None:
    with pytest.raises(InvalidDate) as caught:
        year_fraction(day_count, date(2024, 3, 2), date(2024, 3, 1))
    assert caught.value.field == "end"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ACT/365F", DayCount.ACT_365F),
        ("act/365", DayCount.ACT_365F),
        ("ACT/365 Fixed", DayCount.ACT_365F),
        ("act/360", DayCount.ACT_360),
        ("30/360", DayCount.THIRTY_360),
        ("30/360 US", DayCount.THIRTY_360),
        ("30u/360", DayCount.THIRTY_360),
        ("bond", DayCount.THIRTY_360),
        (" ACT/ACT ", DayCount.ACT_ACT_ISDA),
        ("act/act isda", DayCount.ACT_ACT_ISDA),
        ("Actual/Actual ISDA", DayCount.ACT_ACT_ISDA),
    ],
)
def test_parse_accepts_names_and_aliases(text: str, expected: DayCount) -> None:
    assert DayCount.parse(text) is expected


def test_unknown_day_count_names_field_rule_and_accepted_values() -> None:
    # when a term sheet names a convention we do not support
    with pytest.raises(UnknownDayCount) as caught:
        DayCount.parse("30E/360", field="product.day_count")
    # then the error names the field, the rule and what would have been accepted
    assert caught.value.field == "product.day_count"
    assert caught.value.rule == "day_count"
    assert "ACT/ACT ISDA" in caught.value.message
