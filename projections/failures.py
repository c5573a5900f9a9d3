"""What a projection says when it cannot apply an event: which event, and why, in one line.

The runner (``projections.runner``) narrows a failed batch down to the first event that fails
on its own and describes it here as a ``FailedEvent``: notification id, aggregate, topic,
version, and the reason (the exception's class and the first line of its message; for a
database refusal the driver's own class, message and detail). ``ProjectionFailed`` carries one
or more of them (``catch_up`` runs every projection as far as it goes, then reports them all)
and is a ``LedgerError`` of kind ``failed``, so every face renders it as one line.
"""

from __future__ import annotations

import decimal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import MapperDeserialisationError
from sqlalchemy.exc import DBAPIError

from domain.errors import Failure

REASON_LIMIT = 300  # characters of the reason kept (a driver's detail can be long)


@dataclass(frozen=True)
class FailedEvent:
    """The first event of the log that ``projection`` cannot apply."""

    projection: str
    position: int  # notification id
    aggregate_id: str
    topic: str  # stored topic, e.g. "loan.RepaymentReceived"
    version: int  # the aggregate's version of this event
    reason: str  # "UnbalancedEntry: entry in CNY is off by 1.00"
    rebuild: bool = False  # met while rebuilding (the live tables were left as they were)

    def line(self) -> str:
        """``projection journal cannot apply event 1234 (loan.RepaymentReceived of loan
        6f1c…, version 17): UnbalancedEntry: …`` — never more than one line."""
        kind = (
            self.topic.split(".", 1)[0]
            if "." in self.topic and ":" not in self.topic
            else "aggregate"
        )
        who = (
            f"rebuild of projection {self.projection}"
            if self.rebuild
            else f"projection {self.projection}"
        )
        return _one_line(
            f"{who} cannot apply event {self.position} ({self.topic} of {kind} "
            f"{self.aggregate_id}, version {self.version}): {self.reason}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "projection": self.projection,
            "position": self.position,
            "aggregate_id": self.aggregate_id,
            "topic": self.topic,
            "version": self.version,
            "reason": self.reason,
            "rebuild": self.rebuild,
            "message": self.line(),
        }


class ProjectionFailed(Failure):
    """One or more projections stopped at an event they cannot apply.

    ``failures`` has one ``FailedEvent`` per failed projection (print ``f.line()`` for each);
    ``done`` maps every projection that ran to the notifications it applied before stopping
    (or reaching the head). The message is one line naming each failed event."""

    def __init__(
        self, failures: Sequence[FailedEvent], done: Mapping[str, int] | None = None
    ) -> None:
        self.failures = tuple(failures)
        self.done = dict(done or {})
        lines = [f.line() for f in self.failures]
        message = (
            lines[0]
            if len(lines) == 1
            else (f"{len(lines)} projections failed: " + "; ".join(lines))
        )
        super().__init__(message, rule="applies_every_event")


def describe(exc: BaseException) -> str:
    """``Class: first line of the message``, one line, at most ``REASON_LIMIT`` characters.

    A database refusal is described by the driver's error (raw COPY raises it unwrapped):
    psycopg2's class, the server's message and detail, and for COPY the row and column."""
    prefix = ""
    if isinstance(exc, MapperDeserialisationError) and exc.__cause__ is not None:
        prefix, exc = "cannot decode the stored event: ", exc.__cause__
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig
    name, text = type(exc).__name__, str(exc)
    diag = getattr(exc, "diag", None)  # psycopg2: the server's fields
    if diag is not None and getattr(diag, "message_primary", None):
        text = _first_line(diag.message_primary)
        if diag.message_detail:
            text += f" ({_first_line(diag.message_detail)})"
        context = _first_line(diag.context or "")
        if context.startswith("COPY "):
            text += f" [{context}]"
    elif isinstance(exc, decimal.DecimalException):
        name = f"decimal.{name}"
        if text.startswith("[<class 'decimal."):
            text = ""  # the signal's name is all it says
    first = _first_line(text)
    reason = f"{prefix}{name}: {first}" if first else f"{prefix}{name}"
    return reason if len(reason) <= REASON_LIMIT else reason[: REASON_LIMIT - 1] + "…"


def is_environmental(exc: BaseException) -> bool:
    """Whether a failure is the database's state rather than an event's: the connection was
    lost, the database is locked or unreachable, the server shut down or ran out of
    resources. Such failures are raised as they are, never blamed on an event.

    Matched by the DB-API's own class names (PEP 249), so no driver is imported: an
    ``OperationalError`` or ``InterfaceError`` — unless PostgreSQL's SQLSTATE says the
    statement itself broke a limit (class 54, e.g. an index row too large)."""
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig if exc.orig is not None else exc
    names = {cls.__name__ for cls in type(exc).__mro__}
    if not names & {"OperationalError", "InterfaceError"}:
        return False
    code = getattr(exc, "pgcode", None)
    return not (code and code.startswith("54"))


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _one_line(text: str) -> str:
    return " ".join(text.split())
