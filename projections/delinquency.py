"""Delinquency: days past due, M-bucket, five-category and IFRS 9 stage per loan, plus the
history of classification transitions that roll rates are computed from.

DPD is derived from events the way the aggregate derives it: the business date of the loan's
last closed day minus the due date of its oldest billed installment with anything unpaid (or,
when only penalty or fees are unpaid, the date the loan became overdue). ``loan_installments``
holds the unpaid remainder of every billed installment, so that date is known without replay;
settled installments are deleted, keeping the table as small as the arrears.

Bucket, five-category and stage are never recomputed here: they come from the domain's own
classification (``DelinquencyChanged``) and from ``WrittenOff`` (loss, stage 3).

This is the one read model past ~300 lines (about 500), on purpose: one pass over the loan's
events keeps five tables together (per-loan rows, unpaid installments, the transition history,
the active-book summary and the roll-rate counts), and most handlers change several of them at
once (a write-off ends the installments, moves the summary, adds a transition and counts the
month end). Split by table, one event would be read across modules.
"""

from __future__ import annotations

import calendar
from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import date, timedelta
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
    and_,
    bindparam,
    select,
)

from domain.allocation import Component
from domain.delinquency import DEFAULT_POLICY, FiveCategory, classify, days_past_due
from domain.loan import Loan
from projections.base import (
    IN_CHUNK,
    ROW_CACHE_LIMIT,
    AggregateIds,
    Batch,
    Dispatching,
    Report,
    RowSet,
    TableCache,
    append_rows,
    metadata,
)
from projections.summaries import Contribution, Deltas

ZERO = Decimal(0)
ONE_DAY = timedelta(days=1)
SHORTEST_MONTH = timedelta(days=28)

