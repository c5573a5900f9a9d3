"""Every projection and report the ledger serves, named here explicitly."""

from __future__ import annotations

from collections.abc import Callable

from projections.balances import LoanBalances, balances_report
from projections.base import Projection, Report
from projections.complaints import ComplaintHistory
from projections.complaints_report import complaints_report
from projections.delinquency import Delinquency, delinquency_report
from projections.journal import Journal, trial_balance_report
from projections.portfolio import portfolio_report

#: Every projection, in the order the runner serves them (``all_projections`` builds one each).
PROJECTIONS: tuple[type[Projection], ...] = (LoanBalances, Delinquency, Journal, ComplaintHistory)

#: Each function is (conn, **options) -> Report. Every report is also given ``business_date``
#: (the open business day) and ``closed_through`` (the last closed one) and takes what it needs.
ReportFunction = Callable[..., Report]

#: ``ledger report NAME`` -> the function that reads it.
REPORTS: dict[str, ReportFunction] = {
    "balances": balances_report,
    "delinquency": delinquency_report,
    "complaints": complaints_report,
    "trial-balance": trial_balance_report,
    "portfolio": portfolio_report,
}


def all_projections(*, ack_sla_days: int, resolve_sla_days: int) -> list[Projection]:
    """One of each of ``PROJECTIONS``, with the settings values they need: the complaint
    service levels in days from filing."""
    return [
        LoanBalances(),
        Delinquency(),
        Journal(),
        ComplaintHistory(ack_sla_days=ack_sla_days, resolve_sla_days=resolve_sla_days),
    ]


def report(name: str) -> ReportFunction:
    return REPORTS[name]
