"""``ledger submit``: append commands from a JSON Lines file (or standard input).

The file is checked before anything runs: a directory, an unreadable file or one that is not
UTF-8 text (a binary file) is one clear error naming the file. A UTF-8 byte-order mark, as some
editors write, is skipped. Each line then runs through ``Ledger.submit``.
"""

from __future__ import annotations

import codecs
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Annotated

import typer

from domain.errors import ValidationError
from ledger.app.batch import BadText, Lines
from ledger.cli.common import EXIT_CODES, SEVERITY, err, handled, open_ledger

SNIFF = 8192  # bytes looked at before running anything


def submit(
    file: Annotated[
        str, typer.Argument(help="JSON Lines file, one command per line; - reads standard input")
    ],
) -> None:
    """Append commands from a JSONL batch; safe to rerun (each has its idempotency key).

    Prints one JSON result per line. Exits 0 when every line succeeded, else with the code of
    the most severe failure: 1 (the ledger failed) over 3 (conflict) over 4 (unknown loan or
    complaint) over 2 (bad input)."""
    with handled():
        lines = read_batch(file)
        failures = open_ledger().submit(lines, sys.stdout)
        if failures:
            worst = min(failures, key=lambda kind: SEVERITY.index(kind))
            err.print(f"{sum(failures.values())} command(s) failed", highlight=False)
            raise typer.Exit(EXIT_CODES[worst])


def read_batch(name: str) -> Lines:
    """The batch's lines as (line number, text); opening errors are raised here, at once."""
    if name == "-":
        return _lines(sys.stdin.buffer, "standard input")
    path = Path(name)
    if not path.exists():
        raise ValidationError(f"no such file: {name}", field="file", rule="exists")
    if path.is_dir():
        raise ValidationError(
            f"{name} is a directory, not a JSONL file of commands", field="file", rule="file"
        )
    try:
        stream = path.open("rb")
    except OSError as e:
        raise ValidationError(
            f"cannot read {name}: {e.strerror or e}", field="file", rule="readable"
        ) from None
    return _lines(stream, name)


def _lines(stream: IO[bytes], name: str) -> Lines:
    peek = getattr(stream, "peek", None)
    head = peek(SNIFF)[:SNIFF] if peek is not None else b""
    _check_text(head, name)
    return _decoded(stream)


def _check_text(head: bytes, name: str) -> None:
    if b"\x00" in head:
        raise ValidationError(
            f"{name} is not a text file (it holds NUL bytes): expected JSON"
            " Lines, one command per line",
            field="file",
            rule="utf8_text",
        )
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError as e:
        raise ValidationError(
            f"{name} is not UTF-8 text (byte {head[e.start]:#04x} at offset"
            f" {e.start}): expected JSON Lines, one command per line",
            field="file",
            rule="utf8_text",
        ) from None


def _decoded(stream: IO[bytes]) -> Iterator[tuple[int, str]]:
    with stream:
        for number, raw in enumerate(stream, 1):
            if number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield (
                    number,
                    BadText(
                        f"line is not UTF-8 text (byte {raw[e.start]:#04x} at column {e.start + 1})"
                    ),
                )
