"""Posting rules: every money event is one balanced entry on the right accounts, and a loan's
sub-ledger always equals the aggregate's own balances."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest

from domain.accounting import (
    ACCRUED_INTEREST,
    CASH,
    CHART,
    CREDIT_LOSSES,
    FEE_INCOME,
    FEES_RECEIVABLE,
    INTEREST_INCOME,
    INTEREST_RECEIVABLE,
    LOAN_ACCOUNTS,
    MONEY_TOPICS,
    OVERPAYMENTS,
    PENALTY_INCOME,
    PENALTY_RECEIVABLE,
    PRINCIPAL_DUE,
    PRINCIPAL_NOT_DUE,
    RECOVERIES_INCOME,
    AccountType,
    LoanBook,
    Posting,
    UnbalancedEntry,
    check_balanced,
    postings_for,
)
from domain.loan import Loan, LoanStatus, RestructureKind
from tests.factories import active_loan, catch_up_and, of_type, pay

D = Decimal
DAY = date(2026, 3, 1)


def event(cls: type, **fields: Any) -> Any:
    return cls(
        originator_id=uuid4(),
        originator_version=2,
        timestamp=datetime.now(UTC),
        business_date=DAY,
        **fields,
    )


def lines(postings: Iterable[Posting]) -> set[tuple[str, Decimal, Decimal]]:
    return {(p.account, p.debit, p.credit) for p in postings}


def balances_of(loan: Loan) -> dict[str, Decimal]:
    """The aggregate's own balances, named by the account that mirrors each."""
    return {
        PRINCIPAL_NOT_DUE: loan.principal_not_due,
        PRINCIPAL_DUE: loan.principal_due_unpaid(),
        ACCRUED_INTEREST: loan.interest_accrued,
        INTEREST_RECEIVABLE: loan.interest_due_unpaid(),
        PENALTY_RECEIVABLE: loan.penalty_outstanding,
        FEES_RECEIVABLE: loan.fees_outstanding,
        OVERPAYMENTS: -loan.overpayment,  # a liability: a credit balance
    }


class Books:
    """A loan's sub-ledger plus the general ledger totals of everything posted to it."""

    def __init__(self, currency: str = "CNY") -> None:
        self.book = LoanBook(currency)
        self.general: dict[str, Decimal] = defaultdict(Decimal)
        self.entries: list[tuple[str, list[Posting]]] = []

    def post(self, loan: Loan) -> list[Any]:
        events = loan.collect_events()
        for e in events:
            postings = self.book.post(e)
            if postings:
                self.entries.append((type(e).__name__, postings))
            for p in postings:
                self.general[p.account] += p.debit - p.credit
        return events

    def reconcile(self, loan: Loan) -> None:
        assert {a: self.book.balance(a) for a in LOAN_ACCOUNTS} == balances_of(loan)
        assert sum(self.general.values(), D(0)) == 0


# ------------------------------------------------------------------- the chart
def test_the_chart_has_stable_unique_codes_and_the_loan_accounts_are_balance_sheet() -> None:
    assert len(CHART) == 13
    assert all(code == a.code and code.isdigit() and len(code) == 4 for code, a in CHART.items())
    assert {CHART[c].type for c in LOAN_ACCOUNTS} == {AccountType.ASSET, AccountType.LIABILITY}
    assert CHART[CREDIT_LOSSES].type == AccountType.EXPENSE
    assert CHART[RECOVERIES_INCOME].type == AccountType.INCOME


def test_the_journal_reads_the_pinned_topics_of_money_events() -> None:
    money_events = (
        "Disbursed",
        "InterestAccrued",
        "InstallmentFellDue",
        "PenaltyAccrued",
        "FeeCharged",
        "RepaymentReceived",
        "Restructured",
        "WrittenOff",
        "RecoveryReceived",
    )
    assert {f"loan.{name}" for name in money_events} == MONEY_TOPICS


# -------------------------------------------------------------- rule by rule
def test_disbursement_moves_cash_into_principal_not_yet_due() -> None:
    e = event(Loan.Disbursed, amount=D("100000"), first_due=DAY, schedule=[])
    assert lines(postings_for(e, LoanBook("CNY"))) == {
        (PRINCIPAL_NOT_DUE, D("100000"), D(0)),
        (CASH, D(0), D("100000")),
    }
    assert {p.currency for p in postings_for(e, LoanBook("USD"))} == {"USD"}


