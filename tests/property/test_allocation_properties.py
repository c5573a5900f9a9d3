"""Invariants of allocation and classification that must hold for any input."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.allocation import AllocationLine, Component, DueItem, Waterfall, allocate
from domain.delinquency import FiveCategory, classify

FAST = settings(max_examples=200, deadline=None)

cents = st.integers(min_value=0, max_value=1_000_000).map(lambda n: Decimal(n).scaleb(-2))
positive_cents = st.integers(min_value=1, max_value=2_000_000).map(lambda n: Decimal(n).scaleb(-2))
items = st.lists(
    st.builds(
        DueItem,
        component=st.sampled_from(Component),
        due_date=st.integers(0, 400).map(lambda d: date(2024, 1, 1) + timedelta(days=d)),
        amount=cents,
        installment=st.one_of(st.none(), st.integers(1, 36)),
    ),
    max_size=12,
)
waterfalls = st.builds(
    Waterfall,
    order=st.permutations(list(Component)).map(tuple),
    by_installment=st.booleans(),
)


@FAST
@given(payment=positive_cents, due=items, waterfall=waterfalls)
def test_allocation_sums_to_the_payment(
    payment: Decimal, due: list[DueItem], waterfall: Waterfall
) -> None:
    result = allocate(payment, due, waterfall)
    assert result.allocated + result.remainder == payment
    assert result.remainder >= 0
    assert all(line.amount > 0 for line in result.lines)
    # Money beyond what is due is returned, never swallowed.
    total_due = sum((item.amount for item in due), Decimal(0))
    assert result.remainder == max(Decimal(0), payment - total_due)


@FAST
@given(payment=positive_cents, due=items, waterfall=waterfalls)
def test_no_item_is_overpaid(payment: Decimal, due: list[DueItem], waterfall: Waterfall) -> None:
    result = allocate(payment, due, waterfall)

    def key(x: DueItem | AllocationLine) -> tuple[object, ...]:
        return (x.component, x.due_date, x.installment)

    owed: dict[tuple[object, ...], Decimal] = {}
    for item in due:
        owed[key(item)] = owed.get(key(item), Decimal(0)) + item.amount
    for line in result.lines:
        owed[key(line)] -= line.amount
    assert all(left >= 0 for left in owed.values())


@FAST
@given(payment=positive_cents, due=items, order=st.permutations(list(Component)))
def test_waterfall_respects_component_order(
    payment: Decimal, due: list[DueItem], order: list[Component]
) -> None:
    result = allocate(payment, due, Waterfall(tuple(order)))
    for later_rank, later in enumerate(order):
        if result.total(later) == 0:
            continue
        # A later component was touched, so every earlier one was settled in full.
        for earlier in order[:later_rank]:
            owed = sum((i.amount for i in due if i.component == earlier), Decimal(0))
            assert result.total(earlier) == owed


SEVERITY = list(FiveCategory)


def _rank(dpd: int, restructured: bool, written_off: bool) -> tuple[int, int, int]:
    c = classify(dpd, restructured_in_observation=restructured, written_off=written_off)
    bucket_index = int(c.bucket.removeprefix("M").removesuffix("+"))
    return bucket_index, SEVERITY.index(c.category), c.stage


@FAST
@given(
    a=st.integers(-30, 2_000),
    b=st.integers(-30, 2_000),
    restructured=st.booleans(),
    written_off=st.booleans(),
)
def test_classification_is_monotonic_in_dpd(
    a: int, b: int, restructured: bool, written_off: bool
) -> None:
    low, high = sorted((a, b))
    earlier = _rank(low, restructured, written_off)
    later = _rank(high, restructured, written_off)
    assert all(x <= y for x, y in zip(earlier, later, strict=True))
