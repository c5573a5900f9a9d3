"""Test oracle: the portfolio summary computed straight from loan aggregates.

The portfolio report is served from projection tables; this independent computation over the
aggregates is what the tests compare it with.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from domain.delinquency import FiveCategory
from domain.loan import Loan
from domain.loan.state import LoanStatus

ZERO = Decimal(0)
BUCKETS = ("M0", "M1", "M2", "M3", "M4", "M5", "M6", "M7+")


@dataclass
class PortfolioSummary:
    currency_outstanding: dict[str, Decimal] = field(
        default_factory=lambda: defaultdict(lambda: ZERO)
    )
    by_status: Counter[str] = field(default_factory=Counter)
    by_bucket: dict[str, list[Decimal | int]] = field(default_factory=dict)
    by_category: dict[str, list[Decimal | int]] = field(default_factory=dict)
    by_stage: dict[int, list[Decimal | int]] = field(default_factory=dict)
    written_off_principal: Decimal = ZERO
    recovered: Decimal = ZERO
    overpayments: Decimal = ZERO

    @property
    def outstanding(self) -> Decimal:
        return sum(self.currency_outstanding.values(), ZERO)

    @property
    def npl_ratio(self) -> Decimal:
        """Non-performing (substandard + doubtful + loss) principal over all outstanding."""
        npl = sum(
            (
                Decimal(self.by_category.get(c, [0, ZERO])[1])
                for c in (FiveCategory.SUBSTANDARD, FiveCategory.DOUBTFUL, FiveCategory.LOSS)
            ),
            ZERO,
        )
        total = self.outstanding
        return (npl / total).quantize(Decimal("0.0001")) if total else ZERO

    def as_dict(self) -> dict[str, object]:
        return {
            "loans_by_status": dict(self.by_status),
            "outstanding_principal": {k: str(v) for k, v in self.currency_outstanding.items()},
            "by_bucket": {
                k: {"loans": v[0], "principal": str(v[1])} for k, v in self.by_bucket.items()
            },
            "by_category": {
                k: {"loans": v[0], "principal": str(v[1])} for k, v in self.by_category.items()
            },
            "by_stage": {
                str(k): {"loans": v[0], "principal": str(v[1])} for k, v in self.by_stage.items()
            },
            "npl_ratio": str(self.npl_ratio),
            "written_off_principal": str(self.written_off_principal),
            "recovered": str(self.recovered),
            "overpayments": str(self.overpayments),
        }


def summarize(loans: Iterable[Loan]) -> PortfolioSummary:
    """Counts and principal by status, bucket, five-category and IFRS 9 stage.

    Amounts of different currencies are only added per currency; the classification tables add
    principal across currencies only when the portfolio has one currency (as the demo does)."""
    s = PortfolioSummary()
    s.by_bucket = {b: [0, ZERO] for b in BUCKETS}
    s.by_category = {str(c): [0, ZERO] for c in FiveCategory}
    s.by_stage = {1: [0, ZERO], 2: [0, ZERO], 3: [0, ZERO]}
    for loan in loans:
        s.by_status[str(loan.status)] += 1
        s.overpayments += loan.overpayment
        if loan.status == LoanStatus.WRITTEN_OFF:
            s.written_off_principal += loan.written_off.get("principal", ZERO)
            s.recovered += loan.recovered
            continue
        if loan.status != LoanStatus.ACTIVE:
            continue
        principal = loan.principal_outstanding
        s.currency_outstanding[loan.currency] += principal
        c = loan.classification
        for table, key in (
            (s.by_bucket, c["bucket"]),
            (s.by_category, c["category"]),
            (s.by_stage, int(c["stage"])),
        ):
            row = table[key]  # type: ignore[index]
            row[0] = int(row[0]) + 1
            row[1] = Decimal(row[1]) + principal
    return s
