"""Projection rebuild throughput on PostgreSQL, beside the raw ordered-scan rate of the log.

    python bench/rebuild.py                      # ~1M events: 4,000 loans × 250 business days
    python bench/rebuild.py --loans 8000 --days 250 --keep
    LEDGER_BENCH_POSTGRES_URL=postgresql+psycopg2://user@host/db python bench/rebuild.py

It creates a fresh database (dropped afterwards unless --keep), migrates it, and seeds a
realistic log through the domain: loans disbursed over the first weeks, one business day closed
for every loan at a time (so the log interleaves loans as a real one does), installments paid on
time, late or not at all. Then, in the same run, it measures:

* scan: ``SELECT … FROM ledger_events WHERE id > :after ORDER BY id LIMIT :batch`` over the
  whole log, read as the runner reads it (``EventLog.read``), without decoding or writing — the
  raw ceiling; also the same query through SQLAlchemy Core rows, comparable with older runs;
* rebuild: ``ProjectionRunner.rebuild(name)`` (the ledger's runner, as ``ledger.bootstrap``
  wires it) for each projection (replay into fresh tables and
  swap), events/s and its ratio to the scan rate.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import sys
import time
from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from domain.loan import Loan
from domain.loan.state import LoanStatus
from domain.terms import LoanTerms
from ledger.app.application import LoanLedger
from ledger.bootstrap import build_ledger
from ledger.persistence import migrations
from ledger.persistence.log import EventLog
from ledger.persistence.tables import events
from ledger.settings import Settings

DEFAULT_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
START = date(2025, 1, 6)


def create_database(base: str) -> tuple[str, str]:
    url = make_url(base)
    name = f"ledger_bench_{secrets.token_hex(3)}"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False), name


def drop_database(base: str, name: str) -> None:
    admin = create_engine(make_url(base).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def seed(app: LoanLedger, loans: int, days: int, rng: random.Random) -> int:
    """Build the loans in memory and save one business day of the whole book at a time."""
    book: list[tuple[Loan, str]] = []
    for n in range(loans):
        terms = LoanTerms.create(
            principal=str(rng.randrange(10, 500) * 1000),
            currency="CNY",
            annual_rate=rng.choice(("0.0435", "0.08", "0.12", "0.18")),
            term=rng.choice((12, 24, 36)),
            method=rng.choice(("annuity", "equal_principal")),
            day_count="ACT/365F",
            product=app.settings.product_terms(),
        )
        on = START + timedelta(days=n % 20)
        loan = Loan.apply_for(borrower_id=f"B{n:07d}", terms=terms, business_date=on)
        loan.approve(on)
        loan.disburse(on)
        profile = rng.choices(("on_time", "late", "defaulter"), (80, 15, 5))[0]
        book.append((loan, profile))
    saved = 0
    started = time.perf_counter()
    for day in range(days):
        today = START + timedelta(days=day)
        for loan, profile in book:
            if (
                loan.status != LoanStatus.ACTIVE
                or loan.disbursed_on is None
                or loan.disbursed_on > today
            ):
                continue
            due = [i for i in loan.future() if i.due_date == today]
            late = [
                i for i in loan.billed() if (today - i.due_date).days == 20 and not i.is_settled
            ]
            if (due and profile == "on_time") or (late and profile == "late"):
                loan.close_day(today - timedelta(days=1))
                amount = loan.arrears_due() + sum((i.total for i in due), Decimal(0))
                if amount > 0:
                    loan.receive_repayment(today, amount, "CNY", "bench")
            loan.close_day(today)
        recordings = app.save(*(loan for loan, _ in book))
        saved += len(recordings)
        if day % 25 == 0:
            rate = saved / (time.perf_counter() - started)
            print(f"  seeded day {day}/{days}: {saved:,} events ({rate:,.0f}/s)", flush=True)
    return saved


def scan_rate(app: LoanLedger, batch: int, *, core: bool = False) -> tuple[int, float]:
    """Rows/s of the runner's own read of the log (``EventLog.read``), or with ``core`` of the same
    query through SQLAlchemy Core result rows (how the runner read until 2026-12)."""
    c = events.c
    log = EventLog(app.engine)
    after, rows, started = 0, 0, time.perf_counter()
    with app.engine.connect() as conn:
        while True:
            if core:
                chunk: Sequence[Any] = conn.execute(
                    select(c.id, c.originator_id, c.originator_version, c.topic, c.state)
                    .where(c.id > after)
                    .order_by(c.id)
                    .limit(batch)
                ).all()
            else:
                chunk = log.read(conn, after, batch)
            if not chunk:
                break
            rows += len(chunk)
            after = chunk[-1][0]
    return rows, rows / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loans", type=int, default=4000)
    parser.add_argument("--days", type=int, default=250)
    parser.add_argument("--batch", type=int, default=20_000, help="rebuild batch size")
    parser.add_argument("--only", action="append", help="rebuild only these projections")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--url", default=os.environ.get("LEDGER_BENCH_POSTGRES_URL", DEFAULT_URL))
    args = parser.parse_args()

    url, name = create_database(args.url)
    print(f"database {name}; seeding {args.loans:,} loans × {args.days} days …", flush=True)
    try:
        migrations.upgrade(url)
        ledger = build_ledger(
            Settings(database_url=url, snapshot_interval=1_000_000, aggregate_cache_size=0)
        )
        app = ledger.app
        started = time.perf_counter()
        total = seed(app, args.loans, args.days, random.Random(7))
        print(f"seeded {total:,} events in {time.perf_counter() - started:.0f}s")
        with app.engine.begin() as conn:
            conn.execute(text("ANALYZE"))
        rows, scan = scan_rate(app, args.batch)
        print(f"raw ordered scan: {rows:,} rows at {scan:,.0f} rows/s (batch {args.batch})")
        _, core_scan = scan_rate(app, args.batch, core=True)
        print(f"  (the same scan through SQLAlchemy Core rows: {core_scan:,.0f} rows/s)")
        runner = ledger.projection_runner(rebuild_batch_size=args.batch)
        names = args.only or [p.name for p in runner.projections]
        results = []
        for projection in names:
            result = runner.rebuild(projection)
            results.append(result)
            print(
                f"rebuild {projection:<12} {result['events']:>10,} events "
                f"{result['seconds']:7.1f}s {result['events_per_second']:>9,.0f} ev/s "
                f"= {result['events_per_second'] / scan:.2f} × scan "
                f"({result['events_per_second'] / core_scan:.2f} × Core scan)"
            )
        everything = sum(r["seconds"] for r in results)
        print(
            f"all {len(results)} projections: {rows * len(results) / everything:,.0f} "
            f"projection-events/s; the log once per projection in {everything:.1f}s"
        )
    finally:
        if not args.keep:
            drop_database(args.url, name)


if __name__ == "__main__":
    main()
