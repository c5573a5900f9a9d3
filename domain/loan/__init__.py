"""One loan's life: the ``Loan`` aggregate and what it is made of.

- ``state``: statuses, installments and ``LoanState`` (what a snapshot stores);
- ``aggregate``: ``Loan``, each command beside the event it triggers.

``from domain.loan import Loan`` is the way in; the modules are importable on their own.
"""

from __future__ import annotations

from domain.loan.aggregate import Loan
from domain.loan.state import InstallmentState, LoanState, LoanStatus, RestructureKind

__all__ = ["InstallmentState", "Loan", "LoanState", "LoanStatus", "RestructureKind"]
