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

Every row also carries its ``share`` of the currency's outstanding principal, and the rows of
dimension ``npl`` (class ``npl``: substandard + doubtful + loss) carry the NPL ratio per
currency, so a CSV export holds it too. Amounts are in each currency's minor units.

The roll-rate matrix compares each loan's state at two consecutive month ends: its M-bucket
while active, or ``closed`` / ``written_off``. It covers the last complete month: the month
ending on the last closed business day if that is a month end, else the month before. It
equals what ``delinquency_transitions`` says (a loan's state at date M is its transition with
``business_date <= M < valid_until``); the counts are kept incrementally so the report need not
scan the history. A month end's counts are complete once each loan's first event after it is
projected; right after the month-end close (the clock standing on the month end) the loans not
counted yet have had no event since, so their state at the month end is their state now, and
the report adds them from ``loan_delinquency``.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, func, select

from domain.delinquency import DEFAULT_POLICY, DelinquencyPolicy, FiveCategory
from domain.money import in_minor_units
from projections.balances import balances_summary
from projections.base import Report
from projections.delinquency import (
    TERMINAL,
    delinquency_roll_counts,
    delinquency_summary,
    loan_delinquency,
    month_end,
    previous_month_end,
)

ZERO = Decimal(0)
RATIO = Decimal("0.0001")
NPL = (FiveCategory.SUBSTANDARD.value, FiveCategory.DOUBTFUL.value, FiveCategory.LOSS.value)
COLUMNS = ["dimension", "class", "class_zh", "currency", "loans", "principal", "share"]


def buckets(policy: DelinquencyPolicy = DEFAULT_POLICY) -> list[str]:
    return [f"M{i}" for i in range(len(policy.bucket_upper_bounds))] + [
        f"M{len(policy.bucket_upper_bounds)}+"
    ]


def portfolio_report(conn: Connection, *, closed_through: date, **_: Any) -> Report:
    """Rows: one per (dimension, class, currency). Totals: NPL ratios, loans by status,
    outstanding principal, write-offs, recoveries, overpayments and the roll-rate matrix of
    the last complete month on ``closed_through``, the last closed business day
    (``Ledger.report`` passes it: the day before the open business day)."""
    classes = {
        "bucket": buckets(),
        "five_category": [c.value for c in FiveCategory],
        "ifrs9_stage": ["1", "2", "3"],
    }
    d = delinquency_summary.c
    grouped = conn.execute(
        select(
            d.bucket, d.five_category, d.ifrs9_stage, d.currency, d.loans, d.principal_outstanding
        ).where(d.loans > 0)
    ).all()
    cells: dict[tuple[str, str, str], list[Any]] = defaultdict(lambda: [0, ZERO])
    outstanding: dict[str, Decimal] = defaultdict(lambda: ZERO)
    npl: dict[str, Decimal] = defaultdict(lambda: ZERO)
    npl_loans: dict[str, int] = defaultdict(int)
    for bucket, category, stage, currency, loans, principal in grouped:
        amount = in_minor_units(principal, currency)
        outstanding[currency] += amount
        if category in NPL:
            npl[currency] += amount
            npl_loans[currency] += loans
        for dimension, value in (
            ("bucket", bucket),
            ("five_category", category),
            ("ifrs9_stage", str(stage)),
        ):
            cell = cells[(dimension, value, currency)]
            cell[0] += loans
            cell[1] += amount
    rows = []
    for dimension, values in classes.items():
        for value in values:
            for currency in sorted(outstanding):
                loans, principal = cells.get(
                    (dimension, value, currency), (0, in_minor_units(0, currency))
                )
                rows.append(
                    {
                        "dimension": dimension,
                        "class": value,
                        "class_zh": FiveCategory(value).chinese
                        if dimension == "five_category"
                        else "",
                        "currency": currency,
                        "loans": loans,
                        "principal": principal,
                        "share": _ratio(principal, outstanding[currency]),
                    }
                )
    for currency in sorted(outstanding):
        rows.append(
            {
                "dimension": "npl",
                "class": "npl",
                "class_zh": "不良",  # NPL
                "currency": currency,
                "loans": npl_loans[currency],
                "principal": npl[currency],
                "share": _ratio(npl[currency], outstanding[currency]),
            }
        )

    by_status: dict[str, int] = defaultdict(int)
    written_off: dict[str, Decimal] = defaultdict(lambda: ZERO)
    recovered: dict[str, Decimal] = defaultdict(lambda: ZERO)
    overpayments: dict[str, Decimal] = defaultdict(lambda: ZERO)
    b = balances_summary.c
    for status, currency, loans, w, r, o in conn.execute(
        select(
            b.status, b.currency, b.loans, b.written_off_principal, b.recovered, b.overpayment
        ).where(b.loans > 0)
    ):
        by_status[status] += loans
        written_off[currency] += in_minor_units(w, currency)
        recovered[currency] += in_minor_units(r, currency)
        overpayments[currency] += in_minor_units(o, currency)

    total = sum(outstanding.values(), ZERO)
    totals = {
        "npl_ratio": _ratio(sum(npl.values(), ZERO), total),
        "npl_ratio_by_currency": {c: _ratio(npl[c], outstanding[c]) for c in sorted(outstanding)},
        "loans_by_status": dict(sorted(by_status.items())),
        "outstanding_principal": dict(sorted(outstanding.items())),
        "written_off_principal": _nonzero(written_off),
        "recovered": _nonzero(recovered),
        "overpayments": _nonzero(overpayments),
        "roll_rates": roll_rates(conn, closed_through),
    }
    return Report(
        title="Portfolio",
        columns=COLUMNS,
        rows=rows,
        sources=("balances", "delinquency"),
        totals=totals,
    )


