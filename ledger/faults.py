"""Fault injection for crash tests: kill this process at a named point.

``LEDGER_FAULT_CRASH=point:n`` makes the n-th pass through ``crash_point("point")`` send SIGKILL
to the process itself — no cleanup, no rollback handlers, exactly like a power cut. Unset (the
normal case) it costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

_counts: dict[str, int] = {}


def crash_point(name: str) -> None:
    spec = os.environ.get("LEDGER_FAULT_CRASH")
    if not spec:
        return
    point, _, nth = spec.partition(":")
    if point != name:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
