"""Payment allocation: split one repayment across what is due, following a product's waterfall.

The waterfall is a product setting stored in events as a string (``Waterfall.spec()``), so the
split of a historical repayment can be replayed exactly even if presets are later added.
Allocation never rounds: due items are already in minor units, so every line is exact and
``allocated + remainder == payment`` holds to the last digit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import ClassVar

from domain.errors import InvalidAmount, InvalidWaterfall
from domain.money import CALC, to_decimal


class Component(StrEnum):
    PENALTY = "penalty"
    FEES = "fees"
    INTEREST = "interest"
    PRINCIPAL = "principal"


_BY_INSTALLMENT = "by_installment"


@dataclass(frozen=True, slots=True)
class Waterfall:
    """Component-major by default (all penalties, then all fees …); ``by_installment`` instead
    clears each due date completely before touching the next one."""

    order: tuple[Component, ...] = (
        Component.PENALTY,
        Component.FEES,
        Component.INTEREST,
        Component.PRINCIPAL,
    )
    by_installment: bool = False

    PRESETS: ClassVar[dict[str, Waterfall]]

    def __post_init__(self) -> None:
        # A waterfall that skips a component would silently strand money as remainder.
        if len(self.order) != len(Component) or set(self.order) != set(Component):
            raise InvalidWaterfall(
                f"waterfall must list each of {', '.join(Component)} exactly once",
                field="waterfall",
                rule="each_component_once",
            )

    @classmethod
    def parse(cls, spec: str, *, field: str = "waterfall") -> Waterfall:
        """Accept a preset name or ``a,b,c,d``, optionally suffixed with ``:by_installment``."""
        text = spec.strip().lower() if isinstance(spec, str) else ""
        head, sep, suffix = text.partition(":")
        if sep and suffix.strip() != _BY_INSTALLMENT:
            raise InvalidWaterfall(
                f"unknown waterfall option {suffix!r}: the only option is ':{_BY_INSTALLMENT}'",
                field=field,
                rule="option",
            )
        head = head.strip()
        if head in cls.PRESETS:
            base = cls.PRESETS[head]
            return cls(base.order, base.by_installment or bool(sep))
        names = [part.strip() for part in head.split(",")]
        known = {c.value for c in Component}
        if len(names) != len(Component) or set(names) != known:
            raise InvalidWaterfall(
                f"waterfall {spec!r} must be one of {', '.join(sorted(cls.PRESETS))} or list"
                f" {', '.join(Component)} each exactly once, comma separated",
                field=field,
                rule="preset_or_components",
            )
        return cls(tuple(Component(n) for n in names), bool(sep))

    def spec(self) -> str:
        """The canonical stored form; a preset name where one matches, so events stay readable."""
        for name, preset in self.PRESETS.items():
            if preset == self:
                return name
        listed = ",".join(self.order)
        return f"{listed}:{_BY_INSTALLMENT}" if self.by_installment else listed


Waterfall.PRESETS = {
    "standard": Waterfall(),
    "interest_first": Waterfall(
        (Component.INTEREST, Component.PENALTY, Component.FEES, Component.PRINCIPAL)
    ),
    # Non-performing loans: recover capital before income.
    "principal_first": Waterfall(
        (Component.PRINCIPAL, Component.INTEREST, Component.PENALTY, Component.FEES)
    ),
    "by_installment": Waterfall(by_installment=True),
}


@dataclass(frozen=True, slots=True)
class DueItem:
    component: Component
    due_date: date
    amount: Decimal
    installment: int | None = None

    def __post_init__(self) -> None:
        # Zero is tolerated (a 0 % loan has zero interest lines) and simply receives nothing.
        if not self.amount.is_finite() or self.amount < 0:
            raise InvalidAmount(
                f"due {self.component} amount must be zero or more, got {self.amount}",
                field="amount",
                rule="non_negative",
            )


@dataclass(frozen=True, slots=True)
class AllocationLine:
    component: Component
    due_date: date
    amount: Decimal
    installment: int | None


@dataclass(frozen=True, slots=True)
class Allocation:
    lines: tuple[AllocationLine, ...]
    remainder: Decimal

    def _zero(self) -> Decimal:
        # Totals keep the payment's scale, so an untouched component reads "0.00", not "0".
        return CALC.subtract(self.remainder, self.remainder)

    def total(self, component: Component) -> Decimal:
        result = self._zero()
        for line in self.lines:
            if line.component == component:
                result = CALC.add(result, line.amount)
        return result

    @property
    def allocated(self) -> Decimal:
        result = self._zero()
        for line in self.lines:
            result = CALC.add(result, line.amount)
        return result

    def as_dict(self) -> dict[str, object]:
        data: dict[str, object] = {c.value: str(self.total(c)) for c in Component}
        data["remainder"] = str(self.remainder)
        data["lines"] = [
            {
                "component": line.component.value,
                "due_date": line.due_date.isoformat(),
                "amount": str(line.amount),
                "installment": line.installment,
            }
            for line in self.lines
        ]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Allocation:
        raw_lines = data.get("lines", [])
        if not isinstance(raw_lines, list):
            raise InvalidAmount("allocation lines must be a list", field="lines", rule="type")
        lines = []
        for raw in raw_lines:
            if not isinstance(raw, Mapping):
                raise InvalidAmount("allocation line must be a mapping", field="lines", rule="type")
            installment = raw.get("installment")
            lines.append(
                AllocationLine(
                    component=Component(str(raw["component"])),
                    due_date=date.fromisoformat(str(raw["due_date"])),
                    amount=to_decimal(str(raw["amount"])),
                    installment=int(installment) if installment is not None else None,
                )
            )
        remainder = to_decimal(str(data["remainder"]), field="remainder")
        return cls(tuple(lines), remainder)


def _sort_key(waterfall: Waterfall, position: int, item: DueItem) -> tuple[object, ...]:
    rank = waterfall.order.index(item.component)
    # Loan-level items (no installment) follow numbered ones on the same date; input order
    # (``position``) breaks any remaining tie so equal keys settle as given.
    installment = (item.installment is None, item.installment or 0)
    if waterfall.by_installment:
        return (item.due_date, rank, installment, position)
    return (rank, item.due_date, installment, position)


def allocate(
    payment: Decimal, items: Sequence[DueItem], waterfall: Waterfall = Waterfall()
) -> Allocation:
    """Pay items in waterfall order until the money runs out; the excess is left to the caller,
    who alone knows whether it prepays principal or is an overpayment held as a liability."""
    amount = to_decimal(payment, field="amount")
    if amount <= 0:
        raise InvalidAmount(
            f"payment must be greater than zero, got {payment}", field="amount", rule="positive"
        )
    ordered = sorted(enumerate(items), key=lambda pair: _sort_key(waterfall, *pair))
    left = amount
    lines: list[AllocationLine] = []
    for _, item in ordered:
        if left <= 0:
            break
        paid = min(left, item.amount)
        if paid > 0:
            lines.append(AllocationLine(item.component, item.due_date, paid, item.installment))
            left = CALC.subtract(left, paid)
    return Allocation(tuple(lines), left)
