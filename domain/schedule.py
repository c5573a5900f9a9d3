"""Repayment schedules: monthly installments for annuity (等额本息) and equal principal (等额本金).

Interest for each period is the scheduled balance × rate × the day-count fraction of that very
period, so the schedule and the daily accrual agree. Amounts are rounded to minor units at the
named steps only; the last installment absorbs every residual so principal sums exactly.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from enum import StrEnum

from domain.daycount import DayCount, year_fraction
from domain.errors import InvalidDate, InvalidRate, InvalidTerm, UnknownMethod, ValidationError
from domain.money import CALC, ROUNDING_MODES, Currency, to_decimal

MAX_TERM = 600


class AmortizationMethod(StrEnum):
    ANNUITY = "annuity"
    EQUAL_PRINCIPAL = "equal_principal"

    @classmethod
    def parse(cls, text: str, *, field: str = "method") -> AmortizationMethod:
        """Accept the English names (any case, - or _) and the Chinese terms used on contracts."""
        key = "_".join(text.lower().replace("-", " ").split()) if isinstance(text, str) else ""
        try:
            return _METHOD_ALIASES[key]
        except KeyError:
            raise UnknownMethod(
                f"unknown amortization method {text!r}: must be annuity (等额本息)"
                " or equal_principal (等额本金)",
                field=field,
                rule="amortization_method",
            ) from None


_METHOD_ALIASES = {
    "annuity": AmortizationMethod.ANNUITY,
    "等额本息": AmortizationMethod.ANNUITY,
    "equal_principal": AmortizationMethod.EQUAL_PRINCIPAL,
    "等额本金": AmortizationMethod.EQUAL_PRINCIPAL,
}


@dataclass(frozen=True, slots=True)
class Installment:
    number: int
    start_date: date
    due_date: date
    principal: Decimal
    interest: Decimal

    @property
    def total(self) -> Decimal:
        return CALC.add(self.principal, self.interest)

    def as_dict(self) -> dict[str, int | str]:
        """JSON-ready form (amounts as strings) for events and read models."""
        return {
            "number": self.number,
            "start_date": self.start_date.isoformat(),
            "due_date": self.due_date.isoformat(),
            "principal": str(self.principal),
            "interest": str(self.interest),
            "total": str(self.total),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Installment:
        """Inverse of ``as_dict``; ``total`` is derived, so it is ignored."""
        return cls(
            number=int(str(data["number"])),
            start_date=_as_date(data["start_date"]),
            due_date=_as_date(data["due_date"]),
            principal=_as_amount(data["principal"], "principal"),
            interest=_as_amount(data["interest"], "interest"),
        )


def _as_date(value: object) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _as_amount(value: object, field: str) -> Decimal:
    return to_decimal(value if isinstance(value, Decimal | int) else str(value), field=field)


def monthly_due_dates(first_due: date, count: int) -> list[date]:
    """Same day of month as ``first_due``, or the month's last day; anchored, so Jan 31 →
    Feb 28 → Mar 31 (the day never drifts down after a short month)."""
    dates = []
    for offset in range(count):
        year, month0 = divmod(first_due.month - 1 + offset, 12)
        year += first_due.year
        last_day = calendar.monthrange(year, month0 + 1)[1]
        dates.append(date(year, month0 + 1, min(first_due.day, last_day)))
    return dates


def period_interest(
    balance: Decimal, annual_rate: Decimal, day_count: DayCount, start: date, end: date
) -> Decimal:
    """Exact (unrounded) interest on ``balance`` for the period; callers round where they post."""
    return CALC.multiply(CALC.multiply(balance, annual_rate), year_fraction(day_count, start, end))


def build_schedule(
    *,
    principal: Decimal,
    annual_rate: Decimal,
    term: int,
    method: AmortizationMethod,
    day_count: DayCount,
    start_date: date,
    first_due: date,
    currency: Currency,
    rounding: str = ROUND_HALF_EVEN,
    fixed_payment: Decimal | None = None,
    first_number: int = 1,
) -> list[Installment]:
    """Build the schedule; with ``fixed_payment`` the term is an upper bound (shorten-term)."""
    amount = currency.check_amount(principal, field="principal")
    rate = to_decimal(annual_rate, field="annual_rate")
    _check_inputs(rate, term, start_date, first_due, rounding)
    fixed = None
    if fixed_payment is not None:
        fixed = currency.check_amount(fixed_payment, field="fixed_payment")
    dues = monthly_due_dates(first_due, term)
    starts = [start_date, *dues[:-1]]
    fractions = [year_fraction(day_count, s, d) for s, d in zip(starts, dues, strict=True)]
    plan = _Plan(amount, rate, fractions, currency, rounding, method, fixed)
    rows = plan.run(rounding)
    if fixed is None and len(rows) < term:
        # Rounding the level amount up made a tiny loan over a long term run out early; rounding
        # it down instead always leaves a positive residual for the last installment.
        rows = plan.run(ROUND_DOWN)
    return [
        Installment(first_number + k, starts[k], dues[k], p, i) for k, (p, i) in enumerate(rows)
    ]


def _check_inputs(rate: Decimal, term: int, start: date, first_due: date, rounding: str) -> None:
    if isinstance(term, bool) or not isinstance(term, int) or term < 1:
        raise InvalidTerm(
            f"term must be at least 1, got {term}", field="term", rule="term_at_least_1"
        )
    if term > MAX_TERM:
        raise InvalidTerm(
            f"term must be at most {MAX_TERM}, got {term}",
            field="term",
            rule=f"term_at_most_{MAX_TERM}",
        )
    if rate < 0:
        raise InvalidRate(
            f"annual_rate must be zero or more, got {rate}",
            field="annual_rate",
            rule="non_negative",
        )
    if first_due <= start:
        raise InvalidDate(
            f"first_due {first_due.isoformat()} must be after start_date {start.isoformat()}",
            field="first_due",
            rule="first_due_after_start",
        )
    if rounding not in ROUNDING_MODES:
        raise ValidationError(
            f"unknown rounding mode {rounding!r}", field="rounding", rule="rounding_mode"
        )


@dataclass(frozen=True, slots=True)
class _Plan:
    """The inputs of one amortization run; ``run`` yields (principal, interest) per period."""

    amount: Decimal
    rate: Decimal
    fractions: list[Decimal]
    currency: Currency
    rounding: str
    method: AmortizationMethod
    fixed: Decimal | None

    def run(self, level_mode: str) -> list[tuple[Decimal, Decimal]]:
        n = len(self.fractions)
        # discount[k] = Π_{j≤k} 1/(1 + r·f_j); suffix[k] = Σ_{m≥k} discount[m] (index 0 = 1).
        discount = [Decimal(1)]
        for f in self.fractions:
            growth = CALC.add(Decimal(1), CALC.multiply(self.rate, f))
            discount.append(CALC.divide(discount[-1], growth))
        suffix = [Decimal(0)] * (n + 2)
        for k in range(n, 0, -1):
            suffix[k] = CALC.add(suffix[k + 1], discount[k])
        level = self.fixed
        if level is None:
            level = self._level(self.amount, discount[0], suffix[1], n, level_mode)
        balance = self.amount
        rows: list[tuple[Decimal, Decimal]] = []
        for k, f in enumerate(self.fractions, start=1):
            exact = CALC.multiply(CALC.multiply(balance, self.rate), f)
            interest = self.currency.round(exact, self.rounding)
            if k == n:
                rows.append((balance, interest))
                break
            due = level
            if self.method is AmortizationMethod.ANNUITY:
                due = CALC.subtract(level, interest)
            paid = min(max(due, Decimal(0)), balance)
            rows.append((paid, interest))
            balance = CALC.subtract(balance, paid)
            if balance == 0:
                break
            if due < 0 and self.fixed is None:
                # The period's interest exceeded the installment (a long odd period, or a 31-day
                # month at a high rate over a long term); re-level the rest so the term holds.
                level = self._level(balance, discount[k], suffix[k + 1], n - k, level_mode)
        return rows

    def _level(
        self, balance: Decimal, disc: Decimal, tail: Decimal, periods: int, mode: str
    ) -> Decimal:
        """The level installment (annuity) or per-period principal over ``periods``."""
        if self.method is AmortizationMethod.EQUAL_PRINCIPAL or self.rate == 0:
            exact = CALC.divide(balance, Decimal(periods))
        else:
            exact = CALC.divide(CALC.multiply(balance, disc), tail)
        return self.currency.round(exact, mode)
