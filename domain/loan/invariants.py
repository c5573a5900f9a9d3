"""The domain's last word before a loan event is recorded.

Two kinds of check, both run before ``trigger_event``, so a command that fails one records
nothing:

- **Parts sum to the total** (``check_sum``, ``check_not_negative``, ``check_allocation``): an
  event's parts are not negative and add up to its total. Breaking one is a bug, never input:
  ``InvariantViolated`` (kind "failed") names the event and its parts.
- **Bounded balances** (``check_balance_limit``): an accumulated balance may not grow past
  ``Currency.max_amount``, the largest amount every table stores exactly. That is input:
  ``InvalidAmount``, rule ``balance_limit``.

End of day's once-a-day events (InterestAccrued, InstallmentFellDue) are checked inline by the
aggregate with a comparison or two; these helpers run once per command.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from domain.errors import InvalidAmount, InvariantViolated
from domain.loan.state import COMPONENTS
from domain.money import Currency
from domain.schedule import Installment

ZERO = Decimal(0)


def check_not_negative(event: str, parts: dict[str, Decimal]) -> None:
    for name, value in parts.items():
        if value < 0:
            raise InvariantViolated(
                f"{event}: {name} {value} is negative", field=name, rule="non_negative"
            )


def check_sum(event: str, total_name: str, total: Decimal, parts: dict[str, Decimal]) -> None:
    """``parts`` (named as in the event) must add up to the event's ``total``."""
    added = sum(parts.values(), ZERO)
    if added != total:
        listed = " + ".join(f"{name} {value}" for name, value in parts.items())
        raise InvariantViolated(
            f"{event}: {listed} = {added}, not {total_name} {total}",
            field=total_name,
            rule="parts_sum_to_total",
        )


def schedule_principal(schedule: list[Installment]) -> dict[str, Decimal]:
    """A schedule's principal as one named part, for ``check_sum``."""
    return {"schedule principal": sum((i.principal for i in schedule), ZERO)}


def check_allocation(
    event: str, amount: Decimal, allocation: dict[str, Any], rest: dict[str, Decimal]
) -> None:
    """A repayment's stored allocation: its lines add up to its per-component totals, its
    remainder is ``rest`` (accrued interest paid, prepaid principal, overpayment), and the
    components plus ``rest`` are the amount received; no part is negative."""
    by_component = dict.fromkeys(COMPONENTS, ZERO)
    for line in allocation["lines"]:
        value = Decimal(line["amount"])
        if value < 0:
            raise InvariantViolated(
                f"{event}: allocation line {line['component']} {value} is negative",
                field="allocation",
                rule="non_negative",
            )
        by_component[line["component"]] += value
    totals = {c: Decimal(allocation[c]) for c in COMPONENTS}
    for c in COMPONENTS:
        check_sum(event, f"allocation {c}", totals[c], {f"{c} lines": by_component[c]})
    check_not_negative(event, rest)
    check_sum(event, "allocation remainder", Decimal(allocation["remainder"]), rest)
    check_sum(event, "amount", amount, {f"allocated {c}": totals[c] for c in COMPONENTS} | rest)


def check_balance_limit(currency: Currency, balance: str, after: Decimal, field: str) -> None:
    """A loan's accumulated ``balance`` may not grow past the largest amount the ledger stores
    exactly (``Currency.max_amount``): the journal and the projections keep it in one
    column."""
    limit = currency.round(currency.max_amount)
    if after > limit:
        raise InvalidAmount(
            f"{balance} would be {after:,f} {currency.code}, above the largest balance a"
            f" loan may hold, {limit:,f} {currency.code}",
            field=field,
            rule="balance_limit",
        )