def roll_rates(conn: Connection, closed_through: date) -> dict[str, Any]:
    """Share (and count) of loans in each state at one month end that are in each state at
    the next, for the last complete month on ``closed_through`` (the last closed business
    day): the month ending that day if it is a month end, else the month before."""
    to_end = (
        closed_through
        if closed_through == month_end(closed_through)
        else previous_month_end(closed_through)
    )
    from_end = previous_month_end(to_end)
    r = delinquency_roll_counts.c
    counts = [
        tuple(x)
        for x in conn.execute(
            select(r.from_state, r.to_state, r.loans).where(r.month_end == to_end, r.loans > 0)
        )
    ]
    if to_end == closed_through:
        # Right after the month-end close: loans without an event since are not counted yet.
        d = loan_delinquency.c
        counts += [
            tuple(x)
            for x in conn.execute(
                select(d.rolled_state, d.roll_state, func.count())
                .where(
                    d.rolled_through == from_end,
                    d.rolled_state.is_not(None),
                    d.roll_state.is_not(None),
                )
                .group_by(d.rolled_state, d.roll_state)
            )
        ]
    loans: dict[str, dict[str, int]] = {}
    for from_state, to_state, n in counts:
        row = loans.setdefault(from_state, {})
        row[to_state] = row.get(to_state, 0) + int(n)
    order = {s: i for i, s in enumerate([*buckets(), *TERMINAL])}
    loans = {
        f: dict(sorted(loans[f].items(), key=lambda kv: order.get(kv[0], 99)))
        for f in sorted(loans, key=lambda s: order.get(s, 99))
    }
    return {
        "from_month_end": from_end.isoformat(),
        "to_month_end": to_end.isoformat(),
        "states": list(order),
        "from_loans": {f: sum(row.values()) for f, row in loans.items()},
        "loans": loans,
        "shares": {
            f: {to: _ratio(Decimal(n), Decimal(sum(row.values()))) for to, n in row.items()}
            for f, row in loans.items()
        },
    }


def _ratio(part: Decimal, whole: Decimal) -> Decimal:
    return (part / whole).quantize(RATIO) if whole else ZERO


def _nonzero(values: dict[str, Decimal]) -> dict[str, Decimal]:
    return {k: v for k, v in sorted(values.items()) if v}
