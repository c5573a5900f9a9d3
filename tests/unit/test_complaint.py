"""The Complaint aggregate: filed → acknowledged → escalated → resolved → reopened."""

from __future__ import annotations

from datetime import date
from uuid import uuid4

import pytest

from domain.complaint import Complaint, ComplaintStatus
from domain.errors import ComplaintStateError, InvalidDate, LedgerError, ValidationError
from tests.factories import filed_complaint, replay, state_of

FILED_ON = date(2026, 3, 1)


def assert_refused(
    complaint: Complaint, command: object, error: type[LedgerError], field: str
) -> None:
    complaint.collect_events()
    before = state_of(complaint)
    with pytest.raises(error) as caught:
        command()  # type: ignore[operator]
    assert caught.value.field == field
    assert complaint.collect_events() == []
    assert state_of(complaint) == before


def test_full_journey_from_filing_to_reopening() -> None:
    # A borrower complains about a penalty,
    complaint = filed_complaint(FILED_ON)
    assert complaint.status == ComplaintStatus.FILED
    # the service desk acknowledges it,
    complaint.acknowledge(date(2026, 3, 2), handler="agent-12")
    assert (complaint.status, complaint.handler) == (ComplaintStatus.ACKNOWLEDGED, "agent-12")
    # escalates it twice,
    complaint.escalate(date(2026, 3, 5), reason="borrower disputes the answer")
    complaint.escalate(date(2026, 3, 8), reason="regulator copied")
    assert (complaint.status, complaint.escalation_level) == (ComplaintStatus.ESCALATED, 2)
    # resolves it,
    complaint.resolve(date(2026, 3, 12), resolution="penalty reversed")
    assert (complaint.status, complaint.resolved_on) == (
        ComplaintStatus.RESOLVED,
        date(2026, 3, 12),
    )
    # and reopens it when the borrower writes back.
    complaint.reopen(date(2026, 3, 20), reason="reversal not visible on statement")
    assert complaint.status == ComplaintStatus.ACKNOWLEDGED
    assert complaint.resolved_on is None
    assert complaint.reopen_count == 1

    events = complaint.collect_events()
    assert [type(e).__name__ for e in events] == [
        "Filed",
        "Acknowledged",
        "Escalated",
        "Escalated",
        "Resolved",
        "Reopened",
    ]
    assert state_of(replay(events)) == state_of(complaint)


def test_filing_links_loan_and_borrower() -> None:
    loan_id = uuid4()
    complaint = Complaint.file(
        loan_id=loan_id,
        borrower_id=" B1 ",
        category="fees",
        description="fee not in contract",
        business_date=FILED_ON,
    )
    [filed] = complaint.collect_events()
    assert isinstance(filed, Complaint.Filed)
    assert (filed.loan_id, filed.borrower_id) == (str(loan_id), "B1")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"category": "weather"}, "category"),
        ({"description": " "}, "description"),
        ({"borrower_id": ""}, "borrower_id"),
    ],
)
def test_filing_with_bad_input_is_refused(overrides: dict[str, str], field: str) -> None:
    args = {"borrower_id": "B1", "category": "billing", "description": "wrong interest"}
    args.update(overrides)
    with pytest.raises(ValidationError) as caught:
        Complaint.file(loan_id=uuid4(), business_date=FILED_ON, **args)
    assert caught.value.field == field


def test_acknowledging_twice_is_refused() -> None:
    complaint = filed_complaint(FILED_ON)
    complaint.acknowledge(date(2026, 3, 2), handler="agent-12")
    assert_refused(
        complaint,
        lambda: complaint.acknowledge(date(2026, 3, 3), "agent-9"),
        ComplaintStateError,
        "complaint_id",
    )


def test_a_resolved_complaint_cannot_be_escalated_or_resolved_again() -> None:
    complaint = filed_complaint(FILED_ON)
    complaint.resolve(date(2026, 3, 2), resolution="explained the schedule")
    assert_refused(
        complaint,
        lambda: complaint.escalate(date(2026, 3, 3), "angry"),
        ComplaintStateError,
        "complaint_id",
    )
    assert_refused(
        complaint,
        lambda: complaint.resolve(date(2026, 3, 3), "again"),
        ComplaintStateError,
        "complaint_id",
    )


def test_only_a_resolved_complaint_can_be_reopened() -> None:
    complaint = filed_complaint(FILED_ON)
    assert_refused(
        complaint,
        lambda: complaint.reopen(date(2026, 3, 2), "why"),
        ComplaintStateError,
        "complaint_id",
    )


def test_empty_handler_reason_or_resolution_is_refused() -> None:
    complaint = filed_complaint(FILED_ON)
    assert_refused(
        complaint, lambda: complaint.acknowledge(date(2026, 3, 2), " "), ValidationError, "handler"
    )
    assert_refused(
        complaint, lambda: complaint.escalate(date(2026, 3, 2), ""), ValidationError, "reason"
    )
    assert_refused(
        complaint, lambda: complaint.resolve(date(2026, 3, 2), ""), ValidationError, "resolution"
    )


def test_a_step_cannot_be_dated_before_the_filing() -> None:
    complaint = filed_complaint(FILED_ON)
    assert_refused(
        complaint,
        lambda: complaint.acknowledge(date(2026, 2, 28), "agent-12"),
        InvalidDate,
        "business_date",
    )


def test_no_step_can_be_dated_before_the_previous_one() -> None:
    # Regression: escalation dates were not remembered, and reopening forgot the resolution
    # date, so a step after a reopening could be backdated before the escalation or
    # resolution — a timeline the SLA report would read backwards.
    complaint = filed_complaint(FILED_ON)
    complaint.escalate(date(2026, 3, 10), reason="no reply")
    assert_refused(
        complaint, lambda: complaint.resolve(date(2026, 3, 5), "done"), InvalidDate, "business_date"
    )
    complaint.resolve(date(2026, 3, 12), resolution="done")
    complaint.reopen(date(2026, 3, 15), reason="not done")
    assert_refused(
        complaint,
        lambda: complaint.escalate(date(2026, 3, 13), "again"),
        InvalidDate,
        "business_date",
    )
