"""Double-entry accounting for loan events: the chart of accounts and the posting rules.

Every money event becomes one balanced journal entry (debits equal credits) in the loan's
currency; non-money events post nothing. The rules read only the split amounts the events carry,
plus one loan-level fact they lack: how much of the written-off principal was already due, which
``LoanBook`` (the loan's sub-ledger) remembers. Amounts are never rounded here: events carry
amounts already in minor units.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any, NamedTuple

from eventsourcing.utils import get_topic

from domain.allocation import Allocation, Component
from domain.loan import Loan

ZERO = Decimal(0)


class AccountType(StrEnum):
    ASSET = "asset"
    LIABILITY = "liability"
    INCOME = "income"
    EXPENSE = "expense"

    @property
    def debit_normal(self) -> bool:
        return self in (AccountType.ASSET, AccountType.EXPENSE)


@dataclass(frozen=True, slots=True)
class Account:
    code: str
    name: str
    type: AccountType


# Stable codes: they are stored in journal rows, so a code is never reused or renumbered.
CASH = "1001"
PRINCIPAL_NOT_DUE = "1101"
PRINCIPAL_DUE = "1102"
ACCRUED_INTEREST = "1201"
INTEREST_RECEIVABLE = "1202"
PENALTY_RECEIVABLE = "1203"
FEES_RECEIVABLE = "1204"
OVERPAYMENTS = "2101"
INTEREST_INCOME = "4101"
PENALTY_INCOME = "4102"
FEE_INCOME = "4103"
RECOVERIES_INCOME = "4104"
CREDIT_LOSSES = "5101"

CHART: dict[str, Account] = {
    a.code: a
    for a in (
        Account(CASH, "Cash and settlement (clearing)", AccountType.ASSET),
        Account(PRINCIPAL_NOT_DUE, "Loans: principal not yet due", AccountType.ASSET),
        Account(PRINCIPAL_DUE, "Loans: principal due (overdue)", AccountType.ASSET),
        Account(ACCRUED_INTEREST, "Accrued interest receivable", AccountType.ASSET),
        Account(INTEREST_RECEIVABLE, "Interest receivable (billed)", AccountType.ASSET),
        Account(PENALTY_RECEIVABLE, "Penalty interest receivable", AccountType.ASSET),
        Account(FEES_RECEIVABLE, "Fees receivable", AccountType.ASSET),
        Account(OVERPAYMENTS, "Borrower overpayments", AccountType.LIABILITY),
        Account(INTEREST_INCOME, "Interest income", AccountType.INCOME),
        Account(PENALTY_INCOME, "Penalty interest income", AccountType.INCOME),
        Account(FEE_INCOME, "Fee income", AccountType.INCOME),
        Account(RECOVERIES_INCOME, "Recoveries on written-off loans", AccountType.INCOME),
        Account(CREDIT_LOSSES, "Credit losses (write-offs)", AccountType.EXPENSE),
    )
}

#: Accounts that belong to one loan (its receivables and what it owes back): the sub-ledger.
LOAN_ACCOUNTS: tuple[str, ...] = (
    PRINCIPAL_NOT_DUE,
    PRINCIPAL_DUE,
    ACCRUED_INTEREST,
    INTEREST_RECEIVABLE,
    PENALTY_RECEIVABLE,
    FEES_RECEIVABLE,
    OVERPAYMENTS,
)

_LOAN_ACCOUNT_SET = frozenset(LOAN_ACCOUNTS)

#: Where a repayment's allocation to each billed component is credited.
_COMPONENT_ACCOUNT = {
    Component.PENALTY: PENALTY_RECEIVABLE,
    Component.FEES: FEES_RECEIVABLE,
    Component.INTEREST: INTEREST_RECEIVABLE,
    Component.PRINCIPAL: PRINCIPAL_DUE,
}


class UnbalancedEntry(AssertionError):
    """A posting rule produced debits that differ from credits: a bug, never bad input."""


class Posting(NamedTuple):
    """One journal line. A tuple, not a dataclass: a rebuild makes millions of them, and a
    tuple is built several times faster and unpacks straight into the journal's rows."""

    account: str
    debit: Decimal
    credit: Decimal
    currency: str


@dataclass
class LoanBook:
    """One loan's sub-ledger: its currency and the balance (debit − credit) of each loan account.

    ``post`` turns an event into its entry and keeps the balances, so rules that need the loan's
    position (the split of written-off principal) can read it; the journal keeps one per loan.
    """

    currency: str
    balances: dict[str, Decimal] = field(default_factory=dict)

    def balance(self, account: str) -> Decimal:
        return self.balances.get(account, ZERO)

    def post(self, event: object) -> list[Posting]:
        postings = postings_for(event, self)
        balances = self.balances
        for account, debit, credit, _ in postings:
            if account in _LOAN_ACCOUNT_SET:
                balances[account] = balances.get(account, ZERO) + debit - credit
        return postings


