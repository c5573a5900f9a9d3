"""End of day: close business days for the whole book, chunk by chunk.

Faces reach it through ``ledger.service.Ledger.close_business_days``. Inside:

- ``close``: the use case and the run — a day already closed is nothing to do; otherwise under
  the lock, record the run, close in one process, N local workers or one partition, then
  advance the clock once every partition of the date is done; ``EodSummary``.
- ``bulk``: ``BulkCloser``, which loads a chunk of loans, lets ``Loan.close_day`` decide and
  appends the chunk's events in one transaction, re-deciding only loans a command moved.
- ``lock``: ``EodLock``, one end of day at a time across processes and hosts.
- ``partition``: slices of the loan-id space and the loan-days a run will close.
- ``workers``: the whole book as N local processes.

The chunk's SQL (load, stored versions, snapshot replacement, commit hooks) lives in
``ledger.persistence.chunks``, the run records and the clock's advance in
``ledger.persistence.eod_runs``. Nothing in ``ledger.app`` imports this package.
"""

from ledger.eod.bulk import BulkCloser, EndOfDayFailed
from ledger.eod.close import (
    EodSummary,
    check_days_ahead,
    close_business_days,
    days_ahead,
    run_end_of_day,
)
from ledger.eod.lock import EndOfDayRunning, EodLock
from ledger.eod.partition import (
    WHOLE_BOOK,
    Partition,
    count_active,
    count_loan_days,
    parse_partition,
)

__all__ = [
    "WHOLE_BOOK",
    "BulkCloser",
    "EndOfDayFailed",
    "EndOfDayRunning",
    "EodLock",
    "EodSummary",
    "Partition",
    "check_days_ahead",
    "close_business_days",
    "count_active",
    "count_loan_days",
    "days_ahead",
    "parse_partition",
    "run_end_of_day",
]
