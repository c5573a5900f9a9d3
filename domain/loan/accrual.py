"""Daily accrual and penalty interest: the arithmetic of closing a day, as pure functions.

A period's interest is computed, never summed. For day d the exact cumulative accrual of the
period is Σ segments principal not due × rate × year_fraction(segment start, d) (a segment ends
where the base or the rate changes: a prepayment, a restructure) and the day posts
round(cumulative) − already posted. So the rounding remainder is carried implicitly and the
posted days of a period add up exactly to the rounded period interest — the schedule's interest
when the loan runs to schedule.

Penalty interest (罚息) is rounded day by day with the remainder carried explicitly
(``PenaltyAccrued.carry``): posted + carry is always the exact cumulative penalty, so the
remainder is never lost; under a rounding mode away from zero a day may post −0.01.

Full precision is ``CALC`` (34 digits), as in the schedule, so an exact half-cent rounds the
same way in both. End of day calls these once or twice per loan per day: plain arguments, no
objects built.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from domain.daycount import DayCount, year_fraction
from domain.money import CALC, Currency

ZERO = Decimal(0)
ONE_DAY = timedelta(days=1)


def segment_exact(
    principal: Decimal, annual_rate: Decimal, day_count: DayCount, start: date, through: date
) -> Decimal:
    """Exact interest on ``principal`` from ``start`` through ``through`` (one segment)."""
    fraction = year_fraction(day_count, start, through)
    return CALC.multiply(CALC.multiply(principal, annual_rate), fraction)


def period_exact(
    closed: Decimal,
    principal: Decimal,
    annual_rate: Decimal,
    day_count: DayCount,
    segment_start: date,
    day: date,
) -> Decimal:
    """The period's exact cumulative accrual through ``day``: the closed segments' (``closed``)
    plus the open segment's, which runs on ``principal`` from ``segment_start``."""
    return CALC.add(
        closed,
        segment_exact(principal, annual_rate, day_count, segment_start, day)
        if day > segment_start
        else ZERO,
    )


def unbilled_target(
    period_exact: Decimal, currency: Currency, rounding: str, settled_in_period: Decimal
) -> Decimal:
    """The period's interest posted and not yet billed, for an exact cumulative accrual:
    rounded, less what a payment already settled before it was billed (so it is not posted
    again). A day posts this less what is already posted."""
    return currency.round(period_exact, rounding) - settled_in_period


def daily_penalty(
    base: Decimal,
    annual_rate: Decimal,
    markup: Decimal,
    day_count: DayCount,
    day: date,
    carry: Decimal,
    currency: Currency,
    rounding: str,
) -> tuple[Decimal, Decimal]:
    """Penalty interest for ``day`` on ``base`` at rate × (1 + markup), with the remainder
    ``carry`` of the day before: ``(posted, carry after)``, and posted + carry after = carry
    + the day's exact penalty."""
    penalty_rate = CALC.multiply(annual_rate, 1 + markup)
    fraction = year_fraction(day_count, day - ONE_DAY, day)
    exact = CALC.add(carry, CALC.multiply(CALC.multiply(base, penalty_rate), fraction))
    posted = currency.round(exact, rounding)
    return posted, exact - posted
