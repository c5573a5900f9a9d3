"""Day count conventions: how many years of interest lie between two dates.

Daily accrual is ``principal × rate × year_fraction(period_start, d)`` taken cumulatively, so the
fraction must be defined for every pair of dates, be zero for an empty period and never shrink as
``d`` moves forward. The fraction is an exact ``CALC`` Decimal; rounding belongs to the caller.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum

from domain.errors import InvalidDate, UnknownDayCount
from domain.money import CALC


class DayCount(StrEnum):
    ACT_365F = "ACT/365F"
    ACT_360 = "ACT/360"
    THIRTY_360 = "30/360"
    ACT_ACT_ISDA = "ACT/ACT ISDA"

    @classmethod
    def parse(cls, text: str, *, field: str = "day_count") -> DayCount:
        """Accept the canonical names and the aliases term sheets use, ignoring case and spacing."""
        key = " ".join(text.split()).upper() if isinstance(text, str) else ""
        try:
            return _ALIASES[key]
        except KeyError:
            accepted = ", ".join(member.value for member in cls)
            raise UnknownDayCount(
                f"unknown day count {text!r}: must be one of {accepted}",
                field=field,
                rule="day_count",
            ) from None


_ALIASES: dict[str, DayCount] = {
    **{member.value: member for member in DayCount},
    "ACT/365": DayCount.ACT_365F,
    "ACT/365 FIXED": DayCount.ACT_365F,
    "ACTUAL/365 FIXED": DayCount.ACT_365F,
    "ACTUAL/360": DayCount.ACT_360,
    "30/360 US": DayCount.THIRTY_360,
    "30U/360": DayCount.THIRTY_360,
    "BOND": DayCount.THIRTY_360,
    "BOND BASIS": DayCount.THIRTY_360,
    "ACT/ACT": DayCount.ACT_ACT_ISDA,
    "ACTUAL/ACTUAL ISDA": DayCount.ACT_ACT_ISDA,
    "ACTUAL/ACTUAL": DayCount.ACT_ACT_ISDA,
}


def year_fraction(day_count: DayCount, start: date, end: date) -> Decimal:
    """The exact (unrounded) fraction of a year from ``start`` to ``end`` under ``day_count``."""
    if end < start:
        raise InvalidDate(
            f"period end {end.isoformat()} is before its start {start.isoformat()}",
            field="end",
            rule="end_not_before_start",
        )
    if day_count == DayCount.ACT_365F:
        return CALC.divide(Decimal((end - start).days), Decimal(365))
    if day_count == DayCount.ACT_360:
        return CALC.divide(Decimal((end - start).days), Decimal(360))
    if day_count == DayCount.THIRTY_360:
        return CALC.divide(Decimal(_days_30_360(start, end)), Decimal(360))
    return _act_act_isda(start, end)


def _days_30_360(start: date, end: date) -> int:
    """US Bond basis (ISDA 2006 4.16(f)): 31st → 30th; no February month-end adjustment.

    The February rule of the SIA variant is left out on purpose: it makes Feb 28 → Mar 1 count as
    one day and breaks the "never shrinks" property daily accrual relies on.
    """
    d1 = min(start.day, 30)
    d2 = 30 if end.day == 31 and d1 == 30 else end.day
    return 360 * (end.year - start.year) + 30 * (end.month - start.month) + (d2 - d1)


def _act_act_isda(start: date, end: date) -> Decimal:
    """Days falling in leap years count 1/366, the others 1/365 (the period is split at Jan 1)."""
    leap_days = 0
    other_days = 0
    cursor = start
    while cursor < end:
        boundary = min(end, date(cursor.year + 1, 1, 1))
        days = (boundary - cursor).days
        if _is_leap(cursor.year):
            leap_days += days
        else:
            other_days += days
        cursor = boundary
    return CALC.add(
        CALC.divide(Decimal(leap_days), Decimal(366)),
        CALC.divide(Decimal(other_days), Decimal(365)),
    )


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