def test_interest_accrual_is_income_and_a_zero_accrual_posts_nothing() -> None:
    accrued = event(
        Loan.InterestAccrued, amount=D("32.88"), period_exact=D("32.877"), end_of_day=True
    )
    assert lines(postings_for(accrued, LoanBook("CNY"))) == {
        (ACCRUED_INTEREST, D("32.88"), D(0)),
        (INTEREST_INCOME, D(0), D("32.88")),
    }
    zero = event(Loan.InterestAccrued, amount=D("0.00"), period_exact=D(0), end_of_day=True)
    assert postings_for(zero, LoanBook("CNY")) == []


def test_a_negative_amount_posts_the_reverse_entry_never_a_negative_debit() -> None:
    reversal = event(Loan.InterestAccrued, amount=D("-0.01"), period_exact=D(0), end_of_day=True)
    assert lines(postings_for(reversal, LoanBook("CNY"))) == {
        (ACCRUED_INTEREST, D(0), D("0.01")),
        (INTEREST_INCOME, D("0.01"), D(0)),
    }


def test_an_installment_falling_due_reclassifies_principal_and_bills_interest() -> None:
    e = event(
        Loan.InstallmentFellDue,
        number=1,
        due_date=DAY,
        principal=D("7884.88"),
        interest=D("1000.00"),
    )
    assert lines(postings_for(e, LoanBook("CNY"))) == {
        (PRINCIPAL_DUE, D("7884.88"), D(0)),
        (PRINCIPAL_NOT_DUE, D(0), D("7884.88")),
        (INTEREST_RECEIVABLE, D("1000.00"), D(0)),
        (ACCRUED_INTEREST, D(0), D("1000.00")),
    }


def test_penalties_and_fees_are_receivables_against_income() -> None:
    penalty = event(Loan.PenaltyAccrued, amount=D("4.93"), base=D("7884.88"), carry=D(0))
    fee = event(Loan.FeeCharged, amount=D("50.00"), kind="late")
    assert lines(postings_for(penalty, LoanBook("CNY"))) == {
        (PENALTY_RECEIVABLE, D("4.93"), D(0)),
        (PENALTY_INCOME, D(0), D("4.93")),
    }
    assert lines(postings_for(fee, LoanBook("CNY"))) == {
        (FEES_RECEIVABLE, D("50.00"), D(0)),
        (FEE_INCOME, D(0), D("50.00")),
    }


def test_a_repayment_credits_each_component_it_settled() -> None:
    allocation = {
        "penalty": "4.93",
        "fees": "50.00",
        "interest": "1000.00",
        "principal": "7884.88",
        "remainder": "1100.19",
        "lines": [
            {
                "component": c,
                "due_date": "2026-02-10",
                "amount": a,
                "installment": None if c in ("penalty", "fees") else 1,
            }
            for c, a in (
                ("penalty", "4.93"),
                ("fees", "50.00"),
                ("interest", "1000.00"),
                ("principal", "7884.88"),
            )
        ],
    }
    e = event(
        Loan.RepaymentReceived,
        amount=D("10040.00"),
        allocation=allocation,
        accrued_interest_paid=D("30.00"),
        prepaid_principal=D("1000.00"),
        overpayment=D("70.19"),
        new_schedule=None,
        reference="r1",
    )
    assert lines(postings_for(e, LoanBook("CNY"))) == {
        (CASH, D("10040.00"), D(0)),
        (PENALTY_RECEIVABLE, D(0), D("4.93")),
        (FEES_RECEIVABLE, D(0), D("50.00")),
        (INTEREST_RECEIVABLE, D(0), D("1000.00")),
        (PRINCIPAL_DUE, D(0), D("7884.88")),
        (ACCRUED_INTEREST, D(0), D("30.00")),
        (PRINCIPAL_NOT_DUE, D(0), D("1000.00")),
        (OVERPAYMENTS, D(0), D("70.19")),
    }


