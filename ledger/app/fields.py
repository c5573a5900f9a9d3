"""Strict field types for command schemas: what a value at the edge may look like.

Amounts and rates are plain decimal strings (``"1234.56"``: no JSON numbers, exponents or
spaces), integers are JSON integers (not ``true``, ``"12"`` or ``12.0``), dates ``YYYY-MM-DD``
strings, ids canonical UUIDs, currency codes ISO 4217 in capitals, identifiers and texts
bounded and printable (no control characters or terminal escapes). Each validator raises a
``domain.errors.ValidationError`` naming the field and the rule and saying what is expected.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

from pydantic import BeforeValidator, Field, Strict, ValidationInfo

from domain.errors import InvalidDate, UnknownCurrency, ValidationError
from domain.money import Currency, parse_decimal_text

MAX_DECIMAL_TEXT = 40  # characters of an amount or rate ("99999999999999.99" is 17)
UUID_TEXT = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
DATE_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
CURRENCY_TEXT = re.compile(r"[A-Z]{3}")
EXAMPLE_UUID = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"


def _name(info: ValidationInfo) -> str:
    return info.field_name or "value"


def shown(value: Any, limit: int = 60) -> str:
    """A value as JSON would write it (control characters escaped), cut to ``limit``."""
    try:
        text = json.dumps(value, ensure_ascii=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _decimal(value: Any, info: ValidationInfo) -> Decimal:
    field = _name(info)
    if isinstance(value, str) and len(value) > MAX_DECIMAL_TEXT:
        raise ValidationError(
            f"{field} is longer than {MAX_DECIMAL_TEXT} characters", field=field, rule="max_length"
        )
    return parse_decimal_text(value, field=field)


def _day(value: Any, info: ValidationInfo) -> date:
    field = _name(info)
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and DATE_TEXT.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise InvalidDate(
        f"{field} must be a date written YYYY-MM-DD, such as 2026-06-10; got {shown(value)}",
        field=field,
        rule="iso_date",
    )


def _uuid(value: Any, info: ValidationInfo) -> UUID:
    field = _name(info)
    if isinstance(value, UUID):
        return value
    if isinstance(value, str) and UUID_TEXT.fullmatch(value):
        return UUID(value)
    raise ValidationError(
        f"{field} must be a UUID string such as {EXAMPLE_UUID}, got {shown(value)}",
        field=field,
        rule="uuid",
    )


def _currency(value: Any, info: ValidationInfo) -> str:
    field = _name(info)
    if not isinstance(value, str) or not CURRENCY_TEXT.fullmatch(value):
        raise UnknownCurrency(
            f"{field} must be an ISO 4217 code in capital letters, such as"
            f" CNY, USD or JPY; got {shown(value)}",
            field=field,
            rule="iso4217",
        )
    return Currency.of(value, field=field).code


def _printable(value: Any, info: ValidationInfo, *, text: bool) -> Any:
    """Identifiers: printable characters only. Texts may also hold newlines and tabs.
    Control characters (NUL, terminal escapes) and invisible format characters are refused."""
    if isinstance(value, str):
        allowed = "\n\t" if text else ""
        bad = next((ch for ch in value if not ch.isprintable() and ch not in allowed), None)
        if bad is not None:
            field = _name(info)
            raise ValidationError(
                f"{field} contains the control or format character U+{ord(bad):04X};"
                f" {'text' if text else 'an identifier'} must be printable",
                field=field,
                rule="printable",
            )
        if not text and value != value.strip():
            field = _name(info)
            raise ValidationError(
                f"{field} {shown(value)} has leading or trailing spaces",
                field=field,
                rule="no_surrounding_spaces",
            )
    return value


def _identifier(value: Any, info: ValidationInfo) -> Any:
    return _printable(value, info, text=False)


def _text(value: Any, info: ValidationInfo) -> Any:
    return _printable(value, info, text=True)


Amount = Annotated[Decimal, BeforeValidator(_decimal)]
Rate = Annotated[Decimal, BeforeValidator(_decimal)]
Day = Annotated[date, BeforeValidator(_day)]
Id = Annotated[UUID, BeforeValidator(_uuid)]
CurrencyCode = Annotated[str, BeforeValidator(_currency)]
Int = Annotated[int, Strict()]
Bool = Annotated[bool, Strict()]


def Identifier(max_length: int, min_length: int = 1) -> Any:
    return Annotated[
        str,
        Strict(),
        Field(min_length=min_length, max_length=max_length),
        BeforeValidator(_identifier),
    ]


def Text(max_length: int = 2000) -> Any:
    return Annotated[
        str, Strict(), Field(min_length=1, max_length=max_length), BeforeValidator(_text)
    ]
