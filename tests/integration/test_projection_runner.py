"""The projection runner: exactly-once batches, conflicts, status, rebuild and crashes.

A small tally projection (events per loan) stands in for the read models, so these stories are
about the runner only: rows and position move together or not at all.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import ClassVar
from uuid import UUID

import pytest
from sqlalchemy import Column, Index, Integer, MetaData, String, Table, inspect, select

from ledger.service import Ledger
from projections.base import Batch, Projection, RowSet
from projections.runner import ProjectionConflict, ProjectionFailed

tally_md = MetaData()
tally_table = Table(
    "test_event_tally",
    tally_md,
    Column("loan_id", String(36), primary_key=True),
    Column("events", Integer(), nullable=False),
    Column("last_position", Integer(), nullable=False),
    Index("test_event_tally_events_idx", "events"),
)


class Tally(Projection):
    """Counts the events of each loan; a double-counted batch shows up at once."""

    name = "tally"
    tables: ClassVar[tuple[Table, ...]] = (tally_table,)
    topics = None

    def process(self, batch: Batch) -> None:
        rows = RowSet(batch.conn, batch.table("test_event_tally"))
        rows.load(str(e.originator_id) for e in batch.events)
        for event, position in zip(batch.events, batch.positions, strict=True):
            key = str(event.originator_id)
            row = rows.get(key)
            if row is None:
                rows.add({"loan_id": key, "events": 1, "last_position": position})
            else:
                row["events"] += 1
                row["last_position"] = position
                rows.changed(key)
        rows.flush()


def tally_of(app: Ledger) -> dict[str, int]:
    with app.engine.connect() as conn:
        return {r.loan_id: r.events for r in conn.execute(select(tally_table))}


def events_per_loan(ledger: Ledger) -> dict[str, int]:
    counts: dict[str, int] = {}
    for n in ledger.app.recorder.select_notifications(1, 1_000_000):
        counts[str(n.originator_id)] = counts.get(str(n.originator_id), 0) + 1
    return counts


@pytest.fixture
def book(ledger_app: Ledger, open_loan: Callable[..., UUID]) -> Ledger:
    """Given three loans with a month of closed business days (about 100 events)."""
    tally_md.create_all(ledger_app.engine)
    for n in range(3):
        open_loan(ledger_app, borrower_id=f"B{n}")
    ledger_app.close_business_days(date(2026, 2, 10))
    return ledger_app


def test_catch_up_counts_every_event_exactly_once_in_small_batches(book: Ledger) -> None:
    runner = book.projection_runner([Tally()], batch_size=7)
    done = runner.catch_up()
    assert done["tally"] == runner.head()
    assert tally_of(book) == events_per_loan(book)
    # Running again finds nothing new and changes nothing.
    assert runner.catch_up() == {"tally": 0}
    assert tally_of(book) == events_per_loan(book)


def test_new_events_are_picked_up_from_the_last_position(
    book: Ledger, open_loan: Callable[..., UUID]
) -> None:
    runner = book.projection_runner([Tally()], batch_size=50)
    runner.catch_up()
    open_loan(
        book,
        borrower_id="late-comer",
        applied_on=date(2026, 2, 11),
        approved_on=date(2026, 2, 11),
        disbursed_on=date(2026, 2, 11),
        first_due=date(2026, 3, 11),
    )
    book.close_business_days(date(2026, 2, 20))
    runner.catch_up()
    assert tally_of(book) == events_per_loan(book)


def test_status_reports_position_head_and_lag(book: Ledger) -> None:
    runner = book.projection_runner([Tally()], batch_size=10)
    [before] = runner.status()
    assert (before.position, before.lag_events) == (0, runner.head())
    assert before.lag_seconds >= 0
    runner.run_batch(runner.get("tally"))
    [after_one] = runner.status()
    assert after_one.position == 10 and after_one.lag_events == runner.head() - 10
    runner.catch_up()
    [current] = runner.status()
    assert current.lag_events == 0 and current.lag_seconds == 0


def test_a_failing_batch_writes_nothing_and_keeps_the_position(book: Ledger) -> None:
    class Exploding(Tally):
        def process(self, batch: Batch) -> None:
            super().process(batch)  # rows written inside the transaction …
            raise RuntimeError("disk on fire")  # … then the batch fails

    runner = book.projection_runner([Exploding()], batch_size=20)
    runner.ensure_tracking()
    with pytest.raises(RuntimeError):
        runner.run_batch(runner.get("tally"))
    assert runner.position("tally") == 0
    assert tally_of(book) == {}


def test_a_runner_that_read_a_stale_position_rolls_back_its_batch(
    book: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given one runner that applied the first batch,
    first = book.projection_runner([Tally()], batch_size=30)
    first.ensure_tracking()
    first.run_batch(first.get("tally"))
    counted = tally_of(book)
    # when a second runner still believes the position is 0 (it read it before the commit),
    import projections.runner as runner_module

    real_position = runner_module.read_position
    monkeypatch.setattr(runner_module, "read_position", lambda conn, name: 0)
    second = book.projection_runner([Tally()], batch_size=30)
    # then its batch fails on the position check and nothing it wrote survives,
    with pytest.raises(ProjectionConflict):
        second.run_batch(second.get("tally"))
    assert tally_of(book) == counted
    # and once it reads the real position it simply carries on.
    monkeypatch.setattr(runner_module, "read_position", real_position)
    second.catch_up()
    assert tally_of(book) == events_per_loan(book)


def test_rebuild_swaps_in_tables_equal_to_the_incremental_ones(book: Ledger) -> None:
    runner = book.projection_runner([Tally()], batch_size=13)
    runner.catch_up()
    incremental = tally_of(book)
    result = runner.rebuild("tally")
    assert result["events"] == runner.head()
    assert tally_of(book) == incremental
    assert runner.position("tally") == runner.head()
    names = inspect(book.engine).get_table_names()
    assert "test_event_tally__rebuild" not in names
    indexes = {i["name"] for i in inspect(book.engine).get_indexes("test_event_tally")}
    assert "test_event_tally_events_idx" in indexes
    # A second rebuild works too (no leftover names from the first swap).
    runner.rebuild("tally")
    assert tally_of(book) == incremental


log_table = Table(
    "test_event_log",
    tally_md,
    Column("position", Integer(), primary_key=True),
    Column("loan_id", String(36), nullable=False),
)


class Logging(Tally):
    """Also appends one line per event with ``Batch.copy_text`` (PostgreSQL's COPY; during a
    rebuild, on the background connection)."""

    tables: ClassVar[tuple[Table, ...]] = (tally_table, log_table)

    def process(self, batch: Batch) -> None:
        super().process(batch)
        batch.copy_text(
            "test_event_log",
            ("position", "loan_id"),
            [
                f"{self.line_position(p)}\t{batch.ids[e.originator_id.int]}\n"
                for e, p in zip(batch.events, batch.positions, strict=True)
            ],
        )

    def line_position(self, position: int) -> int:
        return position


def log_of(app: Ledger) -> list[tuple[int, str]]:
    with app.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(log_table).order_by(log_table.c.position))]


def test_a_rebuild_copies_history_rows_in_the_background_and_swaps_them_in(book: Ledger) -> None:
    if book.engine.dialect.name != "postgresql":
        pytest.skip("COPY is PostgreSQL's")
    runner = book.projection_runner([Logging()], batch_size=13, rebuild_batch_size=13)
    runner.catch_up()
    incremental = log_of(book)
    assert len(incremental) == runner.head()
    runner.rebuild("tally")
    assert log_of(book) == incremental
    assert tally_of(book) == events_per_loan(book)


def test_a_failing_background_copy_fails_the_rebuild_and_keeps_the_live_tables(
    book: Ledger,
) -> None:
    if book.engine.dialect.name != "postgresql":
        pytest.skip("COPY is PostgreSQL's")

    class Duplicating(Logging):
        def line_position(self, position: int) -> int:
            return 1  # every line the same key: the background COPY fails

    book.projection_runner([Logging()]).catch_up()
    incremental, position = log_of(book), book.projection_runner([Logging()]).position("tally")
    runner = book.projection_runner([Duplicating()], batch_size=13, rebuild_batch_size=13)
    # The background COPY fails batches after the line that broke it; the rebuild still names
    # the event itself: the second, whose line repeats the first one's key.
    with pytest.raises(
        ProjectionFailed,
        match=r"^rebuild of projection tally cannot apply "
        r"event 2 \(loan\.Approved of loan .*, version 2\): UniqueViolation: ",
    ):
        runner.rebuild("tally")
    assert log_of(book) == incremental
    assert runner.position("tally") == position
    assert "test_event_log__rebuild" not in inspect(book.engine).get_table_names()
    # The next rebuild starts from scratch and succeeds.
    book.projection_runner([Logging()], rebuild_batch_size=13).rebuild("tally")
    assert log_of(book) == incremental


def _runner_script(tmp_path: Path) -> Path:
    script = tmp_path / "run_tally.py"
    script.write_text(
        textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from ledger.bootstrap import build_ledger
        from ledger.settings import Settings
        from test_projection_runner import Tally
        ledger = build_ledger(Settings(database_url=sys.argv[1]))
        ledger.projection_runner([Tally()], batch_size=int(sys.argv[2])).catch_up()
    """)
    )
    return script


