"""Loan balances: one row per loan with what it owes, what is overdue and what was paid.

Maintained from events only, batch by batch: the rows of the batch's loans are loaded in one
go, every event changes its loan's row as the event's ``apply`` changes the aggregate, and the
changed rows are written back in bulk. So at every position of the log a row equals the
aggregate's balances after the same events (the tests compare it with
``tests.factories.balances_of``).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Date,
    Index,
    Numeric,
    String,
    Table,
    func,
    select,
)

from domain.allocation import Allocation, Component
from domain.loan import Loan
from domain.money import in_minor_units
from projections.base import AggregateIds, Batch, Dispatching, Report, RowSet, metadata
from projections.summaries import Contribution, Deltas

ZERO = Decimal(0)


def amount(name: str) -> Column[Decimal]:
    return Column(name, Numeric(20, 4), nullable=False, default=ZERO)


AMOUNTS = (
    "principal_not_due",  # scheduled, not yet billed
    "principal_overdue",  # billed and unpaid
    "principal_outstanding",  # the two above
    "interest_accrued",  # posted daily, not yet billed
    "interest_overdue",  # billed and unpaid
    "penalty_outstanding",
    "fees_outstanding",
    "overpayment",  # held for the borrower (a liability)
    "disbursed",
    "capitalized",  # arrears turned into principal by restructuring
    "principal_paid",
    "interest_paid",
    "penalty_paid",
    "fees_paid",
    "written_off_principal",
    "recovered",
)

loan_balances = Table(
    "loan_balances",
    metadata,
    Column("loan_id", String(36), primary_key=True),
    Column("borrower_id", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(16), nullable=False),
    *(amount(name) for name in AMOUNTS),
    Column("last_business_date", Date(), nullable=False),
    Column("position", BigInteger(), nullable=False),
    Index("loan_balances_status_idx", "status", "currency"),
    Index("loan_balances_borrower_idx", "borrower_id"),
)

#: Loans and the sum of every amount per status and currency, kept by the same batches, so
#: portfolio totals never scan the per-loan table.
balances_summary = Table(
    "balances_summary",
    metadata,
    Column("status", String(16), primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("loans", BigInteger(), nullable=False),
    *(amount(name) for name in AMOUNTS),
)

STATUS = {
    Loan.Approved: "approved",
    Loan.Rejected: "rejected",
    Loan.Withdrawn: "withdrawn",
    Loan.Disbursed: "active",
    Loan.WrittenOff: "written_off",
    Loan.Closed: "closed",
}


@dataclass
class BatchState:
    rows: RowSet
    ids: AggregateIds
    before: dict[Any, Contribution]  # each loaded loan's share of the summary


class LoanBalances(Dispatching):
    name = "balances"
    tables = (loan_balances, balances_summary)
    topics = frozenset(
        {
            "loan.Applied",
            "loan.Approved",
            "loan.Rejected",
            "loan.Withdrawn",
            "loan.Disbursed",
            "loan.InterestAccrued",
            "loan.InstallmentFellDue",
            "loan.PenaltyAccrued",
            "loan.FeeCharged",
            "loan.RepaymentReceived",
            "loan.Restructured",
            "loan.WrittenOff",
            "loan.RecoveryReceived",
            "loan.Closed",
        }
    )
    handlers: ClassVar[dict[type, str]] = {
        Loan.Applied: "applied",
        Loan.Approved: "status_changed",
        Loan.Rejected: "status_changed",
        Loan.Withdrawn: "status_changed",
        Loan.Closed: "status_changed",
        Loan.Disbursed: "disbursed",
        Loan.InterestAccrued: "interest_accrued",
        Loan.InstallmentFellDue: "installment_fell_due",
        Loan.PenaltyAccrued: "penalty_accrued",
        Loan.FeeCharged: "fee_charged",
        Loan.RepaymentReceived: "repayment_received",
        Loan.Restructured: "restructured",
        Loan.WrittenOff: "written_off",
        Loan.RecoveryReceived: "recovery_received",
    }

    def begin(self, batch: Batch) -> BatchState:
        rows = batch.rowset("loan_balances", cached=True)
        rows.load(batch.ids[e.originator_id.int] for e in batch.events)
        return BatchState(rows, batch.ids, {k: _contribution(r) for k, r in rows.rows.items()})

    def end(self, batch: Batch, state: BatchState) -> None:
        deltas = Deltas(AMOUNTS)
        rows = state.rows
        for key in rows.new | rows.dirty:
            row = rows.rows[key]
            row["principal_outstanding"] = row["principal_not_due"] + row["principal_overdue"]
            deltas.move(state.before.get(key), _contribution(row))
        rows.flush()
        deltas.write(batch.conn, batch.table("balances_summary"))

    def process_event(self, event: Any, position: int, batch_state: BatchState) -> None:
        # Handlers take the loan's row; the shared bookkeeping after them is done here.
        method = self.handlers.get(type(event))
        if method is None:
            return
        state = batch_state.rows
        key = batch_state.ids[event.originator_id.int]
        row = state.get(key)
        if row is None and not isinstance(event, Loan.Applied):
            return  # a loan whose application predates this table: nothing to attach to
        getattr(self, method)(event, row if row is not None else state)
        row = state.rows[key]
        row["last_business_date"] = event.business_date
        row["position"] = position
        state.changed(key)

    # ------------------------------------------------------------------ handlers
    def applied(self, e: Loan.Applied, rows: RowSet) -> None:
        row: dict[str, Any] = {name: ZERO for name in AMOUNTS}
        row.update(
            loan_id=str(e.originator_id),
            borrower_id=e.borrower_id,
            currency=str(e.terms["currency"]),
            status="applied",
        )
        rows.add(row)

    def status_changed(self, e: Any, row: dict[str, Any]) -> None:
        row["status"] = STATUS[type(e)]

    def disbursed(self, e: Loan.Disbursed, row: dict[str, Any]) -> None:
        row["status"] = "active"
        row["disbursed"] = e.amount
        row["principal_not_due"] = e.amount

    def interest_accrued(self, e: Loan.InterestAccrued, row: dict[str, Any]) -> None:
        row["interest_accrued"] += e.amount

    def installment_fell_due(self, e: Loan.InstallmentFellDue, row: dict[str, Any]) -> None:
        row["principal_not_due"] -= e.principal
        row["principal_overdue"] += e.principal
        row["interest_accrued"] -= e.interest
        row["interest_overdue"] += e.interest

    def penalty_accrued(self, e: Loan.PenaltyAccrued, row: dict[str, Any]) -> None:
        row["penalty_outstanding"] += e.amount

    def fee_charged(self, e: Loan.FeeCharged, row: dict[str, Any]) -> None:
        row["fees_outstanding"] += e.amount

    def repayment_received(self, e: Loan.RepaymentReceived, row: dict[str, Any]) -> None:
        alloc = Allocation.from_dict(e.allocation)
        penalty, fees = alloc.total(Component.PENALTY), alloc.total(Component.FEES)
        interest, principal = alloc.total(Component.INTEREST), alloc.total(Component.PRINCIPAL)
        # Allocation lines only ever pay billed items; accrued interest and prepaid principal
        # are settled beside them.
        row["penalty_outstanding"] -= penalty
        row["fees_outstanding"] -= fees
        row["interest_overdue"] -= interest
        row["principal_overdue"] -= principal
        row["interest_accrued"] -= e.accrued_interest_paid
        row["principal_not_due"] -= e.prepaid_principal
        row["overpayment"] += e.overpayment
        row["penalty_paid"] += penalty
        row["fees_paid"] += fees
        row["interest_paid"] += interest + e.accrued_interest_paid
        row["principal_paid"] += principal + e.prepaid_principal

    def restructured(self, e: Loan.Restructured, row: dict[str, Any]) -> None:
        # All unpaid principal, billed or not, is re-amortized; capitalized arrears join it.
        row["principal_overdue"] = ZERO
        row["principal_not_due"] = e.reamortized_principal
        if e.capitalized:
            row["interest_overdue"] = ZERO
            row["penalty_outstanding"] = ZERO
            row["fees_outstanding"] = ZERO
            row["capitalized"] += e.capitalized

    def written_off(self, e: Loan.WrittenOff, row: dict[str, Any]) -> None:
        row["status"] = "written_off"
        row["written_off_principal"] = e.principal
        for name in (
            "principal_not_due",
            "principal_overdue",
            "interest_accrued",
            "interest_overdue",
            "penalty_outstanding",
            "fees_outstanding",
        ):
            row[name] = ZERO

    def recovery_received(self, e: Loan.RecoveryReceived, row: dict[str, Any]) -> None:
        row["recovered"] += e.amount


def _contribution(row: dict[str, Any]) -> Contribution:
    return (row["status"], row["currency"]), [row[name] for name in AMOUNTS]


#: The report's columns, most important first (a narrow table keeps the first ones).
BALANCE_COLUMNS = [
    "loan_id",
    "status",
    "currency",
    "principal_outstanding",
    "principal_overdue",
    "interest_overdue",
    "penalty_outstanding",
    "fees_outstanding",
    "interest_accrued",
    "principal_not_due",
    "overpayment",
    "principal_paid",
    "interest_paid",
    "penalty_paid",
    "fees_paid",
    "disbursed",
    "capitalized",
    "written_off_principal",
    "recovered",
    "borrower_id",
    "last_business_date",
    "position",
]
assert set(BALANCE_COLUMNS) == {c.name for c in loan_balances.columns}


def balances_report(
    conn: Connection, status: str | None = None, limit: int | None = None, **_: Any
) -> Report:
    """One line per loan (loan-id order) with every column of ``loan_balances``, amounts in
    the loan's currency's minor units; as totals, the loans and sums per currency."""
    t = loan_balances
    query = select(*(t.c[name] for name in BALANCE_COLUMNS)).order_by(t.c.loan_id)
    if status:
        query = query.where(t.c.status == status)
    if limit is not None:
        query = query.limit(limit)
    rows = []
    for r in conn.execute(query).mappings():
        row = dict(r)
        for name in AMOUNTS:
            row[name] = in_minor_units(row[name], row["currency"])
        rows.append(row)
    s = balances_summary.c
    sums = select(
        s.currency, func.sum(s.loans).label("loans"), *(func.sum(s[n]).label(n) for n in AMOUNTS)
    )
    if status:
        sums = sums.where(s.status == status)
    totals = {
        r["currency"]: {
            k: (int(v) if k == "loans" else in_minor_units(v, r["currency"]))
            for k, v in r.items()
            if k != "currency"
        }
        for r in conn.execute(sums.group_by(s.currency).order_by(s.currency)).mappings()
    }
    return Report(
        title="Loan balances",
        columns=BALANCE_COLUMNS,
        rows=rows,
        sources=("balances",),
        totals={"by_currency": totals},
    )
