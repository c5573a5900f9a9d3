"""Reports as people read them in a terminal: tables that fit, totals as sentences.

Reports (``projections.*_report``) return rows and totals as data, amounts already in their
currency's minor units; this module only lays them out: which columns a narrow table keeps,
one table per currency where amounts of several currencies would otherwise sit in one column,
totals as ``key value`` lines rather than Python or JSON dumps, and each source projection's
freshness.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

from ledger.cli.render import Column, cell

Tables = Iterator[tuple[str, list[Column], list[list[str]]]]


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def columns_for(
    names: Sequence[str], rows: Sequence[dict[str, Any]], priority: Sequence[str] = ()
) -> list[Column]:
    """Columns for report rows: numbers right-aligned and never wrapped, values without
    spaces (ids, dates, codes) never wrapped, text wrapping; ``priority`` first, then the
    report's own order (which lists the important columns first)."""
    columns = []
    for index, name in enumerate(names):
        values = [r.get(name) for r in rows]
        numeric = any(_numeric(v) for v in values)
        keep = not numeric and all(" " not in cell(v) for v in values)
        rank = priority.index(name) if name in priority else len(priority) + index
        columns.append(Column(name, numeric=numeric, keep=keep, priority=rank))
    return columns


def table(result: Any, priority: Sequence[str] = ()) -> tuple[list[Column], list[list[str]]]:
    columns = columns_for(result.columns, result.rows, priority)
    return columns, [[cell(r.get(c.name)) for c in columns] for r in result.rows]


def per_currency_tables(result: Any) -> Tables:
    """One table per currency (the trial balance): a column never mixes currencies."""
    names = [n for n in result.columns if n != "currency"]
    by_currency: dict[str, list[dict[str, Any]]] = {}
    for row in result.rows:
        by_currency.setdefault(row["currency"], []).append(row)
    for currency, rows in by_currency.items():
        columns = columns_for(names, rows)
        yield (
            f"{result.title} ({currency})",
            columns,
            [[cell(r.get(c.name)) for c in columns] for r in rows],
        )


PORTFOLIO_TITLES = {
    "bucket": "M-buckets",
    "five_category": "Five-category",
    "ifrs9_stage": "IFRS 9 stage",
    "npl": "NPL (substandard + doubtful + loss)",
}


def portfolio_tables(result: Any) -> Tables:
    """One table per classification (class, currency, loans, principal, share), then the
    roll-rate matrix with each share beside its count of loans."""
    columns = [
        Column("class", keep=True),
        Column("currency", keep=True),
        Column("loans", numeric=True),
        Column("principal", numeric=True),
        Column("share", numeric=True),
    ]
    for dimension, title in PORTFOLIO_TITLES.items():
        rows = [r for r in result.rows if r["dimension"] == dimension]
        if not rows:
            continue
        yield (
            title,
            columns,
            [
                [
                    _class_label(r),
                    r["currency"],
                    str(r["loans"]),
                    cell(r["principal"]),
                    _percent(r["share"]),
                ]
                for r in rows
            ],
        )
    roll = result.totals.get("roll_rates") or {}
    if roll.get("loans"):
        states = [
            s
            for s in roll["states"]
            if s in roll["loans"] or any(s in row for row in roll["loans"].values())
        ]
        header = [
            Column("from \\ to", keep=True),
            *(Column(s, numeric=True) for s in states),
            Column("loans", numeric=True),
        ]
        rows = []
        for origin, counts in roll["loans"].items():
            shares = roll["shares"][origin]
            rows.append(
                [
                    origin,
                    *(
                        f"{_percent(shares[s])} ({counts[s]})" if s in counts else ""
                        for s in states
                    ),
                    str(sum(counts.values())),
                ]
            )
        yield (f"roll rates {roll['from_month_end']} → {roll['to_month_end']}", header, rows)


