"""One error hierarchy for every rule the ledger enforces.

Each error names the offending ``field`` (where there is one) and the ``rule`` it broke, so the
CLI can print it and the HTTP API can turn it into RFC 9457 problem+json without guessing.
"""

from __future__ import annotations


class LedgerError(Exception):
    """Base of every business error. ``kind`` maps to the HTTP status family."""

    kind = "invalid"

    def __init__(self, message: str, *, field: str | None = None, rule: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.rule = rule or type(self).__name__

    def as_dict(self) -> dict[str, str | None]:
        return {"error": type(self).__name__, "field": self.field, "rule": self.rule,
                "message": self.message}


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


# --- unknown things (HTTP 404) --------------------------------------------------------------


class NotFound(LedgerError):
    kind = "not_found"


class LoanNotFound(NotFound):
    pass


class ComplaintNotFound(NotFound):
    pass
