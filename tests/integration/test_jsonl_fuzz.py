"""Arbitrary JSON through the JSONL door (``ledger submit``), on SQLite and PostgreSQL.

Hypothesis writes batches of lines for every command type: plausible commands, commands with
any field replaced by arbitrary JSON (numbers, exponents, booleans, nested objects, control
characters, huge values), missing or unknown fields, and lines that are not JSON at all; now and
then a business day is closed. The invariant: each line either fails with a ``LedgerError``
that names a field and a rule and records nothing (no event, no command-log row), or records
events whose parts sum to their totals. After every batch, every projection catches up and the
trial balance is zero.
"""

from __future__ import annotations

import io
import json
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, inspect, select, text

from domain.allocation import Allocation, Component
from domain.loan import Loan
from domain.money import Currency
from ledger.app.commands import BY_TYPE
from ledger.bootstrap import build_ledger
from ledger.persistence.tables import command_log, events
from ledger.service import Ledger
from ledger.settings import Settings
from projections.journal import trial_balance_report
from tests.conftest import open_loan

# --------------------------------------------------------------------- strategies
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
GOOD_AMOUNTS = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("20000"), places=2).map(
    lambda d: format(d, "f")
)
TEXT = st.one_of(
    st.sampled_from(["ok", "borrower asked", "展期", ""]), st.text(min_size=0, max_size=20)
)
#: Values a well-behaved integration sends (refusals then come from the loan's state).
GOOD: dict[str, st.SearchStrategy[Any]] = {
    "amount": GOOD_AMOUNTS,
    "principal": GOOD_AMOUNTS,
    "annual_rate": st.sampled_from(["0.12", "0.05", "0.2399"]),
    "new_annual_rate": st.sampled_from(["0.10", "0.06"]),
    "penalty_markup": st.sampled_from(["0.5", "0.3"]),
    "currency": st.just("CNY"),
    "term": st.integers(min_value=1, max_value=36),
    "extend_months": st.integers(min_value=1, max_value=12),
    "new_term": st.integers(min_value=1, max_value=36),
    "grace_days": st.integers(min_value=0, max_value=5),
    "method": st.sampled_from(["annuity", "equal_principal", "等额本金"]),
    "day_count": st.sampled_from(["ACT/365F", "30/360", "ACT/ACT ISDA", "ACT/360"]),
    "waterfall": st.sampled_from(["standard", "principal_first", "by_installment"]),
    "prepayment": st.sampled_from(["shorten_term", "lower_installment"]),
    "capitalize_arrears": st.booleans(),
    "category": st.sampled_from(["billing", "fees", "other"]),
    "borrower_id": st.sampled_from(["B1", "B2", "C-1001"]),
    "reference": st.sampled_from(["", "ref-1", "银行流水 42"]),
    "reason": st.sampled_from(["ok", "borrower asked"]),
    "resolution": st.just("explained"),
    "description": st.just("charged twice"),
    "handler": st.just("agent-1"),
}
#: What a careless or hostile sender adds.
BAD_AMOUNTS = st.sampled_from(
    [
        "0",
        "-5.00",
        "1e30",
        "1E+2",
        "100000000000000000",
        "99999999999.99",
        "1.001",
        " 1.00 ",
        "1,000.00",
        "NaN",
        "Infinity",
        100,
        0.5,
        True,
    ]
)
BAD: dict[str, st.SearchStrategy[Any]] = {
    "amount": BAD_AMOUNTS,
    "principal": BAD_AMOUNTS,
    "annual_rate": st.sampled_from(["0.3", "-0.1", "1e-1", 0.12]),
    "currency": st.sampled_from(["JPY", "USD", "cny", "XYZ", ""]),
    "term": st.sampled_from([0, -2, 700, True, "12", 12.0]),
    "borrower_id": st.sampled_from(["", "B\x00", "B\x1b[31m", "x" * 70, " B1"]),
    "first_due": st.sampled_from(["2026-01-05", "2030-01-01", "20260210"]),
    "kind": st.sampled_from(["nope", "", 3]),
}
RESTRUCTURE_KINDS = st.sampled_from(
    ["extension", "reamortization", "rate_change", "capitalization"]
)


@st.composite
def lines(draw: st.DrawFn, loans: list[str], complaints: list[str], open_day: date) -> str:
    """One JSONL line: mostly a command of a random type with plausible or arbitrary fields."""
    if draw(st.integers(0, 30)) == 0:
        return draw(
            st.sampled_from(
                [
                    "[1, 2]",
                    "{not json",
                    "",
                    "null",
                    '"text"',
                    '{"type": "receive_repayment", "amount": "1", "amount": "2"}',
                ]
            )
        )
    kind = draw(st.sampled_from(sorted(BY_TYPE)))
    model = BY_TYPE[kind]
    command: dict[str, Any] = {"type": kind, "idempotency_key": f"fuzz-{draw(st.uuids())}"}
    # Half the commands are plausible throughout; in the others each field may be missing,
    # badly formed, or arbitrary JSON.
    mangled = draw(st.booleans())
    for name, info in model.model_fields.items():
        if name in ("type", "idempotency_key"):
            continue
        choice = draw(st.integers(0, 5)) if mangled else 5
        if choice == 0:
            continue  # missing
        if choice == 1:
            command[name] = draw(JSON)  # anything at all
            continue
        if choice == 2:
            command[name] = draw(BAD.get(name, TEXT))
            continue
        if name == "business_date" or (
            not info.is_required() and name != "loan_id" and draw(st.booleans())
        ):
            continue  # the open business day / the product default
        if name == "loan_id":
            if kind == "apply_for_loan":
                continue
            command[name] = draw(st.sampled_from([*loans, *loans, str(draw(st.uuids()))]))
        elif name == "complaint_id":
            if kind == "file_complaint":
                continue
            command[name] = draw(st.sampled_from([*complaints, str(draw(st.uuids()))]))
        elif name == "kind":
            command[name] = draw(
                RESTRUCTURE_KINDS if kind == "restructure_loan" else st.just("late_fee")
            )
        elif name == "first_due":
            command[name] = (open_day + timedelta(days=30)).isoformat()
        elif name in GOOD:
            command[name] = draw(GOOD[name])
        else:
            command[name] = draw(JSON)
    if draw(st.integers(0, 15)) == 0:
        command[draw(st.text(min_size=1, max_size=6))] = draw(JSON)
    return json.dumps(command, ensure_ascii=draw(st.booleans()))


