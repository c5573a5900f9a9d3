"""Partitions of the book: N equal slices of the loan-id space, and what a run will close.

Loan ids are uuid4, so equal ranges of the id space hold equal shares of the loans and
partitions need no coordination to agree on who owns which loan. ``workers=N`` runs the N
slices as local processes; ``partition=k/N`` runs one of them (e.g. one per host).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING
from uuid import UUID

from domain.errors import ValidationError
from ledger.persistence.chunks import count_active_loans

if TYPE_CHECKING:
    from ledger.app.application import LoanLedger

UUID_SPACE = 1 << 128


@dataclass(frozen=True)
class Partition:
    """Partition ``number`` of ``count`` (1-based, as written: ``2/4``): an equal slice of the
    loan-id space, as a [lower, upper) range of the directory's loan-id strings."""

    number: int = 1
    count: int = 1

    @classmethod
    def parse(cls, text_: str) -> Partition:
        number, _, count = text_.partition("/")
        try:
            partition = cls(int(number), int(count))
        except ValueError:
            partition = cls(0, 0)
        if not 1 <= partition.number <= partition.count <= 1024:
            raise ValidationError(
                f"partition must be k/N with 1 ≤ k ≤ N ≤ 1024, got {text_!r}",
                field="partition",
                rule="k_of_n",
            )
        return partition

    @property
    def label(self) -> str:
        return f"{self.number}/{self.count}"

    @property
    def whole(self) -> bool:
        return self.count == 1

    @property
    def lower(self) -> str:
        return str(UUID(int=(self.number - 1) * UUID_SPACE // self.count))

    @property
    def upper(self) -> str | None:
        if self.number == self.count:
            return None
        return str(UUID(int=self.number * UUID_SPACE // self.count))

    def split(self, workers: int) -> list[Partition]:
        assert self.whole, "only the whole book is split across local workers"
        return [Partition(k, workers) for k in range(1, workers + 1)]


WHOLE_BOOK = Partition()


def parse_partition(text_: str | None) -> Partition:
    """``k/N`` as a partition; none given: the whole book."""
    return Partition.parse(text_) if text_ else WHOLE_BOOK


def count_active(app: LoanLedger, partition: Partition = WHOLE_BOOK) -> int:
    """Active loans in the partition."""
    return count_active_loans(app.engine, partition.lower, partition.upper)


def count_loan_days(
    app: LoanLedger, through: date, partition: Partition = WHOLE_BOOK
) -> int | None:
    """The loan-days a run through ``through`` closes in the partition: the total for the
    progress callback, which counts loan-days (a loan closing three missing days counts 3).

    Known once the ledger clock is set: every active loan has then closed through the clock
    (a loan disbursed on the open day counts from the day before, which is the clock), so the
    total is active loans × days from the clock to ``through`` — exact for a run that finds
    the book as the last run left it. It stays an estimate, never an error, when: a rerun
    after a crash finds loans already closed (the bar ends short of its total); a loan
    disbursed on the open day after the last run passed its chunk lags a day behind the clock
    (one day more than counted); a book loaded before the first close with later dates (a
    disbursement, a command's inline catch-up) has loans ahead of the clock (counted days
    they do not close); commands disburse or pay off loans while the run goes on.
    ``None`` when the clock is not set (before the first end of day every loan counts from its
    own disbursement, which only its events tell): show progress without a total."""
    closed = app.closed_through()
    if closed is None:
        return None
    days = (through - closed).days
    return count_active(app, partition) * days if days > 0 else 0
