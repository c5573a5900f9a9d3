"""A JSONL batch of commands (``ledger submit FILE`` or ``-`` for standard input), line by line.

Each line is one JSON object. A line that fails — not JSON, not an object, a duplicate key, a
command the ledger refuses — is reported on its own and the rest of the batch goes on; the
outcome of every line is one JSON result on the output. Rerunning a batch is safe: every
command has its idempotency key, so lines already recorded answer with their first outcome.

The file is checked before anything runs: a directory, an unreadable file or one that is not
UTF-8 text (a binary file) is one clear error naming the file. A UTF-8 byte-order mark, as
some editors write, is skipped.
"""

from __future__ import annotations

import codecs
import json
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from sqlalchemy.exc import OperationalError

from domain.errors import LedgerError, ValidationError
from ledger.app.commands import parse_command

SNIFF = 8192  # bytes looked at before running anything
Lines = Iterator[tuple[int, str]]


def read_batch(name: str) -> Lines:
    """The batch's lines as (line number, text); opening errors are raised here, at once."""
    if name == "-":
        return _lines(sys.stdin.buffer, "standard input")
    path = Path(name)
    if not path.exists():
        raise ValidationError(f"no such file: {name}", field="file", rule="exists")
    if path.is_dir():
        raise ValidationError(f"{name} is a directory, not a JSONL file of commands",
                              field="file", rule="file")
    try:
        stream = path.open("rb")
    except OSError as e:
        raise ValidationError(f"cannot read {name}: {e.strerror or e}", field="file",
                              rule="readable") from None
    return _lines(stream, name)


def _lines(stream: IO[bytes], name: str) -> Lines:
    head = stream.peek(SNIFF)[:SNIFF] if hasattr(stream, "peek") else b""
    _check_text(head, name)
    return _decoded(stream, name)


def _check_text(head: bytes, name: str) -> None:
    if b"\x00" in head:
        raise ValidationError(f"{name} is not a text file (it holds NUL bytes): expected JSON"
                              " Lines, one command per line", field="file", rule="utf8_text")
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError as e:
        raise ValidationError(f"{name} is not UTF-8 text (byte {head[e.start]:#04x} at offset"
                              f" {e.start}): expected JSON Lines, one command per line",
                              field="file", rule="utf8_text") from None


def _decoded(stream: IO[bytes], name: str) -> Lines:
    with stream:
        for number, raw in enumerate(stream, 1):
            if number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8):]
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield number, _BadText(f"line is not UTF-8 text (byte {raw[e.start]:#04x} at"
                                       f" column {e.start + 1})")


class _BadText(str):
    """A line that could not be decoded: its text is the reason."""


def parse_line(text: str) -> Any:
    """One line's JSON: an object, no duplicate keys, no NaN or Infinity."""
    if isinstance(text, _BadText):
        raise ValidationError(str(text), field="line", rule="utf8_text")
    text = text.rstrip("\r\n")
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        cut = e.pos >= len(text) or e.msg.startswith("Unterminated")
        truncated = " (the line ends too early: is it cut off?)" if cut else ""
        raise ValidationError(f"not valid JSON at column {e.colno}: {e.msg}{truncated}",
                              field="line", rule="json") from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise ValidationError(f"{key} is given twice in one command", field=key,
                                  rule="duplicate_key")
        data[key] = value
    return data


def _no_constant(name: str) -> Any:
    raise ValidationError(f"{name} is not a JSON value; amounts are decimal strings",
                          field="line", rule="json")


def run_batch(ledger: Any, lines: Lines, out: IO[str]) -> Counter[str]:
    """Execute every line, writing one JSON result per line to ``out``; returns how many
    lines failed, by error kind. A database that cannot be reached stops the batch (every
    later line would fail the same way; what was recorded stays, and rerunning is safe)."""
    failures: Counter[str] = Counter()
    for number, text in lines:
        if not text.strip():
            continue
        try:
            result = ledger.execute(parse_command(parse_line(text)))
            out.write(json.dumps({"line": number, "ok": True, **result}) + "\n")
        except LedgerError as e:
            failures[e.kind] += 1
            out.write(json.dumps({"line": number, "ok": False, **e.as_dict()},
                                 ensure_ascii=False) + "\n")
        except OperationalError:
            raise
        except Exception as e:  # a bug: reported on its line, the batch goes on
            failures["failed"] += 1
            out.write(json.dumps({"line": number, "ok": False, "error": type(e).__name__,
                                  "field": None, "rule": "internal",
                                  "message": f"internal error: {e}"}) + "\n")
        out.flush()
    return failures
