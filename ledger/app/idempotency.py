"""Idempotency: every command's key, the hash of the rest of it, and its first outcome.

The row is written in the same transaction as the command's events, so a retry finds the first
outcome and records nothing new; the same key with a different command is refused. Rejected
commands leave no row (nothing changed), so a corrected retry with the same key is still
possible.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from domain.errors import IdempotencyKeyReused
from ledger.app.commands import Command
from ledger.persistence.tables import command_log


def request_hash(cmd: Command) -> str:
    """SHA-256 of the command without its key: what "the same command" means."""
    payload = cmd.model_dump_json(exclude={"idempotency_key"})
    return hashlib.sha256(payload.encode()).hexdigest()


def recorded(engine: Engine, cmd: Command, digest: str) -> dict[str, Any] | None:
    """The first outcome of ``cmd``'s key, or None; a different command under the key is
    ``IdempotencyKeyReused``."""
    with Session(engine) as session:
        row = session.execute(
            select(command_log.c.request_hash, command_log.c.result).where(
                command_log.c.idempotency_key == cmd.idempotency_key
            )
        ).first()
    if row is None:
        return None
    if row.request_hash != digest:
        raise IdempotencyKeyReused(
            f"idempotency key {cmd.idempotency_key!r} was already used for a different command",
            field="idempotency_key",
            rule="same_key_same_command",
        )
    result: dict[str, Any] = json.loads(row.result)
    return result


def record(session: Session, cmd: Command, digest: str, result: dict[str, Any]) -> None:
    """Write the key and its outcome in the command's own transaction."""
    session.execute(
        command_log.insert().values(
            idempotency_key=cmd.idempotency_key,
            command=result["command"],
            request_hash=digest,
            aggregate_id=result["aggregate_id"],
            result=json.dumps(result),
            recorded_at=datetime.now(UTC),
        )
    )
