"""Money: a Decimal amount that knows its ISO 4217 currency and minor units.

Amounts are built from strings or Decimals, never floats. Rounding happens only where a caller
names it, with an explicit rounding mode; arithmetic never relies on the ambient decimal context
(``CALC`` is the one context used for the full-precision steps such as day-count fractions).
"""

from __future__ import annotations

import decimal
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from domain.errors import CurrencyMismatch, InvalidAmount, TooManyDecimals, UnknownCurrency

#: The context for full-precision intermediate arithmetic (accruals, fractions, annuity factors).
CALC = decimal.Context(prec=34, rounding=ROUND_HALF_EVEN, Emax=999999, Emin=-999999)

#: The rounding modes a product may name (the ``decimal`` module's names).
ROUNDING_MODES = frozenset(
    {
        decimal.ROUND_HALF_EVEN,
        decimal.ROUND_HALF_UP,
        decimal.ROUND_HALF_DOWN,
        decimal.ROUND_UP,
        decimal.ROUND_DOWN,
        decimal.ROUND_CEILING,
        decimal.ROUND_FLOOR,
    }
)

# ISO 4217 code -> minor units, for the currencies a lender here is likely to book.
_MINOR_UNITS = {
    "CNY": 2,
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "HKD": 2,
    "MOP": 2,
    "TWD": 2,
    "SGD": 2,
    "AUD": 2,
    "CAD": 2,
    "CHF": 2,
    "NZD": 2,
    "SEK": 2,
    "NOK": 2,
    "DKK": 2,
    "INR": 2,
    "THB": 2,
    "MYR": 2,
    "PHP": 2,
    "IDR": 2,
    "RUB": 2,
    "BRL": 2,
    "MXN": 2,
    "ZAR": 2,
    "JPY": 0,
    "KRW": 0,
    "VND": 0,
    "CLP": 0,
    "ISK": 0,
    "BHD": 3,
    "KWD": 3,
    "OMR": 3,
    "JOD": 3,
    "TND": 3,
}


@dataclass(frozen=True, slots=True)
class Currency:
    code: str
    minor_units: int

    @classmethod
    def of(cls, code: str, *, field: str = "currency") -> Currency:
        normalized = code.strip().upper() if isinstance(code, str) else ""
        try:
            return cls(normalized, _MINOR_UNITS[normalized])
        except KeyError:
            raise UnknownCurrency(
                f"unknown currency {code!r}: must be an ISO 4217 code such as CNY, USD or JPY",
                field=field,
                rule="iso4217",
            ) from None

    @property
    def quantum(self) -> Decimal:
        """The smallest posted unit: 0.01 for CNY, 1 for JPY."""
        return Decimal(1).scaleb(-self.minor_units)

    @property
    def max_amount(self) -> Decimal:
        """The largest single amount the ledger accepts in this currency, whatever the settings.

        Every amount column is stored where it must round-trip exactly on both databases:
        SQLite keeps NUMERIC as an 8-byte float (15 significant digits exact), PostgreSQL as
        NUMERIC(20, 4). An amount below 10^(13 − minor units) has at most 13 significant
        digits, which leaves a factor of 100 for what accumulates from it (a loan's lifetime
        interest, penalty and payments) before a column could lose a cent: 10^11 CNY,
        10^13 JPY, 10^10 KWD. A product may set a lower maximum (``LEDGER_MAX_AMOUNTS``)."""
        return Decimal(10) ** (13 - self.minor_units)

    def round(self, value: Decimal, mode: str = ROUND_HALF_EVEN) -> Decimal:
        """Round a full-precision amount to this currency's minor units with ``mode``."""
        return value.quantize(self.quantum, rounding=mode, context=CALC)

    def check_amount(
        self,
        value: Decimal | str | int,
        *,
        field: str = "amount",
        allow_zero: bool = False,
        maximum: Decimal | None = None,
    ) -> Decimal:
        """Parse and validate an amount: finite, positive, ≤ minor units, ≤ ``maximum``
        (at most ``max_amount``)."""
        amount = to_decimal(value, field=field)
        if amount < 0 or (amount == 0 and not allow_zero):
            rule = "non_negative" if allow_zero else "positive"
            raise InvalidAmount(
                f"{field} must be {'zero or more' if allow_zero else 'greater than zero'},"
                f" got {value}",
                field=field,
                rule=rule,
            )
        limit = self.max_amount if maximum is None else min(maximum, self.max_amount)
        if amount > limit:
            raise InvalidAmount(
                f"{field} {value} is above the maximum amount {limit:,f} {self.code}",
                field=field,
                rule="max_amount",
            )
        exponent = amount.as_tuple().exponent
        assert isinstance(exponent, int)
        if -exponent > self.minor_units and amount != amount.quantize(self.quantum, context=CALC):
            raise TooManyDecimals(
                f"{field} {value} has more decimals than {self.code} allows ({self.minor_units})",
                field=field,
                rule="minor_units",
            )
        return self.round(amount)

    def __str__(self) -> str:
        return self.code