loan_delinquency = Table(
    "loan_delinquency",
    metadata,
    Column("loan_id", String(36), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("currency", String(3), nullable=False),
    # The exposure the classification applies to (disbursed + capitalized - repaid).
    Column("principal_outstanding", Numeric(20, 4), nullable=False),
    Column("dpd", Integer(), nullable=False),
    Column("bucket", String(8), nullable=False),
    Column("five_category", String(16), nullable=False),
    Column("ifrs9_stage", Integer(), nullable=False),
    Column("classified_dpd", Integer(), nullable=False),
    Column("oldest_unpaid_due_date", Date(), nullable=True),
    Column("overdue_since", Date(), nullable=True),
    Column("penalty_fees_unpaid", Numeric(20, 4), nullable=False),
    Column("as_of", Date(), nullable=True),
    Column("observation_until", Date(), nullable=True),
    Column("last_transition", BigInteger(), nullable=True),
    # Roll-rate bookkeeping: the state now, and the last month end counted with its state.
    Column("roll_state", String(16), nullable=True),
    Column("rolled_through", Date(), nullable=True),
    Column("rolled_state", String(16), nullable=True),
    Column("last_business_date", Date(), nullable=False),
    Column("position", BigInteger(), nullable=False),
    Index("loan_delinquency_status_idx", "status", "bucket"),
)

#: Active loans and their principal per classification and currency, kept by the same
#: batches (each loan moves its share when it changes), so the portfolio report reads a few
#: dozen rows instead of scanning every loan.
delinquency_summary = Table(
    "delinquency_summary",
    metadata,
    Column("currency", String(3), primary_key=True),
    Column("bucket", String(8), primary_key=True),
    Column("five_category", String(16), primary_key=True),
    Column("ifrs9_stage", Integer(), primary_key=True),
    Column("loans", BigInteger(), nullable=False),
    Column("principal_outstanding", Numeric(20, 4), nullable=False),
)

#: Roll-rate counts: loans in ``from_state`` at the month end before ``month_end`` and in
#: ``to_state`` at ``month_end``. A loan's month end is counted once its state there is final:
#: when its first event after that date arrives (end of day closes every active loan daily),
#: or at once when it is closed or written off.
delinquency_roll_counts = Table(
    "delinquency_roll_counts",
    metadata,
    Column("month_end", Date(), primary_key=True),
    Column("from_state", String(16), primary_key=True),
    Column("to_state", String(16), primary_key=True),
    Column("loans", BigInteger(), nullable=False),
)

loan_installments = Table(
    "loan_installments",
    metadata,
    Column("loan_id", String(36), primary_key=True),
    Column("number", Integer(), primary_key=True),
    Column("due_date", Date(), nullable=False),
    Column("principal_unpaid", Numeric(20, 4), nullable=False),
    Column("interest_unpaid", Numeric(20, 4), nullable=False),
)

delinquency_transitions = Table(
    "delinquency_transitions",
    metadata,
    Column("loan_id", String(36), primary_key=True),
    Column("position", BigInteger(), primary_key=True),
    Column("business_date", Date(), nullable=False),
    Column("kind", String(16), nullable=False),  # disbursed | reclassified | written_off | closed
    Column("from_bucket", String(8), nullable=True),
    Column("to_bucket", String(8), nullable=False),
    Column("from_category", String(16), nullable=True),
    Column("to_category", String(16), nullable=False),
    Column("from_stage", Integer(), nullable=True),
    Column("to_stage", Integer(), nullable=False),
    Column("dpd", Integer(), nullable=False),
    # The loan's roll-rate state from this transition on: its bucket, or closed / written_off.
    Column("roll_state", String(16), nullable=False),
    # The business date of the loan's next transition (NULL: still current), so the state at
    # a month end is one range condition.
    Column("valid_until", Date(), nullable=True),
    Index("delinquency_transitions_date_idx", "business_date"),
)

TERMINAL = ("closed", "written_off")
STATUS = {
    Loan.Approved: "approved",
    Loan.Rejected: "rejected",
    Loan.Withdrawn: "withdrawn",
}


@dataclass
class LoanState:
    """One loan's unpaid installments during a batch: number -> [due date, principal, interest]."""

    installments: dict[int, list[Any]] = field(default_factory=dict)
    loaded: bool = False
    changed: bool = False


@dataclass
class State:
    rows: RowSet
    ids: AggregateIds
    loans: dict[str, LoanState]
    before: dict[Hashable, Contribution]  # each loaded loan's share of the summary
    rolls: Deltas = field(default_factory=lambda: Deltas(()))
    transitions: list[dict[str, Any]] = field(default_factory=list)
    pending: dict[int, dict[str, Any]] = field(default_factory=dict)  # position -> new row
    closed_before: list[dict[str, Any]] = field(default_factory=list)  # valid_until updates


class Delinquency(Dispatching):
    name = "delinquency"
    tables = (
        loan_delinquency,
        loan_installments,
        delinquency_transitions,
        delinquency_summary,
        delinquency_roll_counts,
    )
    topics = frozenset(
        {
            "loan.Applied",
            "loan.Approved",
            "loan.Rejected",
            "loan.Withdrawn",
            "loan.Disbursed",
            "loan.InterestAccrued",
            "loan.InstallmentFellDue",
            "loan.BecameOverdue",
            "loan.PenaltyAccrued",
            "loan.DelinquencyChanged",
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
        Loan.Disbursed: "disbursed",
        Loan.InterestAccrued: "interest_accrued",
        Loan.InstallmentFellDue: "installment_fell_due",
        Loan.BecameOverdue: "became_overdue",
        Loan.PenaltyAccrued: "penalty_or_fee",
        Loan.FeeCharged: "penalty_or_fee",
        Loan.DelinquencyChanged: "delinquency_changed",
        Loan.RepaymentReceived: "repayment_received",
        Loan.Restructured: "restructured",
        Loan.WrittenOff: "written_off",
        Loan.RecoveryReceived: "recovery_received",
        Loan.Closed: "closed",
    }

    # --------------------------------------------------------------- batch
    def begin(self, batch: Batch) -> State:
        rows = batch.rowset("loan_delinquency", cached=True)
        keys = {batch.ids[e.originator_id.int] for e in batch.events}
        rows.load(keys)
        loans = {key: LoanState() for key in keys}
        before = {k: _contribution(r) for k, r in rows.rows.items()}
        # A rebuild keeps each loan's unpaid installments between batches (it is their only
        # writer); live batches read them from the table. Loan id -> installments (the
        # rebuild's cache holds whatever a projection keeps per key).
        cache: dict[Any, Any] | None = None
        if batch.cache is not None:
            cache = batch.cache.setdefault("loan_installments", TableCache()).rows
            if len(cache) > ROW_CACHE_LIMIT:
                cache.clear()
        # Only loans with billed installments can have unpaid ones; skip the rest.
        wanted = [k for k in keys if k in rows.rows and (cache is None or k not in cache)]
        table = batch.table("loan_installments")
        for start in range(0, len(wanted), IN_CHUNK):
            chunk = wanted[start : start + IN_CHUNK]
            for r in batch.conn.execute(select(table).where(table.c.loan_id.in_(chunk))):
                loans[r.loan_id].installments[r.number] = [
                    r.due_date,
                    r.principal_unpaid,
                    r.interest_unpaid,
                ]
        if cache is not None:
            for key, loan in loans.items():
                if key in cache:
                    loan.installments = cache[key]
                else:
                    cache[key] = loan.installments
        return State(
            rows=rows, ids=batch.ids, loans=loans, before={k: v for k, v in before.items() if v}
        )

    def process_event(self, event: Any, position: int, state: State) -> None:
        method = self.handlers.get(type(event))
        if method is None:
            return
        key = state.ids[event.originator_id.int]
        if isinstance(event, Loan.Applied):
            self.applied(event, state)
        row = state.rows.get(key)
        if row is None:
            return  # a loan whose application predates this table: nothing to attach to
        loan = state.loans[key]
        _roll_month_ends(row, event.business_date, state.rolls)
        if method != "applied":
            getattr(self, method)(event, row, loan, state, position)
        _derive(row, loan)
        if row["status"] in TERMINAL:
            # Nothing changes a closed or written-off loan's state again: count its month
            # end now rather than wait for an event that never comes.
            _roll_month_ends(row, month_end(event.business_date) + ONE_DAY, state.rolls)
        row["last_business_date"] = event.business_date
        row["position"] = position
        state.rows.changed(key)

    def end(self, batch: Batch, state: State) -> None:
        summary = Deltas(("principal_outstanding",))
        for key in state.rows.new | state.rows.dirty:
            summary.move(state.before.get(key), _contribution(state.rows.rows[key]))
        state.rows.flush()
        conn = batch.conn
        summary.write(conn, batch.table("delinquency_summary"))
        state.rolls.write(conn, batch.table("delinquency_roll_counts"))
        inst = batch.table("loan_installments")
        changed = [k for k, loan in state.loans.items() if loan.changed]
        for start in range(0, len(changed), IN_CHUNK):
            conn.execute(inst.delete().where(inst.c.loan_id.in_(changed[start : start + IN_CHUNK])))
        append_rows(
            conn,
            inst,
            [
                {
                    "loan_id": k,
                    "number": n,
                    "due_date": v[0],
                    "principal_unpaid": v[1],
                    "interest_unpaid": v[2],
                }
                for k in changed
                for n, v in state.loans[k].installments.items()
            ],
        )
        transitions = batch.table("delinquency_transitions")
        append_rows(conn, transitions, state.transitions)
        if state.closed_before:
            t = transitions.c
            conn.execute(
                transitions.update()
                .where(
                    and_(t.loan_id == bindparam("k_loan_id"), t.position == bindparam("k_position"))
                )
                .values(valid_until=bindparam("v_valid_until")),
                state.closed_before,
            )

    # ------------------------------------------------------------ handlers
    def applied(self, e: Loan.Applied, state: State) -> None:
        c = classify(0, policy=DEFAULT_POLICY)
        state.rows.add(
            {
                "loan_id": str(e.originator_id),
                "status": "applied",
                "currency": str(e.terms["currency"]),
                "principal_outstanding": ZERO,
                "dpd": 0,
                "bucket": c.bucket,
                "five_category": c.category.value,
                "ifrs9_stage": c.stage,
                "classified_dpd": 0,
                "oldest_unpaid_due_date": None,
                "overdue_since": None,
                "penalty_fees_unpaid": ZERO,
                "as_of": None,
                "observation_until": None,
                "last_transition": None,
                "roll_state": None,
                "rolled_through": None,
                "rolled_state": None,
                "last_business_date": e.business_date,
                "position": 0,
            }
        )

    def status_changed(self, e: Any, row: dict[str, Any], *_: Any) -> None:
        row["status"] = STATUS[type(e)]

    def disbursed(
        self, e: Loan.Disbursed, row: dict[str, Any], loan: LoanState, state: State, position: int
    ) -> None:
        row["status"] = "active"
        row["principal_outstanding"] = e.amount
        row["as_of"] = e.business_date - ONE_DAY  # as the aggregate: no day closed yet
        # The loan exists from today: its first counted month end is this month's.
        row["rolled_through"] = previous_month_end(e.business_date)
        self._transition(e, row, state, position, "disbursed", previous=None)

    def interest_accrued(self, e: Loan.InterestAccrued, row: dict[str, Any], *_: Any) -> None:
        if e.end_of_day:
            row["as_of"] = e.business_date

    def installment_fell_due(
        self, e: Loan.InstallmentFellDue, row: dict[str, Any], loan: LoanState, *_: Any
    ) -> None:
        if e.principal or e.interest:
            loan.installments[e.number] = [e.due_date, e.principal, e.interest]
            loan.changed = True

    def became_overdue(self, e: Loan.BecameOverdue, row: dict[str, Any], *_: Any) -> None:
        row["overdue_since"] = e.oldest_due_date

    def penalty_or_fee(self, e: Any, row: dict[str, Any], *_: Any) -> None:
        row["penalty_fees_unpaid"] += e.amount

    def delinquency_changed(
        self,
        e: Loan.DelinquencyChanged,
        row: dict[str, Any],
        loan: LoanState,
        state: State,
        position: int,
    ) -> None:
        previous = (row["bucket"], row["five_category"], row["ifrs9_stage"])
        current = e.current
        row["bucket"] = str(current["bucket"])
        row["five_category"] = str(current["category"])
        row["ifrs9_stage"] = int(current["stage"])
        row["classified_dpd"] = int(current["dpd"])
        self._transition(e, row, state, position, "reclassified", previous=previous)

    def repayment_received(
        self, e: Loan.RepaymentReceived, row: dict[str, Any], loan: LoanState, *_: Any
    ) -> None:
        row["principal_outstanding"] -= e.prepaid_principal
        for line in e.allocation.get("lines", []):
            amount = Decimal(str(line["amount"]))
            component = line["component"]
            if component in (Component.PENALTY, Component.FEES):
                row["penalty_fees_unpaid"] -= amount
                continue
            if component == Component.PRINCIPAL:
                row["principal_outstanding"] -= amount
            inst = loan.installments[int(line["installment"])]
            inst[1 if component == Component.PRINCIPAL else 2] -= amount
            loan.changed = True
        _drop_settled(loan)
        if not loan.installments and not row["penalty_fees_unpaid"]:
            row["overdue_since"] = None

    def restructured(
        self, e: Loan.Restructured, row: dict[str, Any], loan: LoanState, *_: Any
    ) -> None:
        # Billed principal goes back into the plan; with capitalization the arrears too.
        for inst in loan.installments.values():
            inst[1] = ZERO
            if e.capitalized:
                inst[2] = ZERO
        if e.capitalized:
            row["penalty_fees_unpaid"] = ZERO
        loan.changed = True
        _drop_settled(loan)
        row["observation_until"] = e.observation_until
        row["principal_outstanding"] = e.reamortized_principal
        if not loan.installments and not row["penalty_fees_unpaid"]:
            row["overdue_since"] = None

    def written_off(
        self, e: Loan.WrittenOff, row: dict[str, Any], loan: LoanState, state: State, position: int
    ) -> None:
        previous = (row["bucket"], row["five_category"], row["ifrs9_stage"])
        row["status"] = "written_off"
        row["principal_outstanding"] = ZERO
        loan.installments.clear()
        loan.changed = True
        row["penalty_fees_unpaid"] = ZERO
        # The DPD on the write-off date, as the aggregate keeps it; events stored before it
        # was recorded (dpd None) classify with the last transition's, as they always did.
        if e.dpd is not None:
            row["classified_dpd"] = e.dpd
        c = classify(row["classified_dpd"], written_off=True, policy=DEFAULT_POLICY)
        row["bucket"], row["five_category"], row["ifrs9_stage"] = (
            c.bucket,
            c.category.value,
            c.stage,
        )
        self._transition(e, row, state, position, "written_off", previous=previous)

    def recovery_received(self, *_: Any) -> None:
        """Cash on a written-off loan changes no classification."""

    def closed(
        self, e: Loan.Closed, row: dict[str, Any], loan: LoanState, state: State, position: int
    ) -> None:
        previous = (row["bucket"], row["five_category"], row["ifrs9_stage"])
        row["status"] = "closed"
        self._transition(e, row, state, position, "closed", previous=previous)

    def _transition(
        self,
        e: Any,
        row: dict[str, Any],
        state: State,
        position: int,
        kind: str,
        previous: tuple[str, str, int] | None,
    ) -> None:
        status = row["status"]
        new = {
            "loan_id": row["loan_id"],
            "position": position,
            "business_date": e.business_date,
            "kind": kind,
            "from_bucket": previous[0] if previous else None,
            "to_bucket": row["bucket"],
            "from_category": previous[1] if previous else None,
            "to_category": row["five_category"],
            "from_stage": previous[2] if previous else None,
            "to_stage": row["ifrs9_stage"],
            "dpd": row["classified_dpd"] if kind != "closed" else row["dpd"],
            "roll_state": status if status in ("closed", "written_off") else row["bucket"],
            "valid_until": None,
        }
        last = row["last_transition"]
        if last is not None:
            if last in state.pending:
                state.pending[last]["valid_until"] = e.business_date
            else:
                state.closed_before.append(
                    {
                        "k_loan_id": row["loan_id"],
                        "k_position": last,
                        "v_valid_until": e.business_date,
                    }
                )
        state.transitions.append(new)
        state.pending[position] = new
        row["last_transition"] = position
        row["roll_state"] = new["roll_state"]


def month_end(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def previous_month_end(day: date) -> date:
    return day.replace(day=1) - ONE_DAY


def _roll_month_ends(row: dict[str, Any], before: date, rolls: Deltas) -> None:
    """Count the loan's move between consecutive month ends earlier than ``before``: its
    state there is the state now, as every event dated on or before them has been applied."""
    through: date | None = row["rolled_through"]
    if through is None:
        return  # not disbursed yet
    if before <= through + SHORTEST_MONTH:
        # ``through`` is a month end, so the next one is at least 28 days later: the common
        # case (every event comes here) decided without computing it.
        return
    while (end := month_end(through + ONE_DAY)) < before:
        previous, state = row["rolled_state"], row["roll_state"]
        if previous in TERMINAL:
            row["rolled_through"] = previous_month_end(before)  # nothing more to count
            return
        if previous is not None:
            rolls.add((end, previous, state), [], 1)
        row["rolled_through"], row["rolled_state"] = end, state
        through = end


def _contribution(row: dict[str, Any]) -> Contribution | None:
    if row["status"] != "active":
        return None
    key = (row["currency"], row["bucket"], row["five_category"], row["ifrs9_stage"])
    return key, [row["principal_outstanding"]]


def _drop_settled(loan: LoanState) -> None:
    for number in [n for n, v in loan.installments.items() if not v[1] and not v[2]]:
        del loan.installments[number]


def _derive(row: dict[str, Any], loan: LoanState) -> None:
    """The aggregate's ``oldest_unpaid_due_date`` and ``current_dpd``."""
    installments = loan.installments
    oldest: date | None = min(v[0] for v in installments.values()) if installments else None
    if oldest is None and row["penalty_fees_unpaid"]:
        oldest = row["overdue_since"]
    row["oldest_unpaid_due_date"] = oldest
    if row["status"] == "active" and row["as_of"] is not None:
        row["dpd"] = days_past_due(row["as_of"], oldest)
    else:
        row["dpd"] = row["classified_dpd"]


DELINQUENCY_COLUMNS = [
    "loan_id",
    "status",
    "dpd",
    "bucket",
    "five_category",
    "ifrs9_stage",
    "oldest_unpaid_due_date",
    "overdue_since",
    "as_of",
    "observation_until",
]


def delinquency_report(
    conn: Connection,
    status: str | None = "active",
    bucket: str | None = None,
    limit: int | None = None,
    **_: Any,
) -> Report:
    """Active loans (by default) from the most days past due down, with counts per bucket."""
    t = loan_delinquency
    query = select(*(t.c[n] for n in DELINQUENCY_COLUMNS))
    if status:
        query = query.where(t.c.status == status)
    if bucket:
        query = query.where(t.c.bucket == bucket)
    query = query.order_by(t.c.dpd.desc(), t.c.loan_id)
    if limit is not None:
        query = query.limit(limit)
    rows = []
    by_bucket: dict[str, int] = {}
    for r in conn.execute(query).mappings():
        row = dict(r)
        row["five_category_zh"] = FiveCategory(row["five_category"]).chinese
        by_bucket[row["bucket"]] = by_bucket.get(row["bucket"], 0) + 1
        rows.append(row)
    columns = [*DELINQUENCY_COLUMNS[:5], "five_category_zh", *DELINQUENCY_COLUMNS[5:]]
    return Report(
        title="Delinquency",
        columns=columns,
        rows=rows,
        sources=("delinquency",),
        totals={"loans": len(rows), "by_bucket": dict(sorted(by_bucket.items()))},
    )