def test_a_restructure_takes_due_principal_and_capitalized_arrears_into_principal() -> None:
    e = event(
        Loan.Restructured,
        kind="capitalization",
        annual_rate=D("0.12"),
        capitalized=D("1104.93"),
        capitalized_interest=D("1000.00"),
        capitalized_penalty=D("4.93"),
        capitalized_fees=D("100.00"),
        principal_due_reamortized=D("7884.88"),
        reamortized_principal=D("101104.93"),
        new_schedule=[],
        observation_until=DAY,
    )
    postings = postings_for(e, LoanBook("CNY"))
    debits = sum(p.debit for p in postings if p.account == PRINCIPAL_NOT_DUE)
    assert debits == D("7884.88") + D("1104.93")
    assert lines(p for p in postings if p.credit) == {
        (PRINCIPAL_DUE, D(0), D("7884.88")),
        (INTEREST_RECEIVABLE, D(0), D("1000.00")),
        (PENALTY_RECEIVABLE, D(0), D("4.93")),
        (FEES_RECEIVABLE, D(0), D("100.00")),
    }


def test_a_write_off_charges_credit_losses_and_clears_every_balance() -> None:
    # 7884.88 of the 92115.12 written-off principal was already due (the event says so).
    book = LoanBook("CNY", {PRINCIPAL_DUE: D("7884.88"), PRINCIPAL_NOT_DUE: D("84230.24")})
    e = event(
        Loan.WrittenOff,
        principal=D("92115.12"),
        principal_due=D("7884.88"),
        interest=D("1000.00"),
        accrued_interest=D("30.00"),
        penalty=D("4.93"),
        fees=D("50.00"),
        reason="fraud",
        dpd=200,
    )
    assert lines(postings_for(e, book)) == {
        (CREDIT_LOSSES, D("93200.05"), D(0)),
        (PRINCIPAL_DUE, D(0), D("7884.88")),
        (PRINCIPAL_NOT_DUE, D(0), D("84230.24")),
        (INTEREST_RECEIVABLE, D(0), D("1000.00")),
        (ACCRUED_INTEREST, D(0), D("30.00")),
        (PENALTY_RECEIVABLE, D(0), D("4.93")),
        (FEES_RECEIVABLE, D(0), D("50.00")),
    }


def test_a_recovery_is_cash_and_recoveries_income() -> None:
    e = event(Loan.RecoveryReceived, amount=D("5000"), reference="court")
    assert lines(postings_for(e, LoanBook("CNY"))) == {
        (CASH, D("5000"), D(0)),
        (RECOVERIES_INCOME, D(0), D("5000")),
    }


@pytest.mark.parametrize(
    "cls, fields",
    [
        (Loan.Approved, {}),
        (Loan.Closed, {"reason": "repaid"}),
        (
            Loan.BecameOverdue,
            {"dpd": 1, "oldest_due_date": DAY, "overdue_principal": D(1), "overdue_interest": D(1)},
        ),
        (Loan.DelinquencyChanged, {"previous": {}, "current": {}}),
    ],
)
def test_events_that_move_no_money_post_nothing(cls: type, fields: dict[str, Any]) -> None:
    assert postings_for(event(cls, **fields), LoanBook("CNY")) == []


def test_an_unbalanced_entry_is_refused() -> None:
    with pytest.raises(UnbalancedEntry, match=r"off by 0\.01"):
        check_balanced(
            [Posting(CASH, D("1.00"), D(0), "CNY"), Posting(FEE_INCOME, D(0), D("0.99"), "CNY")]
        )


