"""One error hierarchy for every rule the ledger enforces.

Each error names the offending ``field`` (where there is one) and the ``rule`` it broke, so the
CLI can print it and the HTTP API can turn it into RFC 9457 problem+json without guessing.
"""

from __future__ import annotations

from typing import Any, ClassVar

#: The closed set of error kinds; every face maps each of them (CLI exit codes, HTTP statuses).
KINDS = frozenset({"invalid", "conflict", "not_found", "forbidden", "unauthorized", "failed"})


class LedgerError(Exception):
    """Base of every business error. ``kind`` maps to the HTTP status family."""

    kind: ClassVar[str] = "invalid"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind not in KINDS:
            raise TypeError(f"{cls.__name__}.kind {cls.kind!r} is not one of {sorted(KINDS)}")

    def __init__(self, message: str, *, field: str | None = None, rule: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.rule = rule or type(self).__name__

    def as_dict(self) -> dict[str, str | None]:
        return {
            "error": type(self).__name__,
            "field": self.field,
            "rule": self.rule,
            "message": self.message,
        }


# --- bad input (HTTP 422) -------------------------------------------------------------------


class ValidationError(LedgerError, ValueError):
    """The command's input breaks a rule on its own, whatever the loan's state.

    Also a ValueError, so pydantic validators can raise it and keep its rule."""


class InvalidAmount(ValidationError):
    pass


class TooManyDecimals(ValidationError):
    pass


class UnknownCurrency(ValidationError):
    pass


class CurrencyMismatch(ValidationError):
    pass


class UnknownDayCount(ValidationError):
    pass


class UnknownMethod(ValidationError):
    pass


class InvalidTerm(ValidationError):
    pass


class InvalidRate(ValidationError):
    pass


class RateAboveCap(ValidationError):
    pass


class InvalidDate(ValidationError):
    pass


class InvalidWaterfall(ValidationError):
    pass


# --- state conflicts (HTTP 409) -------------------------------------------------------------


class StateConflict(LedgerError):
    """The command is well formed but the aggregate's state does not allow it."""

    kind = "conflict"


class InvalidTransition(StateConflict):
    pass


class LoanNotActive(StateConflict):
    pass


class OverpaymentNotAllowed(StateConflict):
    pass


class ComplaintStateError(StateConflict):
    pass


class ConcurrencyConflict(StateConflict):
    """Another writer kept changing the same aggregate; retries were exhausted."""


class IdempotencyKeyReused(StateConflict):
    """The same idempotency key arrived with a different command."""


class AlreadyExists(StateConflict):
    """A command names a new aggregate id that is already taken."""


# --- unknown things (HTTP 404) --------------------------------------------------------------


class NotFound(LedgerError):
    kind = "not_found"


class LoanNotFound(NotFound):
    pass


class ComplaintNotFound(NotFound):
    pass


# --- the ledger could not do it (a bug or the environment; HTTP 500/503) ----------------------


class Failure(LedgerError):
    """Not the caller's fault: an invariant broke (a bug) or a dependency failed."""

    kind = "failed"


class InvariantViolated(Failure):
    """The domain was about to record an event whose parts do not add up (a bug, never input):
    nothing is recorded."""