# ----------------------------------------------------------------------- checks
def assert_parts_sum(event: Any) -> None:
    """Every money event's parts add up to its total, and nothing is negative or unbounded."""
    for value in vars(event).values():
        if isinstance(value, Decimal):
            assert value.is_finite() and abs(value) < Currency.of("JPY").max_amount * 100
    if isinstance(event, Loan.RepaymentReceived):
        allocation = Allocation.from_dict(event.allocation)
        for component in Component:
            assert Decimal(event.allocation[component.value]) == allocation.total(component)
        assert allocation.remainder == (
            event.accrued_interest_paid + event.prepaid_principal + event.overpayment
        )
        assert allocation.allocated + allocation.remainder == event.amount
        assert min(event.accrued_interest_paid, event.prepaid_principal, event.overpayment) >= 0
    elif isinstance(event, Loan.Restructured):
        assert event.capitalized == (
            event.capitalized_interest + event.capitalized_penalty + event.capitalized_fees
        )
        assert (
            sum(Decimal(i["principal"]) for i in event.new_schedule) == event.reamortized_principal
        )
    elif isinstance(event, Loan.WrittenOff):
        assert 0 <= event.principal_due <= event.principal
        assert min(event.interest, event.accrued_interest, event.penalty, event.fees) >= 0


def counts(app: Ledger) -> tuple[int, int, int]:
    with app.engine.connect() as conn:
        head = conn.execute(select(func.max(events.c.id))).scalar() or 0
        n_events = conn.execute(select(func.count()).select_from(events)).scalar_one()
        n_commands = conn.execute(select(func.count()).select_from(command_log)).scalar_one()
    return int(head), int(n_events), int(n_commands)


LOANS = (
    "a0000000-0000-4000-8000-000000000001",
    "a0000000-0000-4000-8000-000000000002",
    "a0000000-0000-4000-8000-000000000003",
)


class Book:
    """Each example's ledger, from the same start: three active loans, closed through 01-20."""

    def __init__(self, app: Ledger) -> None:
        self.app = app
        for loan_id, principal in zip(LOANS, ("100000", "3000", "50000"), strict=True):
            open_loan(app, borrower_id=f"B-{principal}", principal=principal, loan_id=loan_id)
        app.close_business_days(date(2026, 1, 20))
        self.loans = list(LOANS)
        self.complaints: list[str] = []


def emptied(engine: Any) -> None:
    """Every table of the database emptied (a fresh start for the next example)."""
    names = [t for t in inspect(engine).get_table_names() if t != "alembic_version"]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(
                text("TRUNCATE " + ", ".join(f'"{t}"' for t in names) + " RESTART IDENTITY")
            )
        else:
            for name in names:
                conn.execute(text(f'DELETE FROM "{name}"'))


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_any_json_fails_cleanly_or_records_events_whose_parts_sum(
    database_url: str, data: st.DataObject
) -> None:
    ledger = build_ledger(Settings(database_url=database_url))
    try:
        emptied(ledger.engine)
        ledger.close()
        ledger = build_ledger(Settings(database_url=database_url))  # nothing cached from before
        fuzz(Book(ledger), data)
    finally:
        ledger.close()


def fuzz(book: Book, data: st.DataObject) -> None:
    app = book.app
    batch = data.draw(
        st.lists(lines(book.loans, book.complaints, app.business_date()), min_size=1, max_size=8)
    )

    for line in batch:
        before = counts(app)
        output = io.StringIO()
        app.submit(iter([(1, line)]), output)
        after = counts(app)
        if not line.strip():
            assert after == before
            continue
        result = json.loads(output.getvalue())
        if not result["ok"]:
            # a refusal names a field and a rule, and changes nothing
            assert result["rule"] and result["message"], result
            assert result["field"] or result["rule"] == "internal", result
            assert result["rule"] != "internal", result  # never a bug
            assert after == before, (line, result)
            continue
        # what was recorded adds up
        assert after[2] in (before[2], before[2] + 1)
        for stored in app.app.recorder.select_notifications(before[0] + 1, limit=10_000):
            assert_parts_sum(app.app.mapper.to_domain_event(stored))
        if result["command"] == "file_complaint":
            book.complaints.append(result["aggregate_id"])
        if result["command"] == "apply_for_loan":
            book.loans.append(result["aggregate_id"])
    if data.draw(st.integers(0, 3)) == 0:  # now and then a business day ends
        app.close_business_days(app.business_date())

    # Every projection catches up and the trial balance is zero.
    app.catch_up()
    with app.engine.connect() as conn:
        assert trial_balance_report(conn).totals["balanced"] is True
    assert all(UUID(x) for x in book.loans)
