"""Portfolio summary over the balances and delinquency read models (a report, no table).

It reads only the summary tables those projections keep beside their per-loan rows
(``delinquency_summary``, ``balances_summary``, ``delinquency_roll_counts``): a few dozen rows
whatever the portfolio's size, so it answers in milliseconds over 100k loans.

The figures mean what the tests' oracle ``tests.portfolio_oracle.summarize`` computes from the
aggregates: active loans are counted by M-bucket, five-category and IFRS 9 stage with their
outstanding principal; the NPL ratio is substandard + doubtful + loss principal over the
outstanding principal of active loans.
Amounts are only ever added within one currency, except in the portfolio-wide NPL ratio, which
(as in ``summarize``) adds principal across currencies; ``npl_ratio_by_currency`` is the strict
one.

The roll-rate matrix compares each loan's state at two consecutive month ends: its M-bucket
while active, or ``closed`` / ``written_off``. It equals what ``delinquency_transitions`` says
(a loan's state at date M is its transition with ``business_date <= M < valid_until``); the
counts are kept incrementally so the report need not scan the history.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from domain.delinquency import DelinquencyPolicy, FiveCategory
from domain.loan import DEFAULT_POLICY
from ledger.tables import ledger_clock
from projections.balances import balances_summary
from projections.base import Report
from projections.delinquency import (
    TERMINAL,
    delinquency_roll_counts,
    delinquency_summary,
    previous_month_end,
)

ZERO = Decimal(0)
RATIO = Decimal("0.0001")
NPL = (FiveCategory.SUBSTANDARD.value, FiveCategory.DOUBTFUL.value, FiveCategory.LOSS.value)
COLUMNS = ["dimension", "class", "class_zh", "currency", "loans", "principal"]


def buckets(policy: DelinquencyPolicy = DEFAULT_POLICY) -> list[str]:
    return [f"M{i}" for i in range(len(policy.bucket_upper_bounds))] + [
        f"M{len(policy.bucket_upper_bounds)}+"]


def portfolio_report(conn: Connection, as_of: date | None = None, **_: Any) -> Report:
    """Rows: one per (dimension, class, currency). Totals: NPL ratios, loans by status,
    outstanding principal, write-offs, recoveries, overpayments and the roll-rate matrix."""
    classes = {
        "bucket": buckets(),
        "five_category": [c.value for c in FiveCategory],
        "ifrs9_stage": ["1", "2", "3"],
    }
    d = delinquency_summary.c
    grouped = conn.execute(
        select(d.bucket, d.five_category, d.ifrs9_stage, d.currency, d.loans,
               d.principal_outstanding).where(d.loans > 0)).all()
    cells: dict[tuple[str, str, str], list[Any]] = defaultdict(lambda: [0, ZERO])
    outstanding: dict[str, Decimal] = defaultdict(lambda: ZERO)
    npl: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for bucket, category, stage, currency, loans, principal in grouped:
        amount = _decimal(principal)
        outstanding[currency] += amount
        if category in NPL:
            npl[currency] += amount
        for dimension, value in (("bucket", bucket), ("five_category", category),
                                 ("ifrs9_stage", str(stage))):
            cell = cells[(dimension, value, currency)]
            cell[0] += loans
            cell[1] += amount
    rows = []
    for dimension, values in classes.items():
        for value in values:
            for currency in sorted(outstanding):
                loans, principal = cells.get((dimension, value, currency), (0, ZERO))
                rows.append({
                    "dimension": dimension, "class": value,
                    "class_zh": FiveCategory(value).chinese if dimension == "five_category"
                    else "",
                    "currency": currency, "loans": loans, "principal": principal})

    by_status: dict[str, int] = defaultdict(int)
    written_off: dict[str, Decimal] = defaultdict(lambda: ZERO)
    recovered: dict[str, Decimal] = defaultdict(lambda: ZERO)
    overpayments: dict[str, Decimal] = defaultdict(lambda: ZERO)
    b = balances_summary.c
    for status, currency, loans, w, r, o in conn.execute(
            select(b.status, b.currency, b.loans, b.written_off_principal, b.recovered,
                   b.overpayment).where(b.loans > 0)):
        by_status[status] += loans
        written_off[currency] += _decimal(w)
        recovered[currency] += _decimal(r)
        overpayments[currency] += _decimal(o)

    total = sum(outstanding.values(), ZERO)
    totals = {
        "npl_ratio": _ratio(sum(npl.values(), ZERO), total),
        "npl_ratio_by_currency": {c: _ratio(npl[c], outstanding[c]) for c in sorted(outstanding)},
        "loans_by_status": dict(sorted(by_status.items())),
        "outstanding_principal": dict(sorted(outstanding.items())),
        "written_off_principal": _nonzero(written_off),
        "recovered": _nonzero(recovered),
        "overpayments": _nonzero(overpayments),
        "roll_rates": roll_rates(conn, as_of or _business_date(conn)),
    }
    return Report(title="Portfolio", columns=COLUMNS, rows=rows,
                  sources=("balances", "delinquency"), totals=totals)


def roll_rates(conn: Connection, as_of: date) -> dict[str, Any]:
    """Share of loans in each bucket at one month end that are in each state at the next,
    for the latest month end before ``as_of`` (whose moves are all counted once end of day
    has closed the day after it)."""
    to_end = previous_month_end(as_of)
    from_end = previous_month_end(to_end)
    r = delinquency_roll_counts.c
    counts = conn.execute(select(r.from_state, r.to_state, r.loans)
                          .where(r.month_end == to_end, r.loans > 0)).all()
    loans: dict[str, dict[str, int]] = {}
    for from_state, to_state, n in counts:
        loans.setdefault(from_state, {})[to_state] = n
    order = {s: i for i, s in enumerate([*buckets(), *TERMINAL])}
    loans = {f: dict(sorted(loans[f].items(), key=lambda kv: order.get(kv[0], 99)))
             for f in sorted(loans, key=lambda s: order.get(s, 99))}
    return {
        "from_month_end": from_end.isoformat(), "to_month_end": to_end.isoformat(),
        "states": list(order),
        "from_loans": {f: sum(row.values()) for f, row in loans.items()},
        "loans": loans,
        "shares": {f: {to: _ratio(Decimal(n), Decimal(sum(row.values())))
                       for to, n in row.items()} for f, row in loans.items()},
    }


def _business_date(conn: Connection) -> date:
    closed = conn.execute(select(ledger_clock.c.closed_through)).scalar()
    return closed if closed is not None else date.today()


def _decimal(value: Any) -> Decimal:
    """SUM over SQLite comes back as float; amounts keep the tables' four decimals."""
    return Decimal(str(value or 0)).quantize(RATIO)


def _ratio(part: Decimal, whole: Decimal) -> Decimal:
    return (part / whole).quantize(RATIO) if whole else ZERO


def _nonzero(values: dict[str, Decimal]) -> dict[str, Decimal]:
    return {k: v for k, v in sorted(values.items()) if v}