class _Entry:
    """Collects debit/credit pairs; drops zero amounts and turns a negative amount into the
    reverse pair, so every posted debit and credit is positive."""

    __slots__ = ("currency", "lines")

    def __init__(self, currency: str) -> None:
        self.currency = currency
        self.lines: list[Posting] = []

    def debit(self, account: str, amount: Decimal) -> _Entry:
        if amount > ZERO:
            self.lines.append(Posting(account, amount, ZERO, self.currency))
        elif amount < ZERO:
            self.lines.append(Posting(account, ZERO, -amount, self.currency))
        return self

    def credit(self, account: str, amount: Decimal) -> _Entry:
        return self.debit(account, -amount)

    def pair(self, debit: str, credit: str, amount: Decimal) -> _Entry:
        # debit(debit, amount) then credit(credit, amount), in one step: most events post
        # exactly one pair, so this is the journal rebuild's innermost call.
        if amount > ZERO:
            self.lines += (
                Posting(debit, amount, ZERO, self.currency),
                Posting(credit, ZERO, amount, self.currency),
            )
        elif amount < ZERO:
            self.lines += (
                Posting(debit, ZERO, -amount, self.currency),
                Posting(credit, -amount, ZERO, self.currency),
            )
        return self


def _disbursed(e: Loan.Disbursed, entry: _Entry, book: LoanBook) -> None:
    entry.pair(PRINCIPAL_NOT_DUE, CASH, e.amount)


def _interest_accrued(e: Loan.InterestAccrued, entry: _Entry, book: LoanBook) -> None:
    entry.pair(ACCRUED_INTEREST, INTEREST_INCOME, e.amount)


def _installment_fell_due(e: Loan.InstallmentFellDue, entry: _Entry, book: LoanBook) -> None:
    entry.pair(PRINCIPAL_DUE, PRINCIPAL_NOT_DUE, e.principal)
    entry.pair(INTEREST_RECEIVABLE, ACCRUED_INTEREST, e.interest)


def _penalty_accrued(e: Loan.PenaltyAccrued, entry: _Entry, book: LoanBook) -> None:
    entry.pair(PENALTY_RECEIVABLE, PENALTY_INCOME, e.amount)


def _fee_charged(e: Loan.FeeCharged, entry: _Entry, book: LoanBook) -> None:
    entry.pair(FEES_RECEIVABLE, FEE_INCOME, e.amount)


def _repayment_received(e: Loan.RepaymentReceived, entry: _Entry, book: LoanBook) -> None:
    allocation = Allocation.from_dict(e.allocation)
    entry.debit(CASH, e.amount)
    for component, account in _COMPONENT_ACCOUNT.items():
        entry.credit(account, allocation.total(component))
    entry.credit(ACCRUED_INTEREST, e.accrued_interest_paid)
    entry.credit(PRINCIPAL_NOT_DUE, e.prepaid_principal)
    entry.credit(OVERPAYMENTS, e.overpayment)


def _restructured(e: Loan.Restructured, entry: _Entry, book: LoanBook) -> None:
    entry.pair(PRINCIPAL_NOT_DUE, PRINCIPAL_DUE, e.principal_due_reamortized)
    entry.pair(PRINCIPAL_NOT_DUE, INTEREST_RECEIVABLE, e.capitalized_interest)
    entry.pair(PRINCIPAL_NOT_DUE, PENALTY_RECEIVABLE, e.capitalized_penalty)
    entry.pair(PRINCIPAL_NOT_DUE, FEES_RECEIVABLE, e.capitalized_fees)


def _written_off(e: Loan.WrittenOff, entry: _Entry, book: LoanBook) -> None:
    due = e.principal_due
    entry.debit(CREDIT_LOSSES, e.principal + e.interest + e.accrued_interest + e.penalty + e.fees)
    entry.credit(PRINCIPAL_DUE, due)
    entry.credit(PRINCIPAL_NOT_DUE, e.principal - due)
    entry.credit(INTEREST_RECEIVABLE, e.interest)
    entry.credit(ACCRUED_INTEREST, e.accrued_interest)
    entry.credit(PENALTY_RECEIVABLE, e.penalty)
    entry.credit(FEES_RECEIVABLE, e.fees)


def _recovery_received(e: Loan.RecoveryReceived, entry: _Entry, book: LoanBook) -> None:
    entry.pair(CASH, RECOVERIES_INCOME, e.amount)


Rule = Callable[[Any, _Entry, LoanBook], None]

#: The posting rule of each money event; every other event posts nothing.
RULES: dict[type, Rule] = {
    Loan.Disbursed: _disbursed,
    Loan.InterestAccrued: _interest_accrued,
    Loan.InstallmentFellDue: _installment_fell_due,
    Loan.PenaltyAccrued: _penalty_accrued,
    Loan.FeeCharged: _fee_charged,
    Loan.RepaymentReceived: _repayment_received,
    Loan.Restructured: _restructured,
    Loan.WrittenOff: _written_off,
    Loan.RecoveryReceived: _recovery_received,
}

#: Stored topics of the money events (what the journal reads).
MONEY_TOPICS: frozenset[str] = frozenset(get_topic(cls) for cls in RULES)


def postings_for(event: object, book: LoanBook) -> list[Posting]:
    """The balanced entry for ``event`` in ``book``'s currency; [] when no money moves."""
    rule = RULES.get(type(event))
    if rule is None:
        return []
    entry = _Entry(book.currency)
    rule(event, entry, book)
    check_balanced(entry.lines)
    return entry.lines


def check_balanced(postings: Iterable[Posting]) -> None:
    """Debits equal credits in every currency of ``postings``, else UnbalancedEntry."""
    totals: dict[str, Decimal] = {}
    for _, debit, credit, currency in postings:
        totals[currency] = totals.get(currency, ZERO) + debit - credit
    for currency, difference in totals.items():
        if difference != 0:
            raise UnbalancedEntry(f"entry in {currency} is off by {difference}")
