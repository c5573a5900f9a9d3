"""Complaint histories: complaints told through the app come out as rows, timelines and SLA
breaches, identical whether built batch by batch or rebuilt from zero."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import inspect, select

from domain.errors import ValidationError
from ledger.service import Ledger
from projections.complaints import ComplaintHistory, complaint_events, complaints
from projections.complaints_report import complaint_timeline
from projections.runner import ProjectionRunner

Submit = Callable[..., dict[str, Any]]
OpenLoan = Callable[..., UUID]

JAN = {d: date(2026, 1, d) for d in range(1, 32)}


def runner_for(app: Ledger, batch_size: int = 5000) -> ProjectionRunner:
    history = ComplaintHistory(
        ack_sla_days=app.settings.complaint_ack_sla_business_days,
        resolve_sla_days=app.settings.complaint_resolve_sla_days,
    )
    return app.projection_runner([history], batch_size=batch_size)


def table_rows(app: Ledger, table: Any) -> list[dict[str, Any]]:
    with app.engine.connect() as conn:
        key = list(table.primary_key.columns)
        return [dict(r) for r in conn.execute(select(table).order_by(*key)).mappings()]


def complaint_row(app: Ledger, complaint_id: UUID) -> dict[str, Any]:
    with app.engine.connect() as conn:
        return dict(
            conn.execute(select(complaints).where(complaints.c.complaint_id == str(complaint_id)))
            .mappings()
            .one()
        )


def report(app: Ledger, **options: Any) -> Any:
    """The complaints report as the ledger serves it (on its open business day unless
    ``business_date`` is given)."""
    result, _ = app.report("complaints", **options)
    return result


def file(
    app: Ledger,
    submit: Submit,
    loan_id: UUID,
    on: date,
    category: str = "billing",
    description: str = "charged twice",
) -> UUID:
    filed = submit(
        app,
        "file_complaint",
        loan_id=loan_id,
        category=category,
        description=description,
        business_date=on,
    )
    return UUID(filed["aggregate_id"])


def test_a_complaints_story_becomes_its_row_and_timeline(
    ledger_app: Ledger, submit: Submit, open_loan: OpenLoan
) -> None:
    app = ledger_app
    loan_id = open_loan(app, borrower_id="B7")

    # Given a complaint filed, acknowledged, escalated, resolved and reopened, one step a day
    complaint_id = file(
        app, submit, loan_id, JAN[12], "interest_calculation", "the January interest looks too high"
    )
    submit(
        app,
        "acknowledge_complaint",
        complaint_id=complaint_id,
        handler="agent-17",
        business_date=JAN[13],
    )
    submit(
        app,
        "escalate_complaint",
        complaint_id=complaint_id,
        reason="customer unhappy",
        business_date=JAN[14],
    )
    submit(
        app,
        "resolve_complaint",
        complaint_id=complaint_id,
        resolution="explained the 30/360 convention",
        business_date=JAN[15],
    )
    submit(
        app,
        "reopen_complaint",
        complaint_id=complaint_id,
        reason="customer disagrees",
        business_date=JAN[16],
    )

    # When the projection catches up
    runner = runner_for(app)
    assert runner.catch_up() == {"complaints": runner.head()}

    # Then the row tells where the complaint stands
    row = complaint_row(app, complaint_id)
    assert row == {
        "complaint_id": str(complaint_id),
        "loan_id": str(loan_id),
        "borrower_id": "B7",
        "category": "interest_calculation",
        "status": "acknowledged",
        "filed_on": JAN[12],
        "acknowledged_on": JAN[13],
        "resolved_on": None,
        "escalation_level": 1,
        "reopen_count": 1,
        "days_to_acknowledge": 1,
        "days_to_resolve": None,
        "ack_due_on": JAN[13],
        "resolve_due_on": JAN[27],
        "ack_sla_breached": False,
        "resolve_sla_breached": False,
        "event_count": 5,
        "last_event": "Reopened",
        "last_event_on": JAN[16],
        "position": row["position"],
    }
    # ... and agrees with the aggregate
    complaint = app.get_complaint(complaint_id)
    assert (
        row["status"],
        row["escalation_level"],
        row["reopen_count"],
        row["resolved_on"],
        row["acknowledged_on"],
    ) == (
        complaint.status.value,
        complaint.escalation_level,
        complaint.reopen_count,
        complaint.resolved_on,
        complaint.acknowledged_on,
    )

    # ... and the timeline narrates every step in order
    with app.engine.connect() as conn:
        timeline = complaint_timeline(conn, loan_id=loan_id)
    assert [(e["version"], e["business_date"], e["event"], e["detail"]) for e in timeline] == [
        (1, JAN[12], "Filed", "interest_calculation: the January interest looks too high"),
        (2, JAN[13], "Acknowledged", "handler agent-17"),
        (3, JAN[14], "Escalated", "level 1: customer unhappy"),
        (4, JAN[15], "Resolved", "explained the 30/360 convention"),
        (5, JAN[16], "Reopened", "customer disagrees"),
    ]
    assert {(e["complaint_id"], e["loan_id"], e["borrower_id"]) for e in timeline} == {
        (str(complaint_id), str(loan_id), "B7")
    }
    positions = [e["position"] for e in timeline]
    assert positions == sorted(positions) and positions[-1] == row["position"]

    # ... and the position covers the loan's events too, which the projection ignores
    assert runner.position("complaints") == runner.head()


def test_timelines_per_loan_and_per_borrower(
    ledger_app: Ledger, submit: Submit, open_loan: OpenLoan
) -> None:
    app = ledger_app
    first = open_loan(app, borrower_id="B1")
    second = open_loan(app, borrower_id="B1")
    other = open_loan(app, borrower_id="B2")

    # Given complaints on two loans of one borrower, interleaved, and one of another borrower
    a = file(app, submit, first, JAN[12])
    b = file(app, submit, second, JAN[12], "fees", "late fee")
    c = file(app, submit, other, JAN[12])
    submit(app, "resolve_complaint", complaint_id=a, resolution="refunded", business_date=JAN[13])
    submit(app, "acknowledge_complaint", complaint_id=b, handler="h", business_date=JAN[13])
    runner_for(app).catch_up()

    with app.engine.connect() as conn:
        by_borrower = complaint_timeline(conn, borrower_id="B1")
        by_loan = complaint_timeline(conn, loan_id=second)
        one = complaint_timeline(conn, complaint_id=c)
        with pytest.raises(ValidationError):
            complaint_timeline(conn)
    assert [(e["complaint_id"], e["event"]) for e in by_borrower] == [
        (str(a), "Filed"),
        (str(b), "Filed"),
        (str(a), "Resolved"),
        (str(b), "Acknowledged"),
    ]
    assert [(e["complaint_id"], e["event"]) for e in by_loan] == [
        (str(b), "Filed"),
        (str(b), "Acknowledged"),
    ]
    assert [(e["complaint_id"], e["event"]) for e in one] == [(str(c), "Filed")]


def test_late_steps_record_their_breaches(
    ledger_app: Ledger, submit: Submit, open_loan: OpenLoan
) -> None:
    app = ledger_app
    loan_id = open_loan(app)

    # Given an acknowledgement two days after filing and a resolution on day 16
    late = file(app, submit, loan_id, JAN[10])
    submit(app, "acknowledge_complaint", complaint_id=late, handler="h", business_date=JAN[12])
    submit(app, "resolve_complaint", complaint_id=late, resolution="r", business_date=JAN[26])
    # ... one handled exactly on the deadlines (day 1, day 15)
    on_time = file(app, submit, loan_id, JAN[10])
    submit(app, "acknowledge_complaint", complaint_id=on_time, handler="h", business_date=JAN[11])
    submit(app, "resolve_complaint", complaint_id=on_time, resolution="r", business_date=JAN[25])
    # ... one resolved on day 3 without ever being acknowledged: the answer came late
    unanswered = file(app, submit, loan_id, JAN[10])
    submit(app, "resolve_complaint", complaint_id=unanswered, resolution="r", business_date=JAN[13])
    # ... and one resolved on time, reopened, and finally resolved late
    reopened = file(app, submit, loan_id, JAN[10])
    submit(app, "acknowledge_complaint", complaint_id=reopened, handler="h", business_date=JAN[10])
    submit(app, "resolve_complaint", complaint_id=reopened, resolution="r", business_date=JAN[11])
    submit(app, "reopen_complaint", complaint_id=reopened, reason="again", business_date=JAN[20])
    submit(app, "resolve_complaint", complaint_id=reopened, resolution="r2", business_date=JAN[28])
    runner_for(app).catch_up()

    def sla(complaint_id: UUID) -> tuple[Any, ...]:
        row = complaint_row(app, complaint_id)
        return (
            row["days_to_acknowledge"],
            row["ack_sla_breached"],
            row["days_to_resolve"],
            row["resolve_sla_breached"],
        )

    assert sla(late) == (2, True, 16, True)
    assert sla(on_time) == (1, False, 15, False)
    assert sla(unanswered) == (None, True, 3, False)
    assert sla(reopened) == (0, False, 18, True)

    # When the report reads them, nothing is open: the breaches are the recorded ones
    result = report(app, business_date=date(2026, 6, 1))
    assert result.totals["open"] == 0
    assert result.totals["ack_sla_breaches"] == 2
    assert result.totals["resolve_sla_breaches"] == 2
    assert result.totals["ack_sla_overdue_open"] == result.totals["resolve_sla_overdue_open"] == 0
    assert result.totals["avg_days_to_acknowledge"] == Decimal("1.00")  # (2 + 1 + 0) / 3
    assert result.totals["avg_days_to_resolve"] == Decimal("13.00")  # (16 + 15 + 3 + 18) / 4


def test_open_complaints_breach_against_the_ledgers_business_date(
    ledger_app: Ledger, submit: Submit, open_loan: OpenLoan
) -> None:
    app = ledger_app
    loan_id = open_loan(app, borrower_id="B3")
    runner = runner_for(app)

    # Given a complaint filed on Jan 12 that nobody answers (acknowledge by 13, resolve by 27)
    complaint_id = file(app, submit, loan_id, JAN[12])
    runner.catch_up()

    def flags() -> tuple[bool, bool]:
        row = report(app).rows[0]
        return row["ack_sla_breached"], row["resolve_sla_breached"]

    # When the ledger has closed Jan 12, Jan 13 is still open: no breach yet
    app.close_business_days(JAN[12])
    assert report(app).totals["business_date"] == JAN[13]
    assert flags() == (False, False)
    # Once Jan 13 is closed unanswered, the acknowledgement is overdue
    app.close_business_days(JAN[13])
    assert flags() == (True, False)
    # Jan 27 is the last day to resolve
    app.close_business_days(JAN[26])
    assert flags() == (True, False)
    app.close_business_days(JAN[27])
    assert flags() == (True, True)
    totals = report(app).totals
    assert (
        totals["open"],
        totals["ack_sla_breaches"],
        totals["ack_sla_overdue_open"],
        totals["resolve_sla_breaches"],
        totals["resolve_sla_overdue_open"],
    ) == (1, 1, 1, 1, 1)
    assert totals["open_by_borrower"] == {"B3": 1}
    assert totals["open_by_loan"] == {str(loan_id): 1}

    # The stored row records nothing until a late step happens ...
    assert complaint_row(app, complaint_id)["ack_sla_breached"] is False
    # ... and then records it
    submit(
        app, "acknowledge_complaint", complaint_id=complaint_id, handler="h", business_date=JAN[28]
    )
    runner.catch_up()
    row = complaint_row(app, complaint_id)
    assert (row["days_to_acknowledge"], row["ack_sla_breached"]) == (16, True)
    totals = report(app).totals
    assert (totals["ack_sla_breaches"], totals["ack_sla_overdue_open"]) == (1, 0)
    assert (totals["resolve_sla_breaches"], totals["resolve_sla_overdue_open"]) == (1, 1)


def test_service_levels_are_settings(
    database_url: str, make_ledger: Callable[..., Ledger], submit: Submit, open_loan: OpenLoan
) -> None:
    app = make_ledger(database_url, complaint_ack_sla_business_days=3, complaint_resolve_sla_days=5)
    loan_id = open_loan(app)

    # Given an acknowledgement on day 3 and a resolution on day 6
    complaint_id = file(app, submit, loan_id, JAN[12])
    submit(
        app, "acknowledge_complaint", complaint_id=complaint_id, handler="h", business_date=JAN[15]
    )
    submit(
        app, "resolve_complaint", complaint_id=complaint_id, resolution="r", business_date=JAN[18]
    )
    app.catch_up(["complaints"])  # the ledger's own runner, built from its settings

    row = complaint_row(app, complaint_id)
    assert (row["ack_due_on"], row["ack_sla_breached"]) == (JAN[15], False)
    assert (row["resolve_due_on"], row["resolve_sla_breached"]) == (JAN[17], True)


def test_report_rows_totals_and_filters(
    ledger_app: Ledger, submit: Submit, open_loan: OpenLoan
) -> None:
    app = ledger_app
    b1_first = open_loan(app, borrower_id="B1")
    b1_second = open_loan(app, borrower_id="B1")
    b2 = open_loan(app, borrower_id="B2")

    # Given three open complaints for B1 over two loans, one resolved, and one open for B2
    file(app, submit, b1_first, JAN[12])
    file(app, submit, b1_first, JAN[13])
    file(app, submit, b1_second, JAN[14])
    done = file(app, submit, b1_second, JAN[14])
    submit(app, "resolve_complaint", complaint_id=done, resolution="r", business_date=JAN[14])
    file(app, submit, b2, JAN[15])
    runner_for(app).catch_up()

    everything = report(app, business_date=JAN[16])
    assert everything.sources == ("complaints",)
    assert len(everything.rows) == 5
    assert [r["filed_on"] for r in everything.rows] == sorted(
        r["filed_on"] for r in everything.rows
    )
    assert set(everything.columns) <= set(everything.rows[0])
    assert (
        everything.totals["complaints"],
        everything.totals["open"],
        everything.totals["resolved"],
    ) == (5, 4, 1)
    assert everything.totals["open_by_borrower"] == {"B1": 3, "B2": 1}
    assert everything.totals["open_by_loan"] == dict(
        sorted({str(b1_first): 2, str(b1_second): 1, str(b2): 1}.items())
    )
    # Filed on 12, 13 and 14 and still unanswered on the 16th: three overdue acknowledgements
    assert everything.totals["ack_sla_breaches"] == 3

    by_borrower = report(app, borrower_id="B1", business_date=JAN[16])
    assert {r["borrower_id"] for r in by_borrower.rows} == {"B1"}
    assert (by_borrower.totals["complaints"], by_borrower.totals["open"]) == (4, 3)
    by_loan = report(app, loan_id=b1_second, business_date=JAN[16])
    assert {r["loan_id"] for r in by_loan.rows} == {str(b1_second)}
    assert by_loan.totals["open_by_loan"] == {str(b1_second): 1}
    assert report(app, borrower_id="nobody").totals["avg_days_to_resolve"] is None


def build_history(
    app: Ledger, submit: Submit, open_loan: OpenLoan, after_each: Callable[[], Any] = lambda: None
) -> None:
    """Several complaints through every kind of step, on two borrowers, with loan events
    interleaved (a repayment and closed days)."""
    loans = [open_loan(app, borrower_id="B1"), open_loan(app, borrower_id="B2")]
    ids: list[UUID] = []
    for n, loan_id in enumerate(loans * 2):
        ids.append(file(app, submit, loan_id, JAN[11 + n]))
        after_each()
    steps: list[tuple[str, int, dict[str, Any]]] = [
        ("acknowledge_complaint", 0, {"handler": "h1"}),
        ("escalate_complaint", 1, {"reason": "angry"}),
        ("escalate_complaint", 1, {"reason": "angrier"}),
        ("resolve_complaint", 0, {"resolution": "refund"}),
        ("acknowledge_complaint", 2, {"handler": "h2"}),
        ("reopen_complaint", 0, {"reason": "not refunded"}),
        ("resolve_complaint", 2, {"resolution": "explained"}),
        ("resolve_complaint", 0, {"resolution": "refunded"}),
    ]
    day = 16
    for type_, index, fields in steps:
        submit(app, type_, complaint_id=ids[index], business_date=JAN[day], **fields)
        if day == 18:
            submit(
                app,
                "receive_repayment",
                loan_id=loans[0],
                amount="100",
                currency="CNY",
                business_date=JAN[day],
            )
        after_each()
        day += 2
    app.close_business_days(date(2026, 2, 20))  # business date past every due date
    after_each()


def test_rerun_changes_nothing_and_rebuild_equals_incremental(
    ledger_app: Ledger, submit: Submit, open_loan: OpenLoan
) -> None:
    app = ledger_app
    # Batches of 3 events split complaints' histories across batch boundaries
    runner = runner_for(app, batch_size=3)

    # Given a projection kept current after every command
    build_history(app, submit, open_loan, after_each=runner.catch_up)
    incremental = (table_rows(app, complaints), table_rows(app, complaint_events))
    incremental_report = report(app)
    assert len(incremental[0]) == 4 and len(incremental[1]) == 12
    for row in incremental[0]:  # every row agrees with its aggregate
        complaint = app.get_complaint(UUID(row["complaint_id"]))
        assert (
            row["status"],
            row["escalation_level"],
            row["reopen_count"],
            row["acknowledged_on"],
            row["resolved_on"],
            row["event_count"],
        ) == (
            complaint.status.value,
            complaint.escalation_level,
            complaint.reopen_count,
            complaint.acknowledged_on,
            complaint.resolved_on,
            complaint.version,
        )

    # When it runs again, nothing changes
    assert runner.catch_up() == {"complaints": 0}
    assert (table_rows(app, complaints), table_rows(app, complaint_events)) == incremental

    # When it is rebuilt from zero in one go, the tables are the same
    result = runner_for(app).rebuild("complaints")
    assert result["position"] == runner.head()
    assert (table_rows(app, complaints), table_rows(app, complaint_events)) == incremental
    assert report(app).rows == incremental_report.rows
    assert report(app).totals == incremental_report.totals
    assert runner.position("complaints") == runner.head()

    # ... and the rebuilt tables keep their indexes and take new events
    names = {i["name"] for i in inspect(app.engine).get_indexes("complaint_events")}
    assert {"complaint_events_loan_idx", "complaint_events_borrower_idx"} <= names
    file(app, submit, UUID(incremental[0][0]["loan_id"]), date(2026, 2, 21))
    assert runner.catch_up() == {"complaints": 1}
    assert len(table_rows(app, complaints)) == 5


def test_the_migration_creates_the_projections_tables(ledger_app: Ledger) -> None:
    inspector = inspect(ledger_app.engine)
    for table in (complaints, complaint_events):
        columns = {c["name"]: c["nullable"] for c in inspector.get_columns(table.name)}
        assert columns == {c.name: c.nullable for c in table.columns}
        key = inspector.get_pk_constraint(table.name)["constrained_columns"]
        assert key == [c.name for c in table.primary_key.columns]
        indexes = {i["name"]: i["column_names"] for i in inspector.get_indexes(table.name)}
        assert indexes == {i.name: [c.name for c in i.columns] for i in table.indexes}
