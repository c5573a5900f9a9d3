"""The whole book as N local worker processes, one partition each (``workers=N``).

Workers are spawned (no inherited engines or sockets), each builds an application of the
parent's own class on the parent's settings and closes its loan-id range with a
``BulkCloser``; progress and the outcome come back over a queue. The parent holds the
whole-book lock throughout and advances the clock only when every worker reported done: a
worker that fails or is killed fails the run, and a rerun finishes it (closed loans post
nothing twice).
"""

from __future__ import annotations

import multiprocessing
import queue as queue_module
from datetime import date
from typing import TYPE_CHECKING, Any

from ledger.eod.bulk import BulkCloser, Closed, EndOfDayFailed, Progress
from ledger.eod.partition import WHOLE_BOOK, Partition

if TYPE_CHECKING:
    from ledger.app.application import LoanLedger


def run_workers(app: LoanLedger, through: date, workers: int, progress: Progress | None) -> Closed:
    """Run the whole book as ``workers`` processes, one loan-id range each, each with its own
    engine. Returns when all are done; raises if any failed (the clock is then left alone)."""
    context = multiprocessing.get_context("spawn")
    messages: Any = context.Queue()
    settings = app.settings.model_dump()
    processes = [
        context.Process(
            target=_worker,
            name=f"eod-worker-{p.label}",
            args=(type(app), settings, through, p.number, p.count, messages),
        )
        for p in WHOLE_BOOK.split(workers)
    ]
    for process in processes:
        process.start()
    results: dict[int, Closed] = {}
    failures: list[str] = []
    while len(results) + len(failures) < workers:
        try:
            kind, number, *payload = messages.get(timeout=0.5)
        except queue_module.Empty:
            if all(p.exitcode is not None for p in processes):
                break  # every worker is gone; one that was killed never reported
            continue
        if kind == "progress" and progress:
            progress(payload[0])  # loan-days
        elif kind == "done":
            results[number] = Closed(*payload)
        elif kind == "failed":
            failures.append(f"partition {number}/{workers}: {payload[0]}")
    for process in processes:
        process.join()
    missing = [p.name for p in processes if p.exitcode != 0]
    if failures or missing or len(results) < workers:
        raise EndOfDayFailed(
            "end of day failed in a worker (" + "; ".join(failures or missing) + "); the"
            " clock was not advanced — rerun: closed loans post nothing twice",
            field="workers",
            rule="all_partitions_done",
        )
    total = Closed()
    for closed in results.values():
        total += closed
    return total


def _worker(
    app_class: type[LoanLedger],
    settings: dict[str, Any],
    through: date,
    number: int,
    count: int,
    messages: Any,
) -> None:
    from ledger.settings import Settings

    app = app_class(Settings(**settings))
    try:
        closed = BulkCloser(app).close(
            through, Partition(number, count), lambda n: messages.put(("progress", number, n))
        )
        messages.put(("done", number, closed.loans, closed.loan_days, closed.events))
    except Exception as e:  # reported to the parent, which fails the run
        messages.put(("failed", number, f"{type(e).__name__}: {e}"))
        raise SystemExit(1) from None
    finally:
        app.close()
        app.engine.dispose()
