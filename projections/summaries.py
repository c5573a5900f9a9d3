"""Summary tables kept beside per-entity rows: each changed row moves its share.

A summary row holds, per key (status and currency, or a classification), the number of rows and
the sums of some amounts. During a batch every changed row's old share (``Contribution``) is
taken away from its old key and its new share added to its new key (``Deltas.move``); at the
end of the batch the changes are written with one load and one flush. A row whose count and
sums reach zero is deleted, so the table never depends on where batches were cut.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Table, and_, bindparam

from projections.base import RowSet

ZERO = Decimal(0)

#: A row's share of a summary table: its key there and its amounts.
Contribution = tuple[tuple[Any, ...], list[Decimal]]


class Deltas:
    """Changes to a summary table (key columns -> loans and sums), collected over a batch as
    rows leave one key and join another, then written with one load and one flush."""

    def __init__(self, sums: tuple[str, ...]) -> None:
        self.sums = sums
        self.changes: dict[tuple[Any, ...], list[Any]] = {}

    def add(self, key: tuple[Any, ...], values: list[Decimal], sign: int) -> None:
        change = self.changes.setdefault(key, [0] + [ZERO] * len(self.sums))
        change[0] += sign
        for i, value in enumerate(values, start=1):
            change[i] += value * sign

    def move(self, old: Contribution | None, new: Contribution | None) -> None:
        if old is not None:
            self.add(old[0], old[1], -1)
        if new is not None:
            self.add(new[0], new[1], 1)

    def write(self, conn: Connection, table: Table) -> None:
        changes = {k: v for k, v in self.changes.items() if v[0] or any(v[1:])}
        if not changes:
            return
        rows = RowSet(conn, table)
        rows.load(changes)
        names = [c.name for c in table.primary_key.columns]
        emptied = []
        for key, change in changes.items():
            row = rows.get(key)
            if row is None:
                row = rows.add(
                    {
                        **dict(zip(names, key, strict=True)),
                        "loans": 0,
                        **{name: ZERO for name in self.sums},
                    }
                )
            row["loans"] += change[0]
            for name, value in zip(self.sums, change[1:], strict=True):
                row[name] += value
            if row["loans"] == 0 and not any(row[name] for name in self.sums):
                # An empty row goes, so the table never depends on where batches were cut.
                emptied.append(key)
                rows.new.discard(key)
                rows.dirty.discard(key)
            else:
                rows.changed(key)
        rows.flush()
        if emptied:
            conn.execute(
                table.delete().where(
                    and_(*(c == bindparam(f"k_{c.name}") for c in table.primary_key.columns))
                ),
                [{f"k_{n}": v for n, v in zip(names, key, strict=True)} for key in emptied],
            )
