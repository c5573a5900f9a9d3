"""The library transcoder's transcodings for the ledger's types.

New payloads are written by ``ledger.persistence.codec``; these let the library's transcoder
read payloads written before it (the codec falls back to it for anything without its
``{"_v":2,`` mark)."""

from __future__ import annotations

from datetime import date
from typing import Any

from eventsourcing.persistence import JSONTranscoder, Transcoder, Transcoding

from domain.loan.state import InstallmentState
from domain.terms import LoanTerms


class DateAsISO(Transcoding):
    type = date
    name = "date"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


class InstallmentStateAsDict(Transcoding):
    type = InstallmentState
    name = "installment"

    def encode(self, obj: InstallmentState) -> dict[str, Any]:
        return obj.as_dict()

    def decode(self, data: dict[str, Any]) -> InstallmentState:
        return InstallmentState.from_dict(data)


class LoanTermsAsDict(Transcoding):
    type = LoanTerms
    name = "loan_terms"

    def encode(self, obj: LoanTerms) -> dict[str, Any]:
        return obj.as_dict()

    def decode(self, data: dict[str, Any]) -> LoanTerms:
        return LoanTerms.from_dict(data)


def register_all(transcoder: Transcoder) -> None:
    assert isinstance(transcoder, JSONTranscoder)  # the library's, which keeps a registry
    transcoder.register(DateAsISO())
    transcoder.register(InstallmentStateAsDict())
    transcoder.register(LoanTermsAsDict())
