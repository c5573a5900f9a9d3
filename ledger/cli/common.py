"""What every verb of the ``ledger`` command line shares: the consoles, the one error table,
the settings and the ledger (built once per process through ``ledger.bootstrap``), parsing of
options and the three output formats.

Every error prints one line naming the field and the rule — never a traceback — and exits with
the code of its kind (``EXIT_CODES``, one entry per ``domain.errors.KINDS``).
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from enum import StrEnum
from functools import cache
from typing import TYPE_CHECKING, Any
from uuid import UUID

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from domain.errors import InvalidDate, LedgerError, ValidationError
from ledger.app.views import plain
from ledger.cli.render import Column, fit_table
from ledger.settings import Settings, load_settings

if TYPE_CHECKING:
    from ledger.service import Ledger

out = Console()
err = Console(stderr=True)

#: Every error kind (domain.errors.KINDS) and the exit code it gives.
EXIT_CODES = {
    "invalid": 2,
    "conflict": 3,
    "not_found": 4,
    "failed": 1,
    "unauthorized": 5,
    "forbidden": 6,
}
#: For ``ledger submit``: which failure's code wins when several lines fail.
SEVERITY = ("failed", "conflict", "not_found", "invalid", "unauthorized", "forbidden")
UUID_TEXT_LENGTH = 36


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


# ------------------------------------------------------------------------- errors
def one_line(text: str) -> str:
    """Text safe to print on one terminal line: newlines folded, control characters shown
    escaped (a message may echo what a user typed)."""
    text = " ".join(text.split())
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in text)


def print_error(message: str) -> None:
    # soft_wrap: one line even on a pipe, where rich would otherwise wrap at 80 columns.
    err.print(f"[bold red]error:[/] {escape(one_line(message))}", highlight=False, soft_wrap=True)


def fail(message: str, code: int) -> typer.Exit:
    print_error(message)
    return typer.Exit(code)


def describe(e: LedgerError) -> str:
    where = f" [field={e.field}, rule={e.rule}]" if e.field else f" [rule={e.rule}]"
    return e.message + where


@contextmanager
def handled() -> Iterator[None]:
    """Turn whatever goes wrong into one line and an exit code; never a traceback
    (``LEDGER_DEBUG=1`` shows one for an internal error)."""
    from click.exceptions import Abort, Exit
    from sqlalchemy.exc import OperationalError

    try:
        yield
    except (Exit, Abort, typer.Exit):
        raise
    except LedgerError as e:
        raise fail(describe(e), EXIT_CODES[e.kind]) from None
    except OperationalError as e:
        reason = str(getattr(e, "orig", e)).strip().splitlines()[0]
        raise fail(
            f"cannot open the database at {safe_url(settings().database_url)}: {reason}"
            " [field=database_url, rule=reachable]",
            1,
        ) from None
    except KeyboardInterrupt:
        raise fail("interrupted; whatever was committed stays, rerunning is safe", 130) from None
    except Exception as e:
        if os.environ.get("LEDGER_DEBUG"):
            raise
        raise fail(
            f"internal error ({type(e).__name__}: {e}); nothing more was done —"
            " please report it (LEDGER_DEBUG=1 shows the traceback)"
            " [rule=internal]",
            1,
        ) from None


# ------------------------------------------------------------- settings, ledger
@cache
def settings() -> Settings:
    """The process's settings, loaded and checked once (a bad variable: one line, exit 2)."""
    return load_settings()


@cache
def open_ledger() -> Ledger:
    """The process's ledger on the configured database, built once (it must be migrated)."""
    from ledger.bootstrap import build_ledger

    return build_ledger(settings())


def safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(the configured URL)"


# ------------------------------------------------------------------------ parsing
def parse_date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    field = option.lstrip("-").replace("-", "_")
    try:
        if len(value) == len("2026-06-10"):
            return date.fromisoformat(value)
    except ValueError:
        pass
    raise InvalidDate(
        f"{option} must be a date written YYYY-MM-DD, such as 2026-06-10; got {value!r}",
        field=field,
        rule="iso_date",
    )


def parse_uuid(value: str, field: str = "loan_id") -> UUID:
    from ledger.app.fields import UUID_TEXT

    if not UUID_TEXT.fullmatch(value):
        raise ValidationError(
            f"{value!r} is not a {field.removesuffix('_id')} id (a UUID such"
            " as 3f2504e0-4f89-41d3-9a0c-0305e82c3301)",
            field=field,
            rule="uuid",
        )
    return UUID(value)


# ------------------------------------------------------------------------ output
def write_json(data: Any) -> None:
    sys.stdout.write(json.dumps(plain(data), ensure_ascii=False, indent=2) + "\n")


def write_csv(rows: list[dict[str, Any]], columns: list[str] | None = None) -> None:
    from ledger.cli.render import cell

    if not rows:
        return
    names = columns or list(rows[0])
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(names)
    writer.writerows([cell(r.get(n)) for n in names] for r in rows)


def print_table(
    title: str | None, columns: list[Column], rows: list[list[str]], **options: Any
) -> None:
    table, left_out = fit_table(title, columns, rows, out.width, **options)
    out.print(table)
    if left_out:
        out.print(
            f"({len(left_out)} more column{'s' if len(left_out) > 1 else ''} at this"
            f" width: {', '.join(c.name for c in left_out)}; use --format csv or json,"
            " or a wider terminal)",
            style="dim",
            highlight=False,
        )


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
    )
