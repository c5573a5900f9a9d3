"""The double-entry journal: one balanced entry per money event, and the trial balance.

Posting rules live in ``domain.accounting``; this module only stores what they produce.
Per batch: the entries' lines are appended to ``journal_entries`` (keyed by the event's
notification id and the line number, so a batch applied twice would fail loudly rather than
double-post), the affected ``account_balances`` rows are loaded, added to and written back, and
each touched loan's sub-ledger row in ``journal_loans`` (its currency, learned from ``Applied``,
and its balance per loan account) is updated. All of it commits with the tracking position.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Date,
    Index,
    Integer,
    Numeric,
    String,
    Table,
    select,
)

from domain.accounting import (
    ACCRUED_INTEREST,
    CHART,
    FEES_RECEIVABLE,
    INTEREST_RECEIVABLE,
    LOAN_ACCOUNTS,
    MONEY_TOPICS,
    OVERPAYMENTS,
    PENALTY_RECEIVABLE,
    PRINCIPAL_DUE,
    PRINCIPAL_NOT_DUE,
    LoanBook,
    Posting,
)
from domain.loan import Loan
from domain.money import in_minor_units
from projections.base import Batch, Projection, Report, RowSet, append_rows, metadata

ZERO = Decimal(0)
AMOUNT = Numeric(20, 4)

journal_entries = Table(
    "journal_entries",
    metadata,
    Column("position", BigInteger(), primary_key=True, autoincrement=False),
    Column("line", Integer(), primary_key=True, autoincrement=False),
    Column("loan_id", String(36), nullable=False),
    Column("business_date", Date(), nullable=False),
    Column("event_type", String(32), nullable=False),
    Column("account", String(8), nullable=False),
    Column("debit", AMOUNT, nullable=False),
    Column("credit", AMOUNT, nullable=False),
    Column("currency", String(3), nullable=False),
    Index("journal_entries_loan_idx", "loan_id", "position"),
    Index("journal_entries_date_idx", "business_date"),
)

account_balances = Table(
    "account_balances",
    metadata,
    Column("account", String(8), primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("debit_total", AMOUNT, nullable=False),
    Column("credit_total", AMOUNT, nullable=False),
    Column("balance", AMOUNT, nullable=False),  # debit_total - credit_total
)

#: Sub-ledger column of each loan account in ``journal_loans``.
LOAN_COLUMNS: dict[str, str] = {
    PRINCIPAL_NOT_DUE: "principal_not_due",
    PRINCIPAL_DUE: "principal_due",
    ACCRUED_INTEREST: "accrued_interest",
    INTEREST_RECEIVABLE: "interest_receivable",
    PENALTY_RECEIVABLE: "penalty_receivable",
    FEES_RECEIVABLE: "fees_receivable",
    OVERPAYMENTS: "overpayments",
}
assert set(LOAN_COLUMNS) == set(LOAN_ACCOUNTS)

journal_loans = Table(
    "journal_loans",
    metadata,
    Column("loan_id", String(36), primary_key=True),
    Column("currency", String(3), nullable=False),
    *(Column(name, AMOUNT, nullable=False) for name in LOAN_COLUMNS.values()),
)


class UnknownLoanCurrency(RuntimeError):
    """A money event for a loan whose ``Applied`` the journal never saw: a broken log."""


class Journal(Projection):
    name = "journal"
    tables: ClassVar[tuple[Table, ...]] = (journal_entries, account_balances, journal_loans)
    topics: ClassVar[frozenset[str] | None] = MONEY_TOPICS | {"loan.Applied"}

    def process(self, batch: Batch) -> None:
        ids = batch.ids
        loan_ids = [ids[e.originator_id.int] for e in batch.events]
        loans = batch.rowset("journal_loans", cached=True)
        loans.load(loan_ids)
        books: dict[str, LoanBook] = {}
        entries: list[Entry] = []
        totals: dict[str, dict[str, list[Decimal]]] = {}  # currency -> account -> [dr, cr]
        for event, position, loan_id in zip(batch.events, batch.positions, loan_ids, strict=True):
            if isinstance(event, Loan.Applied):
                loans.add(
                    {
                        "loan_id": loan_id,
                        "currency": str(event.terms["currency"]),
                        **{c: ZERO for c in LOAN_COLUMNS.values()},
                    }
                )
                continue
            book = books.get(loan_id)
            if book is None:
                book = books[loan_id] = _book(loans.get(loan_id), loan_id)
            postings = book.post(event)
            if not postings:
                continue
            entries.append((position, loan_id, event.business_date, type(event).__name__, postings))
            by_account = totals.get(book.currency) or totals.setdefault(book.currency, {})
            for account, debit, credit, _ in postings:  # all in the book's currency
                total = by_account.get(account)
                if total is None:
                    by_account[account] = [debit, credit]
                else:
                    total[0] += debit
                    total[1] += credit
        for loan_id, book in books.items():
            row = loans.get(loan_id)
            assert row is not None
            row.update({c: book.balance(a) for a, c in LOAN_COLUMNS.items()})
            loans.changed(loan_id)
        loans.flush()
        _append_lines(batch, entries)
        _add_to_balances(RowSet(batch.conn, batch.table("account_balances")), totals)


#: One journal entry: position, loan id, business date, event type and its lines.
Entry = tuple[int, str, date, str, list[Posting]]

#: ``journal_entries`` columns in the order ``_append_lines`` writes them to COPY.
_COPY_COLUMNS = (
    "position",
    "loan_id",
    "business_date",
    "event_type",
    "line",
    "account",
    "debit",
    "credit",
    "currency",
)


def _append_lines(batch: Batch, entries: list[Entry]) -> None:
    if batch.conn.dialect.name != "postgresql":
        append_rows(
            batch.conn,
            batch.table("journal_entries"),
            [
                {
                    "position": position,
                    "line": line,
                    "loan_id": loan_id,
                    "business_date": day,
                    "event_type": event_type,
                    "account": p.account,
                    "debit": p.debit,
                    "credit": p.credit,
                    "currency": p.currency,
                }
                for position, loan_id, day, event_type, postings in entries
                for line, p in enumerate(postings, start=1)
            ],
        )
        return
    # The biggest write of a rebuild (≈2.3 lines per event), so lines are formatted straight
    # into COPY's text format, the entry's own fields once per entry instead of once per line
    # through a generic row writer. Every value is a number, date, id or code: nothing there
    # needs escaping.
    lines = []
    for position, loan_id, day, event_type, postings in entries:
        head = f"{position}\t{loan_id}\t{day.isoformat()}\t{event_type}\t"
        for line, (account, debit, credit, currency) in enumerate(postings, start=1):
            lines.append(f"{head}{line}\t{account}\t{debit!s}\t{credit!s}\t{currency}\n")
    batch.copy_text("journal_entries", _COPY_COLUMNS, lines)


def _book(row: dict[str, Any] | None, loan_id: str) -> LoanBook:
    if row is None:
        raise UnknownLoanCurrency(f"money event for loan {loan_id} before its Applied event")
    return LoanBook(row["currency"], {a: row[c] for a, c in LOAN_COLUMNS.items()})


def _add_to_balances(rows: RowSet, totals: dict[str, dict[str, list[Decimal]]]) -> None:
    keyed = {
        (account, currency): total
        for currency, by_account in totals.items()
        for account, total in by_account.items()
    }
    rows.load(keyed)
    for key, (debit, credit) in keyed.items():
        row = rows.get(key)
        if row is None:
            account, currency = key
            rows.add(
                {
                    "account": account,
                    "currency": currency,
                    "debit_total": debit,
                    "credit_total": credit,
                    "balance": debit - credit,
                }
            )
            continue
        row["debit_total"] = Decimal(row["debit_total"]) + debit
        row["credit_total"] = Decimal(row["credit_total"]) + credit
        row["balance"] = row["debit_total"] - row["credit_total"]
        rows.changed(key)
    rows.flush()


# ------------------------------------------------------------------------ reports
def trial_balance_report(conn: Connection, *, currency: str | None = None, **_: Any) -> Report:
    """Debit and credit totals per account and currency; per currency they must net to zero.

    ``balance`` is debit minus credit (assets and expenses positive, liabilities and income
    negative); ``totals`` gives each currency's debits, credits and their difference."""
    c = account_balances.c
    query = select(account_balances).order_by(c.currency, c.account)
    if currency:
        query = query.where(c.currency == currency.upper())
    rows: list[dict[str, Any]] = []
    sums: dict[str, dict[str, Decimal]] = {}
    for r in conn.execute(query).mappings():
        account = CHART.get(r["account"])
        ccy = r["currency"]
        debit = in_minor_units(r["debit_total"], ccy)
        credit = in_minor_units(r["credit_total"], ccy)
        rows.append(
            {
                "currency": ccy,
                "account": r["account"],
                "name": account.name if account else "?",
                "type": str(account.type) if account else "?",
                "debit_total": debit,
                "credit_total": credit,
                "balance": in_minor_units(debit - credit, ccy),
            }
        )
        s = sums.setdefault(ccy, {"debit_total": ZERO, "credit_total": ZERO})
        s["debit_total"] += debit
        s["credit_total"] += credit
    by_currency = {
        ccy: {**s, "difference": in_minor_units(s["debit_total"] - s["credit_total"], ccy)}
        for ccy, s in sums.items()
    }
    return Report(
        title="Trial balance",
        columns=["account", "name", "debit_total", "credit_total", "balance", "type", "currency"],
        rows=rows,
        sources=("journal",),
        totals={
            "balanced": all(t["difference"] == 0 for t in by_currency.values()),
            "by_currency": by_currency,
        },
    )


def journal_report(
    conn: Connection, *, loan_id: str | None = None, limit: int = 1000, **_: Any
) -> Report:
    """Journal lines in log order, optionally of one loan (newest ``limit`` lines)."""
    c = journal_entries.c
    query = select(journal_entries).order_by(c.position.desc(), c.line.desc()).limit(limit)
    if loan_id:
        query = query.where(c.loan_id == str(loan_id))
    rows = [dict(r) for r in conn.execute(query).mappings()][::-1]
    for r in rows:
        account = CHART.get(r["account"])
        r["name"] = account.name if account else "?"
    return Report(
        title="Journal" + (f" of loan {loan_id}" if loan_id else ""),
        columns=[
            "position",
            "line",
            "business_date",
            "loan_id",
            "event_type",
            "account",
            "name",
            "debit",
            "credit",
            "currency",
        ],
        rows=rows,
        sources=("journal",),
        totals={
            "debit": sum((r["debit"] for r in rows), ZERO),
            "credit": sum((r["credit"] for r in rows), ZERO),
        },
    )
