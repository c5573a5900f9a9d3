"""Tables owned by the command side, beside the event store.

* ``command_log`` makes every command idempotent: it is written in the same transaction as the
  command's events, so a retry finds the first outcome and records nothing new.
* ``loan_directory`` lists loans and their lifecycle status so end of day can pick the active
  loans in loan-id order without scanning the event log. It holds no balances (those live in
  projections); it is written in the same transaction as the events that change the status.
* ``ledger_clock`` holds the ledger's own business date (the last closed business day).
* ``eod_runs`` records every end-of-day run (and each partition of a partitioned one); the clock
  advances only once every partition of a run is done. ``eod_lock`` is the lock row that keeps
  end of day single on SQLite (PostgreSQL uses advisory locks instead).
* ``scheduler_jobs`` is APScheduler's SQLAlchemyJobStore table (its exact DDL), so a run missed
  while no scheduler was up is found and caught up on the next start.

The event store tables (``ledger_events``, ``ledger_snapshots``) follow eventsourcing-sqlalchemy's
record classes and are created by the same alembic migrations.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    Unicode,
)
from sqlalchemy_utils.types.uuid import UUIDType

metadata = MetaData()

EVENTS_TABLE = "ledger_events"
SNAPSHOTS_TABLE = "ledger_snapshots"

# Mirrors eventsourcing_sqlalchemy.models.StoredEventRecord so alembic owns the DDL.
events = Table(
    EVENTS_TABLE,
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("originator_id", UUIDType(), nullable=False),
    Column("originator_version", BigInteger().with_variant(Integer(), "sqlite"), nullable=False),
    Column("topic", Text(), nullable=False),
    Column("state", LargeBinary(), nullable=False),
    Index(f"{EVENTS_TABLE}_aggregate_idx", "originator_id", "originator_version", unique=True),
)

snapshots = Table(
    SNAPSHOTS_TABLE,
    metadata,
    Column("originator_id", UUIDType(), primary_key=True),
    Column("originator_version", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("topic", Text(), nullable=False),
    Column("state", LargeBinary(), nullable=False),
)

command_log = Table(
    "command_log",
    metadata,
    Column("idempotency_key", String(200), primary_key=True),
    Column("command", String(64), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("aggregate_id", String(36), nullable=True),
    Column("result", Text(), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)

loan_directory = Table(
    "loan_directory",
    metadata,
    Column("loan_id", String(36), primary_key=True),
    Column("borrower_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("principal", Numeric(20, 4), nullable=False),
    Column("applied_on", Date(), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("loan_directory_status_idx", "status", "loan_id"),
    Index("loan_directory_borrower_idx", "borrower_id"),
)

ledger_clock = Table(
    "ledger_clock",
    metadata,
    Column("id", Integer(), primary_key=True),
    Column("closed_through", Date(), nullable=False),
)

eod_runs = Table(
    "eod_runs",
    metadata,
    Column("run_id", String(36), primary_key=True),
    Column("through", Date(), nullable=False),
    Column("partition", String(16), nullable=False),  # "k/N"; a whole-book run is "1/1"
    Column("owner", String(200), nullable=False),  # host:pid:token
    Column("status", String(16), nullable=False),  # running | done | failed
    Column("loans", BigInteger(), nullable=False),
    Column("events", BigInteger(), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Index("eod_runs_through_idx", "through", "partition", "status"),
)

eod_lock = Table(
    "eod_lock",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("acquired_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

# APScheduler 3.11's SQLAlchemyJobStore table, column for column (see schedulers/scheduler.py).
scheduler_jobs = Table(
    "scheduler_jobs",
    metadata,
    Column("id", Unicode(191), primary_key=True),
    Column("next_run_time", Float(25)),
    Column("job_state", LargeBinary(), nullable=False),
    Index("ix_scheduler_jobs_next_run_time", "next_run_time"),
)