def _class_label(row: dict[str, Any]) -> str:
    if row["dimension"] == "ifrs9_stage":
        return f"stage {row['class']}"
    if row["dimension"] == "npl":
        return "不良 npl"
    return f"{row.get('class_zh') or ''} {row['class']}".strip()


def _percent(value: Any) -> str:
    return f"{Decimal(str(value)):.2%}"


def _pairs(values: dict[str, Any]) -> str:
    return ", ".join(f"{k} {cell(v)}" for k, v in values.items()) or "none"


def totals_lines(name: str, result: Any) -> list[str]:
    """The report's totals as a few readable lines."""
    totals = result.totals
    if name == "balances":
        lines = []
        for currency, t in totals.get("by_currency", {}).items():
            lines.append(
                f"{currency}: {t['loans']} loans; principal outstanding"
                f" {cell(t['principal_outstanding'])} (overdue {cell(t['principal_overdue'])});"
                f" interest accrued {cell(t['interest_accrued'])}, overdue"
                f" {cell(t['interest_overdue'])}; penalty {cell(t['penalty_outstanding'])};"
                f" fees {cell(t['fees_outstanding'])}; overpayments {cell(t['overpayment'])}"
            )
        return lines
    if name == "delinquency":
        return [f"{totals['loans']} loans; by bucket: {_pairs(totals['by_bucket'])}"]
    if name == "complaints":
        return [
            f"business date {cell(totals['business_date'])}: {totals['complaints']} complaints,"
            f" {totals['open']} open, {totals['resolved']} resolved",
            f"acknowledgement SLA breaches {totals['ack_sla_breaches']} (of which open and"
            f" overdue {totals['ack_sla_overdue_open']}); resolution SLA breaches"
            f" {totals['resolve_sla_breaches']} (open and overdue"
            f" {totals['resolve_sla_overdue_open']})",
            f"average days to acknowledge {cell(totals['avg_days_to_acknowledge']) or 'n/a'},"
            f" to resolve {cell(totals['avg_days_to_resolve']) or 'n/a'}",
        ]
    if name == "trial-balance":
        lines = [
            f"{currency}: debits {cell(t['debit_total'])}, credits"
            f" {cell(t['credit_total'])}, difference {cell(t['difference'])}"
            for currency, t in totals.get("by_currency", {}).items()
        ]
        lines.append(
            "balanced: " + ("yes" if totals.get("balanced") else "NO — debits and credits differ")
        )
        return lines
    if name == "portfolio":
        by_currency = totals.get("npl_ratio_by_currency") or {}
        lines = [
            f"loans by status: {_pairs(totals.get('loans_by_status') or {})}",
            "outstanding principal: "
            + (
                ", ".join(
                    f"{cell(v)} {k}" for k, v in (totals.get("outstanding_principal") or {}).items()
                )
                or "none"
            )
            + f"; NPL ratio {_percent(totals.get('npl_ratio', 0))}"
            + (
                " (" + ", ".join(f"{k} {_percent(v)}" for k, v in by_currency.items()) + ")"
                if len(by_currency) > 1
                else ""
            ),
        ]
        for key in ("written_off_principal", "recovered", "overpayments"):
            values = totals.get(key) or {}
            if values:
                lines.append(
                    f"{key.replace('_', ' ')}: "
                    + ", ".join(f"{cell(v)} {k}" for k, v in values.items())
                )
        return lines
    return [
        f"{key.replace('_', ' ')}: {cell(value)}"
        for key, value in totals.items()
        if not isinstance(value, dict | list)
    ]


def freshness(status: Any) -> str:
    """How current a report's source projection is (and whether it is stuck on an event)."""
    state = (
        "current"
        if status.lag_events == 0
        else (f"{status.lag_events} events behind ({status.lag_seconds:.1f}s)")
    )
    line = f"{status.name}: position {status.position} of {status.head}, {state}"
    error = getattr(status, "error", None)
    if error:
        line += f"; FAILED: {error}"
    return line
