"""`ledger eod` killed with SIGKILL at any point, then rerun, ends exactly where an
uninterrupted run ends: the same events (topic, business date, amounts) for every loan, the
same balances, the same clock — nothing posted twice, nothing lost.

The kill comes from the process itself (``LEDGER_FAULT_CRASH=point:n``, see ledger/faults.py):
no exception handlers, no rollback, no lock release — like a power cut. The points, in the
order a chunk meets them: ``eod.before_write`` (chunk decided, nothing written),
``eod.before_commit`` (the chunk's rows inserted, the COMMIT not sent), ``eod.after_commit``
(committed, fresh snapshots not yet written), and ``eod.before_clock`` (every chunk done, the
clock not moved).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from ledger.service import Ledger
from tests.factories import balances_of
from tests.integration.test_eod_bulk import THROUGH, book_varied_portfolio, event_log

OpenLoan = Callable[..., UUID]
Submit = Callable[..., dict[str, Any]]


def ledger_command() -> list[str]:
    script = Path(sys.executable).parent / "ledger"
    return [str(script)] if script.exists() else [sys.executable, "-m", "ledger.cli"]


@dataclass(frozen=True)
class Run:
    returncode: int
    output: str


def ledger_eod(url: str, *args: str, crash: str | None = None) -> Run:
    """`ledger eod --through THROUGH` in its own process, in chunks of two loans."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update(
        LEDGER_DATABASE_URL=url,
        LEDGER_EOD_CHUNK_SIZE="2",
        NO_COLOR="1",
        LEDGER_EOD_SNAPSHOT_AFTER="1",
    )
    if crash:
        env["LEDGER_FAULT_CRASH"] = crash
    proc = subprocess.run(
        [*ledger_command(), "eod", "--through", THROUGH.isoformat(), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return Run(proc.returncode, proc.stdout + proc.stderr)


def final_state(app: Ledger, loans: list[UUID]) -> dict[UUID, Any]:
    return {
        loan_id: (event_log(app, loan_id), balances_of(app.get_loan(loan_id))) for loan_id in loans
    }


_uninterrupted: dict[str, Any] = {}


def uninterrupted_state(
    backend: str,
    make_database_url: Callable[[], str],
    make_ledger: Callable[..., Ledger],
    open_loan: OpenLoan,
    submit: Submit,
) -> Any:
    """The final state of an uninterrupted `ledger eod` (computed once per backend: the loan
    ids are fixed, so it compares across databases)."""
    if backend not in _uninterrupted:
        url = make_database_url()
        app = make_ledger(url)
        loans = book_varied_portfolio(app, open_loan, submit)
        assert ledger_eod(url).returncode == 0
        stored = make_ledger(url)
        _uninterrupted[backend] = (final_state(stored, loans), stored.closed_through())
    return _uninterrupted[backend]


# Seven active loans in chunks of two: how many are closed when each kill lands.
CLOSED_AT_KILL = {
    "eod.before_write:2": 2,
    "eod.before_commit:1": 0,
    "eod.before_commit:3": 4,
    "eod.after_commit:2": 4,
    "eod.before_clock:1": 7,
}


@pytest.mark.parametrize("crash", list(CLOSED_AT_KILL))
def test_a_killed_end_of_day_rerun_equals_an_uninterrupted_one(
    backend: str,
    make_database_url: Callable[[], str],
    make_ledger: Callable[..., Ledger],
    open_loan: OpenLoan,
    submit: Submit,
    crash: str,
) -> None:
    # Given the same portfolio as an uninterrupted run closed
    calm = uninterrupted_state(backend, make_database_url, make_ledger, open_loan, submit)
    crashed_url = make_database_url()
    app = make_ledger(crashed_url)
    loans = book_varied_portfolio(app, open_loan, submit)
    app.engine.dispose()

    # When end of day is killed at the crash point: the chunks before it are committed,
    # the one it hit is not, and the clock has not moved
    killed = ledger_eod(crashed_url, crash=crash)
    assert killed.returncode == -signal.SIGKILL, killed.output
    seen = make_ledger(crashed_url)
    closed = sum(1 for x in seen.loan_ids("active") if seen.get_loan(x).last_closed_on == THROUGH)
    assert closed == CLOSED_AT_KILL[crash]
    assert seen.closed_through() is None

    # And when it is simply run again
    rerun = ledger_eod(crashed_url)
    assert rerun.returncode == 0, rerun.output

    # Then events, balances and clock are exactly those of the uninterrupted run
    crashed = make_ledger(crashed_url)
    assert (final_state(crashed, loans), crashed.closed_through()) == calm
    assert crashed.closed_through() == THROUGH


def test_a_worker_killed_mid_run_fails_the_run_and_a_rerun_completes_it(
    backend: str,
    make_database_url: Callable[[], str],
    make_ledger: Callable[..., Ledger],
    open_loan: OpenLoan,
    submit: Submit,
) -> None:
    calm = uninterrupted_state(backend, make_database_url, make_ledger, open_loan, submit)
    crashed_url = make_database_url()
    app = make_ledger(crashed_url)
    loans = book_varied_portfolio(app, open_loan, submit)
    app.engine.dispose()

    # When one of two workers dies before committing its second chunk
    failed = ledger_eod(crashed_url, "--workers", "2", crash="eod.before_commit:2")

    # Then the run fails with a clear message and leaves the clock alone
    assert failed.returncode == 1, failed.output
    assert "end of day failed in a worker" in " ".join(failed.output.split())
    assert "Traceback" not in failed.output
    assert make_ledger(crashed_url).closed_through() is None

    # And a rerun with two workers ends where the uninterrupted run ended
    assert ledger_eod(crashed_url, "--workers", "2").returncode == 0
    crashed = make_ledger(crashed_url)
    assert (final_state(crashed, loans), crashed.closed_through()) == calm
