"""A JSONL batch of commands, line by line (``ledger submit``; the HTTP batch endpoint next).

Each line is one JSON object. A line that fails — not JSON, not an object, a duplicate key, a
command the ledger refuses — is reported on its own and the rest of the batch goes on; the
outcome of every line is one JSON result on the output. Rerunning a batch is safe: every
command has its idempotency key, so lines already recorded answer with their first outcome.
Reading the lines (a file, standard input) is the face's part.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import IO, Any

from sqlalchemy.exc import OperationalError

from domain.errors import LedgerError, ValidationError
from ledger.app.commands import parse_command

Lines = Iterator[tuple[int, str]]


class BadText(str):
    """A line a face could not decode: its text is the reason, reported on its line."""


def parse_line(text: str) -> Any:
    """One line's JSON: an object, no duplicate keys, no NaN or Infinity."""
    if isinstance(text, BadText):
        raise ValidationError(str(text), field="line", rule="utf8_text")
    text = text.rstrip("\r\n")
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        cut = e.pos >= len(text) or e.msg.startswith("Unterminated")
        truncated = " (the line ends too early: is it cut off?)" if cut else ""
        raise ValidationError(
            f"not valid JSON at column {e.colno}: {e.msg}{truncated}", field="line", rule="json"
        ) from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise ValidationError(
                f"{key} is given twice in one command", field=key, rule="duplicate_key"
            )
        data[key] = value
    return data


def _no_constant(name: str) -> Any:
    raise ValidationError(
        f"{name} is not a JSON value; amounts are decimal strings", field="line", rule="json"
    )


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
            out.write(
                json.dumps({"line": number, "ok": False, **e.as_dict()}, ensure_ascii=False) + "\n"
            )
        except OperationalError:
            raise
        except Exception as e:  # a bug: reported on its line, the batch goes on
            failures["failed"] += 1
            out.write(
                json.dumps(
                    {
                        "line": number,
                        "ok": False,
                        "error": type(e).__name__,
                        "field": None,
                        "rule": "internal",
                        "message": f"internal error: {e}",
                    }
                )
                + "\n"
            )
        out.flush()
    return failures
