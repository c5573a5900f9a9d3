"""Schedule invariants over random loans (hypothesis)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from itertools import pairwise

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from domain.daycount import DayCount
from domain.money import Currency
from domain.schedule import AmortizationMethod, Installment, build_schedule

CURRENCIES = [Currency.of("CNY"), Currency.of("JPY"), Currency.of("KWD")]
FAST = settings(max_examples=60, deadline=None)


@st.composite
def loans(
    draw: st.DrawFn,
    *,
    max_term: int = 360,
    max_gap: int = 45,
    method: AmortizationMethod | None = None,
) -> tuple[list[Installment], Decimal, Currency]:
    currency = draw(st.sampled_from(CURRENCIES))
    cents = draw(st.integers(min_value=10_000, max_value=1_000_000_000))
    principal = currency.round(Decimal(cents).scaleb(-2))
    start = draw(st.dates(min_value=date(2000, 1, 1), max_value=date(2060, 12, 31)))
    rows = build_schedule(
        principal=principal,
        annual_rate=Decimal(draw(st.integers(min_value=0, max_value=3600))).scaleb(-4),
        term=draw(st.integers(min_value=1, max_value=max_term)),
        method=method or draw(st.sampled_from(list(AmortizationMethod))),
        day_count=draw(st.sampled_from(list(DayCount))),
        start_date=start,
        first_due=start + timedelta(days=draw(st.integers(min_value=15, max_value=max_gap))),
        currency=currency,
    )
    return rows, principal, currency


@FAST
@given(loans())
def test_schedule_principal_sums_to_loan_amount(
    loan: tuple[list[Installment], Decimal, Currency],
) -> None:
    rows, principal, _ = loan
    assert sum(row.principal for row in rows) == principal
    assert all(row.principal >= 0 and row.interest >= 0 for row in rows)


@FAST
@given(loans())
def test_amounts_have_currency_minor_units(
    loan: tuple[list[Installment], Decimal, Currency],
) -> None:
    rows, _, currency = loan
    for row in rows:
        for amount in (row.principal, row.interest, row.total):
            assert currency.round(amount) == amount


@FAST
@given(loans(max_term=60, max_gap=31, method=AmortizationMethod.ANNUITY))
def test_annuity_installments_are_level_except_last(
    loan: tuple[list[Installment], Decimal, Currency],
) -> None:
    # given ordinary loans (first period at most a month, up to five years)
    rows, _, _ = loan
    # then every installment but the last has the same total; the last still repays principal
    assert len({row.total for row in rows[:-1]}) <= 1
    assert rows[-1].principal > 0


@FAST
@given(loans(method=AmortizationMethod.ANNUITY))
def test_annuity_installment_only_steps_down_after_interest_exceeds_it(
    loan: tuple[list[Installment], Decimal, Currency],
) -> None:
    # given any loan whose installments are large against the currency's unit (at least 100
    # minor units: below that, 1-unit rounding of the installment alone can make a 31-day
    # month's interest exceed it, e.g. a 420-yen loan over 15 years), a period whose interest
    # exceeds the level installment pays interest only, and the rest is re-levelled (never
    # upwards), so the term still holds
    rows, _, currency = loan
    assume(rows[0].total >= 100 * currency.quantum)
    level = [row.total for row in rows[:-1] if row.principal > 0]
    assert level == sorted(level, reverse=True)


@FAST
@given(loans())
def test_due_dates_strictly_increase(loan: tuple[list[Installment], Decimal, Currency]) -> None:
    rows, _, _ = loan
    assert all(row.start_date < row.due_date for row in rows)
    assert all(a.due_date == b.start_date for a, b in pairwise(rows))
    assert [row.number for row in rows] == list(range(1, len(rows) + 1))
