"""How a terminal shows the ledger's figures: tables that never cut a number.

``fit_table`` lays out a rich table for the console's width: numbers, dates and ids are never
wrapped or truncated; text columns wrap; when even that does not fit, the lowest-priority
columns are left out and named, so the reader knows to ask for ``--format csv|json``. Amounts
arrive already in their currency's minor units (``ledger.app.views.money``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.table import Table
from rich.text import Text

from ledger.app.views import plain


def cell(value: Any) -> str:
    """A table cell: no "None", booleans as yes/no, everything else as ``plain`` text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(plain(value))


# ------------------------------------------------------------------------------- tables
@dataclass(frozen=True)
class Column:
    """A table column: ``numeric`` ones are right-aligned and never wrapped, ``keep`` ones
    (ids, dates, codes) are never wrapped either; lower ``priority`` is kept first."""

    name: str
    header: str | None = None
    numeric: bool = False
    keep: bool = False
    priority: int = 50

    @property
    def title(self) -> str:
        # Underscores become spaces so a long header may wrap over two lines.
        return (self.header or self.name).replace("_", " ")


BORDER = 3  # rich's default box: a vertical rule and one space of padding either side
TEXT_MIN = 10  # a wrapping text column is given at least this many characters


def fit_table(
    title: str | None,
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    width: int,
    **table_options: Any,
) -> tuple[Table, list[Column]]:
    """The table that fits ``width`` characters, and the columns left out to make it fit."""
    needed = {}
    for index, column in enumerate(columns):
        cells = [row[index] for row in rows]
        longest_word = max((len(w) for w in column.title.split()), default=1)
        natural = max([len(c) for c in cells] + [longest_word])
        if column.numeric or column.keep:
            needed[column.name] = natural
        else:
            words = max((len(w) for c in cells for w in c.split()), default=1)
            needed[column.name] = min(natural, max(TEXT_MIN, min(words, 24), longest_word))
    shown = list(columns)
    while len(shown) > 1 and sum(needed[c.name] + BORDER for c in shown) + 1 > width:
        drop = max(shown[1:], key=lambda c: (c.priority, columns.index(c)))
        shown.remove(drop)
    table = Table(title=title, **table_options)
    for column in shown:
        # The header may wrap at its spaces even where the cells may not.
        header = Text(column.title, no_wrap=False, overflow="fold")
        table.add_column(
            header,
            justify="right" if column.numeric else "left",
            no_wrap=column.numeric or column.keep,
            min_width=needed[column.name],
            max_width=needed[column.name] if column.numeric or column.keep else None,
            overflow="fold",
        )
    indexes = [columns.index(c) for c in shown]
    for row in rows:
        table.add_row(*(row[i] for i in indexes))
    return table, [c for c in columns if c not in shown]
