"""Portfolio report latency over a large book on PostgreSQL.

    python bench/portfolio.py [LOANS]      # default 100,000 loans

Seeds LOANS loans (80% CNY, 20% USD; 75% active, 20% closed, 5% written off; a spread of DPD
with a transition history each) straight into the balances and delinquency read-model tables
of a fresh database, derives the summary tables those projections keep, then times
``portfolio_report`` 12 times. The report reads only the summary tables (a few dozen rows), so
its latency does not grow with the book. The database is dropped at the end.
"""

import os
import random
import secrets
import statistics
import sys
import time
import uuid
from datetime import date, timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from domain.delinquency import classify
from ledger.persistence import migrations
from projections.balances import AMOUNTS, loan_balances
from projections.delinquency import delinquency_transitions, loan_delinquency
from projections.portfolio import portfolio_report

base = make_url(
    os.environ.get(
        "LEDGER_BENCH_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
    )
)
name = f"ledger_bench_portfolio_{secrets.token_hex(3)}"
admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
with admin.connect() as c:
    c.execute(text(f'CREATE DATABASE "{name}"'))
url = base.set(database=name).render_as_string(hide_password=False)
migrations.upgrade(url)
engine = create_engine(url)
rnd = random.Random(7)
N = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
today = date(2026, 12, 15)
bal, dq, tr = [], [], []
pos = 0
for i in range(N):
    lid = str(uuid.UUID(int=rnd.getrandbits(128)))
    cur = "CNY" if rnd.random() < 0.8 else "USD"
    disb = today - timedelta(days=rnd.randint(30, 720))
    status = rnd.choices(["active", "closed", "written_off"], [0.75, 0.2, 0.05])[0]
    dpd = 0 if rnd.random() < 0.8 else rnd.choice([5, 20, 45, 75, 100, 130, 170, 250, 300, 400])
    c = classify(dpd, written_off=status == "written_off")
    principal = Decimal(rnd.randint(1000, 500000))
    row = {k: Decimal(0) for k in AMOUNTS}
    row.update(
        loan_id=lid,
        borrower_id=f"B{i}",
        currency=cur,
        status=status,
        principal_outstanding=principal if status == "active" else 0,
        principal_not_due=principal,
        disbursed=principal,
        last_business_date=today,
        position=i,
    )
    bal.append(row)
    # a history: disbursed, then a walk through the buckets, then maybe terminal
    day, prev, last = disb, None, None
    hist = [("disbursed", classify(0), "M0")]
    for d in range(1, dpd + 1, 30):
        hist.append(("reclassified", classify(d), classify(d).bucket))
    if status != "active":
        hist.append((status, c, status))
    rows = []
    for kind, cl, roll in hist:
        pos += 1
        rows.append(
            {
                "loan_id": lid,
                "position": pos,
                "business_date": day,
                "kind": kind,
                "from_bucket": prev.bucket if prev else None,
                "to_bucket": cl.bucket,
                "from_category": prev.category.value if prev else None,
                "to_category": cl.category.value,
                "from_stage": prev.stage if prev else None,
                "to_stage": cl.stage,
                "dpd": cl.dpd,
                "roll_state": roll,
                "valid_until": None,
            }
        )
        prev = cl
        day = day + timedelta(days=rnd.randint(15, 40))
    for a, b in pairwise(rows):
        a["valid_until"] = b["business_date"]
    tr.extend(rows)
    dq.append(
        {
            "loan_id": lid,
            "status": status,
            "currency": cur,
            "principal_outstanding": principal if status == "active" else 0,
            "roll_state": hist[-1][2],
            "rolled_through": None,
            "rolled_state": None,
            "dpd": dpd,
            "bucket": c.bucket,
            "five_category": c.category.value,
            "ifrs9_stage": c.stage,
            "classified_dpd": dpd,
            "oldest_unpaid_due_date": None,
            "overdue_since": None,
            "penalty_fees_unpaid": 0,
            "as_of": today,
            "observation_until": None,
            "last_transition": pos,
            "last_business_date": today,
            "position": i,
        }
    )
with engine.begin() as conn:
    for t, rows in ((loan_balances, bal), (loan_delinquency, dq), (delinquency_transitions, tr)):
        for s in range(0, len(rows), 10000):
            conn.execute(t.insert(), rows[s : s + 10000])
    conn.execute(text("INSERT INTO ledger_clock VALUES (1, '2026-12-15')"))
    # The summaries the projections keep, derived here from the seeded per-loan rows.
    amounts = ", ".join(f"sum({a})" for a in AMOUNTS)
    conn.execute(
        text(
            f"INSERT INTO balances_summary SELECT status, currency, count(*), "
            f"{amounts} FROM loan_balances GROUP BY status, currency"
        )
    )
    conn.execute(
        text(
            "INSERT INTO delinquency_summary SELECT currency, bucket, five_category, "
            "ifrs9_stage, count(*), sum(principal_outstanding) FROM loan_delinquency "
            "WHERE status = 'active' GROUP BY 1, 2, 3, 4"
        )
    )
    for m1, m2 in (("2026-09-30", "2026-10-31"), ("2026-10-31", "2026-11-30")):
        conn.execute(
            text(f"""
            INSERT INTO delinquency_roll_counts
            SELECT DATE '{m2}', f, t, count(*) FROM (
              SELECT loan_id,
                max(CASE WHEN business_date <= '{m1}'
                         AND (valid_until IS NULL OR valid_until > '{m1}')
                    THEN roll_state END) f,
                max(CASE WHEN valid_until IS NULL OR valid_until > '{m2}' THEN roll_state END) t
              FROM delinquency_transitions WHERE business_date <= '{m2}'
              AND (valid_until IS NULL OR valid_until > '{m1}') GROUP BY loan_id) s
            WHERE f IS NOT NULL AND f NOT IN ('closed', 'written_off') GROUP BY f, t""")
        )
with engine.connect() as conn:
    conn.execute(text("ANALYZE"))
    conn.commit()
print("transitions:", len(tr))
times = []
# The seeded book has no ledger clock: as of yesterday, as the ledger serves it before a close.
closed_through = date.today() - timedelta(days=1)
with engine.connect() as conn:
    for _ in range(12):
        t0 = time.perf_counter()
        rep = portfolio_report(conn, closed_through=closed_through)
        times.append((time.perf_counter() - t0) * 1000)
print(
    f"portfolio_report over {N:,} loans: ms min {min(times):.1f} "
    f"median {statistics.median(times):.1f} max {max(times):.1f}"
)
print(rep.totals["npl_ratio"], rep.totals["roll_rates"]["from_loans"])
with engine.connect() as conn:
    print(
        "summary rows:",
        conn.execute(text("select count(*) from delinquency_summary")).scalar(),
        conn.execute(text("select count(*) from balances_summary")).scalar(),
        conn.execute(text("select count(*) from delinquency_roll_counts")).scalar(),
    )
engine.dispose()
with admin.connect() as c:
    c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
