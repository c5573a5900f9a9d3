"""Every projection and report the ledger serves."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any

from projections.base import Projection, Report

#: "module:Class" of each projection, in the order the runner serves them.
PROJECTIONS: tuple[str, ...] = (
    "projections.balances:LoanBalances",
    "projections.delinquency:Delinquency",
    "projections.journal:Journal",
    "projections.complaints:ComplaintHistory",
)

#: ``ledger report NAME`` -> "module:function"; each function is (conn, **options) -> Report.
REPORTS: dict[str, str] = {
    "balances": "projections.balances:balances_report",
    "delinquency": "projections.delinquency:delinquency_report",
    "complaints": "projections.complaints:complaints_report",
    "trial-balance": "projections.journal:trial_balance_report",
    "portfolio": "projections.portfolio:portfolio_report",
}


def _resolve(spec: str) -> Any:
    module, _, name = spec.partition(":")
    return getattr(import_module(module), name)


def all_projections(settings: Any = None) -> list[Projection]:
    return [_resolve(spec)(settings) for spec in PROJECTIONS]


def report(name: str) -> Callable[..., Report]:
    fn: Callable[..., Report] = _resolve(REPORTS[name])
    return fn
