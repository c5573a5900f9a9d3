"""The daily accrual and penalty arithmetic (``domain.loan.accrual``), called directly: the
posted days of a period add up to its rounded exact interest, which is the schedule's period
interest, no day posts less than zero, and the penalty's carried remainder is never lost."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, ROUND_UP, Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.daycount import DayCount, year_fraction
from domain.loan.accrual import daily_penalty, period_exact, unbilled_target
from domain.money import CALC, Currency
from domain.schedule import period_interest

D = Decimal
ZERO = D(0)
FAST = settings(max_examples=80, deadline=None)
CURRENCIES = st.sampled_from([Currency.of("CNY"), Currency.of("JPY"), Currency.of("KWD")])
ROUNDINGS = st.sampled_from([ROUND_HALF_EVEN, ROUND_HALF_UP, ROUND_UP])
AMOUNTS = st.integers(1, 10**11).map(lambda n: D(n).scaleb(-2))
RATES = st.integers(0, 3600).map(lambda n: D(n).scaleb(-4))
STARTS = st.dates(min_value=date(2000, 1, 1), max_value=date(2060, 12, 31))


@FAST
@given(
    principal=AMOUNTS,
    rate=RATES,
    day_count=st.sampled_from(list(DayCount)),
    start=STARTS,
    days=st.integers(1, 62),
    currency=CURRENCIES,
    rounding=ROUNDINGS,
    settled=st.integers(0, 500),
)
def test_a_periods_posted_days_sum_to_its_rounded_exact_interest(
    principal: Decimal,
    rate: Decimal,
    day_count: DayCount,
    start: date,
    days: int,
    currency: Currency,
    rounding: str,
    settled: int,
) -> None:
    # Given interest settled early (paid before it was billed), the days post the rest;
    settled_early = min(
        currency.round(D(settled)),
        currency.round(
            period_interest(principal, rate, day_count, start, start + timedelta(days=1)), rounding
        ),
    )
    posted = ZERO
    for k in range(1, days + 1):
        exact = period_exact(ZERO, principal, rate, day_count, start, start + timedelta(days=k))
        today = unbilled_target(exact, currency, rounding, settled_early) - posted
        if k > 1:  # the settled part is already counted from the first day
            assert today >= 0
        posted += today
    due = start + timedelta(days=days)
    # the whole period then posts the schedule's period interest, rounded once.
    assert posted + settled_early == currency.round(
        period_interest(principal, rate, day_count, start, due), rounding
    )


@FAST
@given(
    bases=st.lists(AMOUNTS, min_size=1, max_size=60),
    rate=RATES,
    markup=st.sampled_from([D("0"), D("0.3"), D("0.5")]),
    day_count=st.sampled_from(list(DayCount)),
    start=STARTS,
    currency=CURRENCIES,
    rounding=ROUNDINGS,
)
def test_the_penalty_carry_is_never_lost(
    bases: list[Decimal],
    rate: Decimal,
    markup: Decimal,
    day_count: DayCount,
    start: date,
    currency: Currency,
    rounding: str,
) -> None:
    carry = posted = exact_total = ZERO
    for k, base in enumerate(bases, start=1):
        day = start + timedelta(days=k)
        amount, carry = daily_penalty(base, rate, markup, day_count, day, carry, currency, rounding)
        assert currency.round(amount) == amount  # posted in minor units
        assert abs(carry) < currency.quantum  # less than a minor unit waits
        posted += amount
        exact_total = CALC.add(
            exact_total,
            CALC.multiply(
                CALC.multiply(base, CALC.multiply(rate, 1 + markup)),
                year_fraction(day_count, day - timedelta(days=1), day),
            ),
        )
    # What is posted plus what waits is the exact penalty (the carry is kept to 28 digits).
    assert abs(posted + carry - exact_total) < D("1e-20")
