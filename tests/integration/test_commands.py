"""A loan's whole life driven through ``Ledger.execute``, on SQLite and on PostgreSQL.

Each story sends commands as an integration would (dicts with amounts as strings), closes
business days, and then reads the loan back: its current state, its state as of an earlier
date or version, and its row in the loan directory.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import select

from domain.complaint import ComplaintStatus
from domain.errors import LoanNotFound
from domain.loan import Loan
from domain.loan.state import LoanStatus
from ledger.persistence.tables import loan_directory
from ledger.service import Ledger

Submit = Callable[..., dict[str, Any]]


def directory_status(app: Ledger, loan_id: UUID) -> str | None:
    with app.engine.connect() as conn:
        return conn.execute(
            select(loan_directory.c.status).where(loan_directory.c.loan_id == str(loan_id))
        ).scalar()


def event_names(app: Ledger, loan_id: UUID) -> list[str]:
    return [type(e).__name__ for e in app.loan_history(loan_id)]


def test_a_loan_from_application_to_write_off_and_recovery(
    ledger_app: Ledger, submit: Submit
) -> None:
    app = ledger_app

    # Given an application for 100,000 CNY at 12% over 12 months (30/360, annuity)
    applied = submit(
        app,
        "apply_for_loan",
        borrower_id="B1",
        principal="100000",
        annual_rate="0.12",
        term=12,
        day_count="30/360",
        business_date=date(2026, 1, 5),
    )
    loan_id = UUID(applied["aggregate_id"])
    assert applied["events"] == ["Applied"]
    assert app.get_loan(loan_id).status == LoanStatus.APPLIED
    assert directory_status(app, loan_id) == "applied"

    # When it is approved and disbursed
    submit(app, "approve_loan", loan_id=loan_id, business_date=date(2026, 1, 6))
    assert directory_status(app, loan_id) == "approved"
    disbursed = submit(
        app,
        "disburse_loan",
        loan_id=loan_id,
        business_date=date(2026, 1, 10),
        first_due=date(2026, 2, 10),
    )
    assert disbursed["events"] == ["Disbursed"]
    loan = app.get_loan(loan_id)
    assert loan.status == LoanStatus.ACTIVE
    assert directory_status(app, loan_id) == "active"
    assert len(loan.installments) == 12
    # Under 30/360 the installment is the textbook annuity payment with rate/12.
    first = loan.installments[0]
    assert first.principal + first.interest == Decimal("8884.88")
    assert sum(i.principal for i in loan.installments) == Decimal("100000")

    # When business days close through the first due date, the first installment falls due
    summary = app.close_business_days(date(2026, 2, 10))
    assert summary.loans == 1
    loan = app.get_loan(loan_id)
    assert loan.installments[0].fell_due
    assert loan.installments[0].interest == Decimal("1000.00")  # one 30/360 month at 1%
    assert loan.arrears_due() == Decimal("8884.88")
    assert loan.last_closed_on == date(2026, 2, 10)

    # And the borrower pays it the next day: nothing is in arrears any more
    repaid = submit(
        app,
        "receive_repayment",
        loan_id=loan_id,
        amount="8884.88",
        currency="CNY",
        business_date=date(2026, 2, 11),
    )
    # (the payment first posts the day's interest, so it sees what is owed that day)
    assert repaid["events"][-1] == "RepaymentReceived"
    loan = app.get_loan(loan_id)
    assert loan.arrears_due() == 0
    assert loan.installments[0].is_settled
    assert loan.paid["principal"] == first.principal

    # When the second installment is not paid, the loan turns overdue and accrues penalty
    app.close_business_days(date(2026, 3, 20))
    loan = app.get_loan(loan_id)
    names = event_names(app, loan_id)
    assert "BecameOverdue" in names and "PenaltyAccrued" in names
    assert "DelinquencyChanged" in names
    assert loan.dpd_on(date(2026, 3, 20)) == 10
    assert loan.classification["bucket"] == "M1"
    assert loan.penalty_outstanding > 0

    # And a three-month extension (展期) is agreed
    restructured = submit(
        app,
        "restructure_loan",
        loan_id=loan_id,
        kind="extension",
        extend_months=3,
        business_date=date(2026, 3, 21),
    )
    assert restructured["events"][0] == "Restructured"
    loan = app.get_loan(loan_id)
    assert loan.restructure_count == 1
    assert loan.is_in_observation(date(2026, 3, 21))
    assert len(loan.future()) == 10 + 3
    assert loan.status == LoanStatus.ACTIVE

    # When, a few business days later, the loan is written off, the directory follows and
    # end of day leaves it alone
    app.close_business_days(date(2026, 3, 24))
    written_off = submit(
        app,
        "write_off_loan",
        loan_id=loan_id,
        reason="borrower insolvent",
        business_date=date(2026, 3, 25),
    )
    assert "WrittenOff" in written_off["events"]
    loan = app.get_loan(loan_id)
    assert loan.status == LoanStatus.WRITTEN_OFF
    assert loan.written_off["principal"] > 0
    assert loan.principal_outstanding == 0
    assert directory_status(app, loan_id) == "written_off"
    version_after_write_off = loan.version
    assert app.close_business_days(date(2026, 3, 31)).loans == 0
    assert app.get_loan(loan_id).version == version_after_write_off

    # And a recovery arrives later
    recovered = submit(
        app,
        "receive_recovery",
        loan_id=loan_id,
        amount="5000.00",
        currency="CNY",
        business_date=date(2026, 4, 1),
    )
    assert recovered["events"] == ["RecoveryReceived"]
    assert app.get_loan(loan_id).recovered == Decimal("5000.00")

    # Then history answers "what did the loan look like then?" by date and by version
    assert app.get_loan(loan_id, version=1).status == LoanStatus.APPLIED
    assert app.get_loan(loan_id, as_of=date(2026, 1, 6)).status == LoanStatus.APPROVED
    as_of_first_due = app.get_loan(loan_id, as_of=date(2026, 2, 10))
    assert as_of_first_due.installments[0].fell_due
    assert not as_of_first_due.installments[1].fell_due
    assert as_of_first_due.arrears_due() == Decimal("8884.88")
    assert app.get_loan(loan_id, as_of=date(2026, 2, 11)).arrears_due() == 0
    assert app.get_loan(loan_id, as_of=date(2026, 3, 24)).status == LoanStatus.ACTIVE
    assert app.get_loan(loan_id, as_of=date(2026, 3, 25)).status == LoanStatus.WRITTEN_OFF
    with pytest.raises(LoanNotFound) as not_yet:
        app.get_loan(loan_id, as_of=date(2026, 1, 4))
    assert not_yet.value.field == "as_of"

    # And the full history reads as the story above
    names = event_names(app, loan_id)
    assert names[:3] == ["Applied", "Approved", "Disbursed"]
    for expected in (
        "InterestAccrued",
        "InstallmentFellDue",
        "RepaymentReceived",
        "BecameOverdue",
        "PenaltyAccrued",
        "DelinquencyChanged",
        "Restructured",
        "WrittenOff",
        "RecoveryReceived",
    ):
        assert expected in names, expected
    assert names[-2:] == ["WrittenOff", "RecoveryReceived"]
    business_dates = [e.business_date for e in app.loan_history(loan_id)]
    assert business_dates == sorted(business_dates)


def test_paying_off_a_loan_closes_it(
    ledger_app: Ledger, submit: Submit, open_loan: Callable[..., UUID]
) -> None:
    app = ledger_app
    # Given an active loan whose first installment has fallen due
    loan_id = open_loan(app, principal="12000", annual_rate="0.06", term=3)
    app.close_business_days(date(2026, 2, 10))
    payoff = app.get_loan(loan_id).payoff_amount(date(2026, 2, 11))

    # When the borrower pays everything owed
    paid = submit(
        app,
        "receive_repayment",
        loan_id=loan_id,
        amount=str(payoff),
        currency="CNY",
        business_date=date(2026, 2, 11),
    )

    # Then the loan is closed, in the directory too, and end of day skips it
    assert paid["events"][-2:] == ["RepaymentReceived", "Closed"]
    loan = app.get_loan(loan_id)
    assert loan.status == LoanStatus.CLOSED
    assert loan.principal_outstanding == 0
    assert loan.paid["principal"] == Decimal("12000")
    assert directory_status(app, loan_id) == "closed"
    assert app.close_business_days(date(2026, 3, 31)).loans == 0


def test_an_overpayment_is_held_not_lost(
    ledger_app: Ledger, submit: Submit, open_loan: Callable[..., UUID]
) -> None:
    app = ledger_app
    loan_id = open_loan(app, principal="12000", annual_rate="0.06", term=3)
    app.close_business_days(date(2026, 2, 10))
    payoff = app.get_loan(loan_id).payoff_amount(date(2026, 2, 11))

    submit(
        app,
        "receive_repayment",
        loan_id=loan_id,
        amount=str(payoff + Decimal("50.00")),
        currency="CNY",
        business_date=date(2026, 2, 11),
    )

    loan = app.get_loan(loan_id)
    assert loan.status == LoanStatus.CLOSED
    assert loan.overpayment == Decimal("50.00")


def test_a_partial_prepayment_lowers_principal_not_yet_due(
    ledger_app: Ledger, submit: Submit, open_loan: Callable[..., UUID]
) -> None:
    app = ledger_app
    loan_id = open_loan(app)
    app.close_business_days(date(2026, 2, 10))
    before = app.get_loan(loan_id)

    # Paying the installment plus 10,000 prepays principal (default: shorten the term)
    submit(
        app,
        "receive_repayment",
        loan_id=loan_id,
        amount="18884.88",
        currency="CNY",
        business_date=date(2026, 2, 11),
    )

    after = app.get_loan(loan_id)
    repaid = app.loan_history(loan_id)[-1]
    assert isinstance(repaid, Loan.RepaymentReceived)
    assert after.arrears_due() == 0
    # Every unit of the payment is accounted for: billed items, the interest accrued so
    # far, then principal prepaid.
    billed = sum(
        Decimal(repaid.allocation[k]) for k in ("penalty", "fees", "interest", "principal")
    )
    assert billed == Decimal("8884.88")
    assert (
        billed + repaid.accrued_interest_paid + repaid.prepaid_principal + repaid.overpayment
        == Decimal("18884.88")
    )
    assert Decimal("9900") < repaid.prepaid_principal <= Decimal("10000")
    assert after.principal_not_due == before.principal_not_due - repaid.prepaid_principal
    assert len(after.future()) < len(before.future())
    assert sum(i.principal for i in after.future()) == after.principal_not_due


def test_fees_are_charged_and_paid_first(
    ledger_app: Ledger, submit: Submit, open_loan: Callable[..., UUID]
) -> None:
    app = ledger_app
    loan_id = open_loan(app)
    charged = submit(
        app,
        "charge_fee",
        loan_id=loan_id,
        amount="200.00",
        kind="late",
        business_date=date(2026, 1, 20),
    )
    assert charged["events"][-1] == "FeeCharged"
    assert app.get_loan(loan_id).fees_outstanding == Decimal("200.00")

    submit(
        app,
        "receive_repayment",
        loan_id=loan_id,
        amount="150.00",
        currency="CNY",
        business_date=date(2026, 1, 21),
    )

    loan = app.get_loan(loan_id)
    assert loan.fees_outstanding == Decimal("50.00")
    assert loan.paid["fees"] == Decimal("150.00")


@pytest.mark.parametrize(
    ("command", "status"),
    [("reject_loan", LoanStatus.REJECTED), ("withdraw_application", LoanStatus.WITHDRAWN)],
)
def test_an_application_can_end_before_disbursement(
    ledger_app: Ledger, submit: Submit, command: str, status: LoanStatus
) -> None:
    app = ledger_app
    applied = submit(
        app,
        "apply_for_loan",
        borrower_id="B2",
        principal="5000",
        annual_rate="0.10",
        term=6,
        business_date=date(2026, 1, 5),
    )
    loan_id = UUID(applied["aggregate_id"])

    submit(app, command, loan_id=loan_id, reason="credit policy", business_date=date(2026, 1, 6))

    assert app.get_loan(loan_id).status == status
    assert directory_status(app, loan_id) == str(status)
    assert app.loan_ids(status="applied") == []


def test_a_complaint_is_filed_handled_resolved_and_reopened(
    ledger_app: Ledger, submit: Submit, open_loan: Callable[..., UUID]
) -> None:
    app = ledger_app
    loan_id = open_loan(app, borrower_id="B7")

    filed = submit(
        app,
        "file_complaint",
        loan_id=loan_id,
        category="interest_calculation",
        description="the January interest looks too high",
        business_date=date(2026, 1, 12),
    )
    complaint_id = UUID(filed["aggregate_id"])
    complaint = app.get_complaint(complaint_id)
    assert complaint.status == ComplaintStatus.FILED
    assert complaint.loan_id == str(loan_id)
    assert complaint.borrower_id == "B7"

    submit(
        app,
        "acknowledge_complaint",
        complaint_id=complaint_id,
        handler="agent-17",
        business_date=date(2026, 1, 13),
    )
    assert app.get_complaint(complaint_id).handler == "agent-17"

    submit(
        app,
        "escalate_complaint",
        complaint_id=complaint_id,
        reason="customer unhappy",
        business_date=date(2026, 1, 14),
    )
    escalated = app.get_complaint(complaint_id)
    assert escalated.status == ComplaintStatus.ESCALATED
    assert escalated.escalation_level == 1

    submit(
        app,
        "resolve_complaint",
        complaint_id=complaint_id,
        resolution="explained the 30/360 convention",
        business_date=date(2026, 1, 15),
    )
    resolved = app.get_complaint(complaint_id)
    assert resolved.status == ComplaintStatus.RESOLVED
    assert resolved.resolved_on == date(2026, 1, 15)

    reopened = submit(
        app,
        "reopen_complaint",
        complaint_id=complaint_id,
        reason="customer disagrees",
        business_date=date(2026, 1, 16),
    )
    assert reopened["events"] == ["Reopened"]
    complaint = app.get_complaint(complaint_id)
    assert complaint.status == ComplaintStatus.ACKNOWLEDGED
    assert complaint.reopen_count == 1
    assert complaint.resolved_on is None
    assert complaint.version == 5

    # A complaint is its own aggregate: the loan's history is untouched by it.
    assert "Filed" not in event_names(app, loan_id)