# ------------------------------------------------------------------ a story
def test_a_loan_story_keeps_the_books_balanced_and_equal_to_the_aggregate() -> None:
    books = Books()

    # Given 100,000 CNY disbursed at 12% over 12 months (30/360)
    loan = active_loan()
    books.post(loan)
    assert books.general[PRINCIPAL_NOT_DUE] == D("100000")
    assert books.general[CASH] == D("-100000")
    books.reconcile(loan)

    # When a month of interest accrues and the first installment falls due
    loan.close_day(date(2026, 2, 10))
    books.post(loan)
    assert books.general[INTEREST_INCOME] == D("-1000.00")
    assert books.general[INTEREST_RECEIVABLE] == D("1000.00")
    assert books.general[PRINCIPAL_DUE] == D("7884.88")
    assert books.general[ACCRUED_INTEREST] == 0
    books.reconcile(loan)

    # And a 50 fee is charged, then the borrower pays it all plus 10,000 (waterfall:
    # fees → interest → principal due; then the day's accrued interest; the rest prepays)
    catch_up_and(loan, date(2026, 2, 11))
    loan.charge_fee(date(2026, 2, 11), D("50.00"), "service")
    pay(loan, date(2026, 2, 11), "18934.88")
    events = books.post(loan)
    repayment = of_type(events, Loan.RepaymentReceived)[-1]
    assert repayment.prepaid_principal > 0
    name, entry = books.entries[-1]
    assert name == "RepaymentReceived"
    assert {p.account for p in entry if p.credit} == {
        FEES_RECEIVABLE,
        INTEREST_RECEIVABLE,
        PRINCIPAL_DUE,
        ACCRUED_INTEREST,
        PRINCIPAL_NOT_DUE,
    }
    assert books.general[CASH] == D("-100000") + D("18934.88")
    books.reconcile(loan)

    # When the borrower stops paying: installments fall due, penalties accrue
    loan.close_day(date(2026, 5, 20))
    books.post(loan)
    assert books.general[PENALTY_INCOME] < 0
    assert books.general[PRINCIPAL_DUE] > 0
    books.reconcile(loan)

    # Then the loan is written off: every receivable is cleared into credit losses
    loan.write_off(date(2026, 5, 21), "uncollectable")
    (written_off,) = of_type(books.post(loan), Loan.WrittenOff)
    assert all(books.book.balance(a) == 0 for a in LOAN_ACCOUNTS)
    assert books.general[CREDIT_LOSSES] == (
        written_off.principal
        + written_off.interest
        + written_off.accrued_interest
        + written_off.penalty
        + written_off.fees
    )
    books.reconcile(loan)

    # And a later recovery is income, not a reversal of the loss
    loan.receive_recovery(date(2026, 6, 1), D("5000"), "CNY")
    books.post(loan)
    assert books.general[RECOVERIES_INCOME] == D("-5000")
    assert books.general[CASH] == D("-100000") + D("18934.88") + D("5000")
    # Principal is conserved in the books too: disbursed = repaid + written off
    assert (loan.paid["principal"] + written_off.principal) == D("100000")
    books.reconcile(loan)


def test_a_payoff_beyond_what_is_owed_is_held_as_an_overpayment_liability() -> None:
    books = Books()
    loan = active_loan(principal="1000", term=3)
    loan.close_day(date(2026, 2, 20))
    books.post(loan)
    pay(loan, date(2026, 2, 21), loan.payoff_amount(date(2026, 2, 21)) + D("12.34"))
    books.post(loan)
    assert loan.status == LoanStatus.CLOSED
    assert books.general[OVERPAYMENTS] == D("-12.34")
    assert all(books.book.balance(a) == 0 for a in LOAN_ACCOUNTS if a != OVERPAYMENTS)
    books.reconcile(loan)


@pytest.mark.parametrize("capitalize", [False, True])
def test_a_restructure_keeps_the_sub_ledger_equal_to_the_aggregate(capitalize: bool) -> None:
    books = Books()
    loan = active_loan()
    loan.close_day(date(2026, 4, 20))  # two installments due and unpaid, penalties running
    loan.charge_fee(date(2026, 4, 20), D("80.00"), "collection")
    books.post(loan)
    assert books.book.balance(PRINCIPAL_DUE) > 0
    loan.restructure(
        date(2026, 4, 21), RestructureKind.EXTENSION, extend_months=6, capitalize_arrears=capitalize
    )
    books.post(loan)
    assert books.book.balance(PRINCIPAL_DUE) == 0
    if capitalize:
        assert books.book.balance(PENALTY_RECEIVABLE) == books.book.balance(FEES_RECEIVABLE) == 0
    books.reconcile(loan)
    loan.close_day(date(2026, 7, 1))
    books.post(loan)
    books.reconcile(loan)
