"""End-of-day benchmark on PostgreSQL: N active loans, one (or more) business days.

    python bench/eod.py                      # 100k loans, fresh database created and dropped
    python bench/eod.py --loans 1000000      # the 1M-loan book
    python bench/eod.py --workers 2 --days 2 --snapshot-after 1
    python bench/eod.py --url postgresql+psycopg2://postgres@127.0.0.1:5432/postgres

Seeding goes through the domain, but cheaply: a few dozen template loans (different
principals, rates, terms, day counts, some already overdue) are applied for, approved,
disbursed ``--age`` days before the bench day and closed through the day before it by
``Loan.close_day``; their encoded events are then replicated under fresh uuid4 loan ids and
inserted through the application's recorder in large batches (with the loan directory rows).

Then each bench day runs ``Ledger.close_business_days`` (the ledger built by
``ledger.bootstrap``, as the CLI builds it) in a fresh child process, so its peak RSS is the
EOD's own, not the seeding's, and reports loans/s, events/s and peak RSS. In the same run the
raw PostgreSQL COPY rate is measured: the rows that day's EOD appended are COPYed (psycopg2
``copy_expert``, text format) into a scratch table shaped like ``ledger_events`` (same columns,
same unique index), and the EOD's events/s is printed as a ratio of it.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import queue
import random
import resource
import secrets
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

from domain.loan import Loan
from domain.terms import LoanTerms
from ledger.bootstrap import build_ledger
from ledger.persistence import migrations
from ledger.persistence.tables import ledger_clock, loan_directory
from ledger.settings import Settings

DEFAULT_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
BENCH_DAY = date(2026, 6, 1)


def templates(settings: Settings, count: int, age: int, rng: random.Random) -> list[Loan]:
    """Template loans through the domain: disbursed ``age`` days before the bench day and
    closed through the day before it; about one in eight has an installment already overdue."""
    product = settings.product_terms()
    disbursed = BENCH_DAY - timedelta(days=age)
    loans = []
    for n in range(count):
        terms = LoanTerms.create(
            principal=str(rng.choice([3000, 8000, 20000, 50000, 120000, 300000])),
            currency="CNY",
            annual_rate=rng.choice(["0.0435", "0.08", "0.12", "0.18", "0.24"]),
            term=rng.choice([3, 6, 12, 24, 36, 60]),
            method=rng.choice(["annuity", "equal_principal"]),
            day_count=rng.choice(["ACT/365F", "ACT/360", "30/360", "ACT/ACT ISDA"]),
            product=product,
        )
        loan = Loan.apply_for(
            borrower_id=f"T{n}", terms=terms, business_date=disbursed - timedelta(days=2)
        )
        loan.approve(disbursed - timedelta(days=1))
        overdue = n % 8 == 0 and age > 5
        first_due = disbursed + timedelta(days=age - 3 if overdue else 30 + age)
        if not overdue and first_due > disbursed + timedelta(days=62):
            first_due = disbursed + timedelta(days=62)
        loan.disburse(disbursed, first_due=first_due)
        loan.close_day(BENCH_DAY - timedelta(days=1))
        loans.append(loan)
    return loans


def seed(url: str, loans: int, age: int, batch: int) -> float:
    started = time.perf_counter()
    settings = Settings(database_url=url)
    ledger = build_ledger(settings)
    app = ledger.app  # the event store itself: events are inserted through its recorder
    rng = random.Random(7)
    models = templates(settings, 48, age, rng)
    encoded = []
    for model in models:
        events = model.collect_events()
        encoded.append((model, [app.mapper.to_stored_event(e) for e in events]))
    done = 0
    while done < loans:
        size = min(batch, loans - done)
        stored, directory = [], []
        for _ in range(size):
            model, events = encoded[rng.randrange(len(encoded))]
            loan_id = uuid4()
            stored.extend(
                type(e)(
                    originator_id=loan_id,
                    originator_version=e.originator_version,
                    topic=e.topic,
                    state=e.state,
                )
                for e in events
            )
            directory.append(
                {
                    "loan_id": str(loan_id),
                    "borrower_id": model.borrower_id,
                    "status": "active",
                    "currency": "CNY",
                    "principal": model.terms.principal,
                    "applied_on": model.applied_on,
                    "updated_at": BENCH_DAY - timedelta(days=age),
                }
            )
        with app.transaction() as session:
            app.recorder.insert_events(stored)
            session.execute(insert(loan_directory), directory)
        done += size
        print(f"\r  seeded {done:,}/{loans:,} loans", end="", flush=True)
    with app.transaction() as session:
        session.execute(
            insert(ledger_clock).values(id=1, closed_through=BENCH_DAY - timedelta(days=1))
        )
    print()
    ledger.close()
    with create_engine(url).connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()
    return time.perf_counter() - started


def eod_child(url: str, through: date, options: dict[str, Any], results: Any) -> None:
    ledger = build_ledger(Settings(database_url=url, **options["settings"]))
    if options.get("profile"):
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
    cpu_before = _cpu_seconds()
    summary = ledger.close_business_days(through, workers=options["workers"])
    cpu = _cpu_seconds() - cpu_before
    if options.get("profile"):
        profiler.disable()
        profiler.dump_stats("eod.prof")  # for pstats / snakeviz
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across fork+exec, so a spawned child
    # would report the bench parent's size. Workers: their own ru_maxrss (spawned from this
    # small process).
    rss_mb = peak_rss_mb()
    child_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    results.put((summary.loans, summary.events, summary.seconds, max(rss_mb, child_mb), cpu))


def _cpu_seconds() -> float:
    """CPU time of this process and its finished workers (user + system)."""
    own, workers = (
        resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


def peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_day(
    url: str, through: date, options: dict[str, Any]
) -> tuple[int, int, float, float, float]:
    context = multiprocessing.get_context("spawn")
    results: Any = context.Queue()
    child = context.Process(target=eod_child, args=(url, through, options, results))
    child.start()
    while True:
        try:
            outcome: tuple[int, int, float, float, float] = results.get(timeout=1)
            break
        except queue.Empty:
            if not child.is_alive():
                raise SystemExit(f"the EOD process died with exit code {child.exitcode}") from None
    child.join()
    return outcome


def copy_rate(url: str, after_id: int) -> tuple[int, float]:
    """COPY the rows EOD appended (id > after_id) into a scratch table shaped like
    ledger_events; returns (rows, seconds) of the COPY and its commit alone."""
    engine = create_engine(url)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("DROP TABLE IF EXISTS bench_copy_events")
        cur.execute(
            "CREATE TABLE bench_copy_events (id bigserial PRIMARY KEY, originator_id uuid"
            " NOT NULL, originator_version bigint NOT NULL, topic text NOT NULL,"
            " state bytea NOT NULL)"
        )
        cur.execute(
            "CREATE UNIQUE INDEX bench_copy_events_aggregate_idx ON bench_copy_events"
            " (originator_id, originator_version)"
        )
        raw.commit()
        cur.execute(
            "SELECT originator_id, originator_version, topic, state FROM ledger_events"
            " WHERE id > %s ORDER BY id",
            (after_id,),
        )
        buffer = io.StringIO()
        rows = 0
        for originator_id, version, topic, state in cur:
            buffer.write(f"{originator_id}\t{version}\t{topic}\t\\\\x{bytes(state).hex()}\n")
            rows += 1
        buffer.seek(0)
        started = time.perf_counter()
        cur.copy_expert(
            "COPY bench_copy_events (originator_id, originator_version, topic, state) FROM STDIN",
            buffer,
        )
        raw.commit()
        seconds = time.perf_counter() - started
        cur.execute("DROP TABLE bench_copy_events")
        raw.commit()
        return rows, seconds
    finally:
        raw.close()
        engine.dispose()


def max_event_id(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        value = conn.execute(text("SELECT coalesce(max(id), 0) FROM ledger_events")).scalar_one()
    engine.dispose()
    return int(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--url",
        default=DEFAULT_URL,
        help="server URL; a fresh database is created beside it and dropped",
    )
    parser.add_argument("--loans", type=int, default=100_000)
    parser.add_argument(
        "--age",
        type=int,
        default=10,
        help="days since disbursement (events each loan has before the run)",
    )
    parser.add_argument("--days", type=int, default=1, help="business days to close")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--chunk", type=int, default=500)
    parser.add_argument("--snapshot-after", type=int, default=30)
    parser.add_argument("--seed-batch", type=int, default=5000)
    parser.add_argument(
        "--profile",
        type=int,
        nargs="?",
        const=1,
        default=0,
        metavar="DAY",
        help="cProfile one bench day (the first without a number)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args()

    base = make_url(args.url)
    name = f"ledger_bench_{secrets.token_hex(4)}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.set(database=name).render_as_string(hide_password=False)
    try:
        migrations.upgrade(url)
        print(f"database {name}: seeding {args.loans:,} active loans, {args.age} days old")
        seeded = seed(url, args.loans, args.age, args.seed_batch)
        print(f"  seeded in {seeded:.1f}s")
        options = {
            "workers": args.workers,
            "profile": False,
            "settings": {"eod_chunk_size": args.chunk, "eod_snapshot_after": args.snapshot_after},
        }
        for day in range(args.days):
            through = BENCH_DAY + timedelta(days=day)
            options["profile"] = args.profile == day + 1
            before = max_event_id(url)
            loans, events, seconds, rss, cpu = run_day(url, through, options)
            copy_rows, copy_seconds = copy_rate(url, before)
            ours, copy = events / seconds, copy_rows / copy_seconds
            print(
                f"EOD {through}: {loans:,} loans, {events:,} events in {seconds:.1f}s — "
                f"{loans / seconds:,.0f} loans/s, {ours:,.0f} events/s, peak RSS "
                f"{rss:,.0f} MB, EOD CPU {cpu:.1f}s ({cpu / seconds:.0%} of wall); "
                f"COPY of the same {copy_rows:,} rows: {copy:,.0f} rows/s "
                f"→ ratio {ours / copy:.3f} (workers={args.workers}, chunk={args.chunk}, "
                f"snapshot_after={args.snapshot_after})",
                flush=True,
            )
    finally:
        if not args.keep:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
