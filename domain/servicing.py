"""Moved to ``domain.loan.state``; kept only until every importer says so (issue 9)."""

from __future__ import annotations

from domain.loan.state import (
    CAPITALIZED,
    RESTRUCTURED,
    WRITTEN_OFF,
    InstallmentState,
    LoanState,
    LoanStatus,
    RestructureKind,
)

__all__ = ["CAPITALIZED", "RESTRUCTURED", "WRITTEN_OFF", "InstallmentState", "LoanState",
           "LoanStatus", "RestructureKind"]