@pytest.mark.parametrize("point", ["projection_inside_batch", "projection_between_batches"])
@pytest.mark.parametrize("nth", [1, 3])
def test_a_killed_runner_resumes_without_counting_anything_twice(
    book: Ledger, tmp_path: Path, point: str, nth: int
) -> None:
    script = _runner_script(tmp_path)
    url = book.engine.url.render_as_string(hide_password=False)
    env = {**os.environ, "LEDGER_FAULT_CRASH": f"{point}:{nth}"}
    # When the runner process is SIGKILLed inside or between batches,
    killed = subprocess.run(
        [sys.executable, str(script), url, "9"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert killed.returncode == -9, killed.stderr
    runner = book.projection_runner([Tally()])
    runner.ensure_tracking()
    position = runner.position("tally")
    committed = nth - 1 if point == "projection_inside_batch" else nth
    assert position == min(9 * committed, runner.head())
    # and then rerun without the fault,
    env.pop("LEDGER_FAULT_CRASH")
    subprocess.run([sys.executable, str(script), url, "9"], env=env, check=True)
    # every event is counted exactly once.
    assert tally_of(book) == events_per_loan(book)


def test_the_read_side_imports_nothing_of_the_ledger() -> None:
    # Projections are given what they need (engine, log reader, settings values); importing
    # every one of them, the runner and the registry loads no ledger module.
    code = (
        "import sys, projections.registry, projections.runner; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'ledger'))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[2],
    )
    assert loaded.stdout.strip() == "[]"


def test_the_registry_builds_one_of_each_projection_with_its_service_levels() -> None:
    from projections.complaints import ComplaintHistory
    from projections.registry import PROJECTIONS, REPORTS, all_projections

    built = all_projections(ack_sla_days=2, resolve_sla_days=9)
    assert [type(p) for p in built] == list(PROJECTIONS)
    assert len({p.name for p in built}) == len(built)
    [complaints] = [p for p in built if isinstance(p, ComplaintHistory)]
    assert (complaints.ack_sla.days, complaints.resolve_sla.days) == (2, 9)
    assert set(REPORTS) == {"balances", "delinquency", "complaints", "trial-balance", "portfolio"}