def in_minor_units(value: Decimal | float | int | str | None, currency: str) -> Decimal:
    """An amount read back from a table or a sum (four stored decimals; SQLite returns sums as
    floats) as the currency shows it: 0.01 for CNY, 1 for JPY, never ``-0.00``. A currency the
    ledger does not know keeps the value as read."""
    amount = value if isinstance(value, Decimal) else Decimal(str(value or 0))
    code = _MINOR_UNITS.get(currency)
    if code is None:
        return amount
    try:
        shown = amount.quantize(Decimal(1).scaleb(-code), rounding=ROUND_HALF_EVEN, context=CALC)
    except decimal.InvalidOperation:  # beyond any bound (an old store's bad event): as read
        return amount
    return abs(shown) if shown == 0 else shown


#: What an amount written as text may look like: digits, optionally a point and more digits;
#: a leading minus only so that a negative amount gets its own message.
PLAIN_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def parse_decimal_text(value: object, *, field: str = "amount") -> Decimal:
    """An amount or rate as it arrives at the edge (JSON, CLI option): a plain decimal string
    such as ``"1234.56"``. JSON numbers, exponents, whitespace and signs other than a leading
    minus are refused, with a message that says what is expected."""
    if isinstance(value, Decimal):
        return to_decimal(value, field=field)
    if isinstance(value, bool) or not isinstance(value, str):
        kind = {bool: "a boolean", int: "a JSON number", float: "a JSON number"}.get(
            type(value), f"a {type(value).__name__}"
        )
        rule = "no_float" if isinstance(value, float) else "decimal_string"
        raise InvalidAmount(
            f'{field} must be a decimal string such as "1234.56", not {kind} ({value!r})',
            field=field,
            rule=rule,
        )
    if PLAIN_DECIMAL.fullmatch(value) is None:
        raise InvalidAmount(
            f'{field} {value!r} is not a plain decimal string such as "1234.56" (digits and'
            " an optional decimal point; no exponent, spaces or thousands separators)",
            field=field,
            rule="decimal",
        )
    return Decimal(value)


def to_decimal(value: Decimal | str | int, *, field: str = "amount") -> Decimal:
    """Build a Decimal from a string, int or Decimal; floats and non-numbers are refused."""
    if isinstance(value, (bool, float)):
        raise InvalidAmount(
            f"{field} must be given as a decimal string, not a float", field=field, rule="no_float"
        )
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (decimal.InvalidOperation, ValueError):
        raise InvalidAmount(
            f"{field} {value!r} is not a decimal number", field=field, rule="decimal"
        ) from None
    if not amount.is_finite():
        raise InvalidAmount(f"{field} must be a finite number", field=field, rule="finite")
    return amount


@dataclass(frozen=True, slots=True)
class Money:
    amount: Decimal
    currency: Currency

    @classmethod
    def of(cls, amount: Decimal | str | int, currency: Currency | str) -> Money:
        cur = currency if isinstance(currency, Currency) else Currency.of(currency)
        return cls(cur.check_amount(amount, allow_zero=True), cur)

    @classmethod
    def zero(cls, currency: Currency) -> Money:
        return cls(currency.round(Decimal(0)), currency)

    def _check_same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(
                f"cannot combine {self.currency.code} with {other.currency.code}",
                field="currency",
                rule="same_currency",
            )

    def __add__(self, other: Money) -> Money:
        self._check_same(other)
        return Money(CALC.add(self.amount, other.amount), self.currency)

    def __sub__(self, other: Money) -> Money:
        self._check_same(other)
        return Money(CALC.subtract(self.amount, other.amount), self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._check_same(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._check_same(other)
        return self.amount <= other.amount

    def rounded(self, mode: str = ROUND_HALF_EVEN) -> Money:
        return Money(self.currency.round(self.amount, mode), self.currency)

    def is_zero(self) -> bool:
        return self.amount == 0

    def __str__(self) -> str:
        return f"{self.amount} {self.currency.code}"
