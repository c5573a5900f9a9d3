"""Loan terms: the contract a loan is applied for, validated once, stored in ``Applied``.

Product settings (grace days, penalty markup, waterfall, prepayment option, rounding, rate cap)
are copied into the terms at application time, so replaying a loan never depends on today's
configuration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from functools import lru_cache
from typing import Any

from domain.allocation import Waterfall
from domain.daycount import DayCount
from domain.errors import InvalidAmount, InvalidRate, InvalidTerm, RateAboveCap, ValidationError
from domain.money import ROUNDING_MODES, Currency, to_decimal
from domain.schedule import AmortizationMethod


class PrepaymentOption(StrEnum):
    SHORTEN_TERM = "shorten_term"
    LOWER_INSTALLMENT = "lower_installment"


@dataclass(frozen=True, slots=True)
class ProductTerms:
    """Servicing rules a product imposes on every loan it books."""

    grace_days: int = 0
    penalty_markup: Decimal = Decimal("0.5")
    compound_penalty: bool = False
    waterfall: str = "standard"
    prepayment: PrepaymentOption = PrepaymentOption.SHORTEN_TERM
    allow_overpayment: bool = True
    rounding: str = ROUND_HALF_EVEN
    rate_cap: Decimal = Decimal("0.24")
    observation_days: int = 365

    def __post_init__(self) -> None:
        if self.grace_days < 0 or self.grace_days > 90:
            raise InvalidTerm(
                "grace_days must be between 0 and 90", field="grace_days", rule="range_0_90"
            )
        if self.penalty_markup < 0:
            raise InvalidRate(
                "penalty_markup must be zero or more", field="penalty_markup", rule="non_negative"
            )
        if self.rounding not in ROUNDING_MODES:
            raise ValidationError(
                f"unknown rounding mode {self.rounding!r}", field="rounding", rule="rounding_mode"
            )
        if self.rate_cap <= 0:
            raise InvalidRate(
                "rate_cap must be greater than zero", field="rate_cap", rule="positive"
            )
        if self.observation_days < 0:
            raise InvalidTerm(
                "observation_days must be zero or more",
                field="observation_days",
                rule="non_negative",
            )
        Waterfall.parse(self.waterfall)  # fail early on a bad spec

    @property
    def allocation_waterfall(self) -> Waterfall:
        return Waterfall.parse(self.waterfall)


@dataclass(frozen=True, slots=True)
class LoanTerms:
    principal: Decimal
    currency: str
    annual_rate: Decimal
    term: int
    method: AmortizationMethod
    day_count: DayCount
    product: ProductTerms = field(default_factory=ProductTerms)

    @classmethod
    def create(
        cls,
        *,
        principal: Decimal | str,
        currency: str,
        annual_rate: Decimal | str,
        term: int,
        method: str,
        day_count: str,
        product: ProductTerms | None = None,
    ) -> LoanTerms:
        """Validate raw input and build terms; every failure names its field and rule."""
        product = product or ProductTerms()
        cur = Currency.of(currency)
        amount = cur.check_amount(principal, field="principal")
        rate = to_decimal(annual_rate, field="annual_rate")
        check_rate(rate, product.rate_cap)
        if isinstance(term, bool) or not isinstance(term, int) or term < 1 or term > 600:
            raise InvalidTerm(
                f"term must be a whole number of months from 1 to 600, got {term}",
                field="term",
                rule="term_1_to_600",
            )
        return cls(
            principal=amount,
            currency=cur.code,
            annual_rate=rate,
            term=term,
            method=AmortizationMethod.parse(method),
            day_count=DayCount.parse(day_count),
            product=product,
        )

    @property
    def money_currency(self) -> Currency:
        return Currency.of(self.currency)

    def as_dict(self) -> dict[str, Any]:
        p = self.product
        return {
            "principal": str(self.principal),
            "currency": self.currency,
            "annual_rate": str(self.annual_rate),
            "term": self.term,
            "method": str(self.method),
            "day_count": str(self.day_count),
            "product": {
                "grace_days": p.grace_days,
                "penalty_markup": str(p.penalty_markup),
                "compound_penalty": p.compound_penalty,
                "waterfall": p.waterfall,
                "prepayment": str(p.prepayment),
                "allow_overpayment": p.allow_overpayment,
                "rounding": p.rounding,
                "rate_cap": str(p.rate_cap),
                "observation_days": p.observation_days,
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoanTerms:
        return cls(
            principal=Decimal(data["principal"]),
            currency=data["currency"],
            annual_rate=Decimal(data["annual_rate"]),
            term=int(data["term"]),
            method=AmortizationMethod(data["method"]),
            day_count=DayCount(data["day_count"]),
            product=_product_terms(tuple(data["product"].items())),
        )


@lru_cache(maxsize=1024)
def _product_terms(items: tuple[tuple[str, Any], ...]) -> ProductTerms:
    """A book has few products and every loan replays its terms: parse and validate each
    distinct product once (ProductTerms is immutable, so loans can share it)."""
    p = dict(items)
    return ProductTerms(
        grace_days=int(p["grace_days"]),
        penalty_markup=Decimal(p["penalty_markup"]),
        compound_penalty=bool(p["compound_penalty"]),
        waterfall=p["waterfall"],
        prepayment=PrepaymentOption(p["prepayment"]),
        allow_overpayment=bool(p["allow_overpayment"]),
        rounding=p["rounding"],
        rate_cap=Decimal(p["rate_cap"]),
        observation_days=int(p["observation_days"]),
    )


def check_rate(rate: Decimal, cap: Decimal, *, field: str = "annual_rate") -> None:
    if rate < 0:
        raise InvalidRate(
            f"{field} must be zero or more, got {rate}", field=field, rule="non_negative"
        )
    if rate > cap:
        raise RateAboveCap(
            f"{field} {rate} is above the maximum annual rate {cap} (rate cap)",
            field=field,
            rule="rate_cap",
        )


def check_positive(amount: Decimal, *, field: str) -> None:
    if amount <= 0:
        raise InvalidAmount(f"{field} must be greater than zero", field=field, rule="positive")
