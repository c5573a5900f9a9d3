"""One loan's life: the ``Loan`` aggregate and the rooms it is built from.

- ``state``: statuses, installments and ``LoanState`` (what a snapshot stores);
- ``position``: read-only queries — what the loan owes and since when (``LoanPosition``);
- ``accrual``, ``repayment``, ``restructuring``: the arithmetic, pure functions of plain values
  (a day's interest and penalty, a payment's split, a restructure's plan);
- ``invariants``: the checks before an event is recorded;
- ``aggregate``: ``Loan``, each command beside the event it triggers.

``from domain.loan import Loan`` is the way in; the state's types are re-exported with it.
"""

from __future__ import annotations

from domain.loan.aggregate import Loan
from domain.loan.state import InstallmentState, LoanState, LoanStatus, RestructureKind

__all__ = ["InstallmentState", "Loan", "LoanState", "LoanStatus", "RestructureKind"]
