"""``ledger projections``: keep the read models current, see how fresh they are, rebuild them."""

from __future__ import annotations

import logging
import sys
import threading
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from ledger.cli.common import (
    EXIT_CODES,
    Format,
    err,
    handled,
    open_ledger,
    out,
    print_error,
    print_table,
    progress_bar,
    write_json,
)
from ledger.cli.render import Column
from projections.failures import ProjectionFailed

app = typer.Typer(no_args_is_help=True, help="Read-model projections.")


@app.command("status")
def projections_status(format: Format = Format.table) -> None:
    """Each projection's position, the log head, and the lag in events and seconds."""
    with handled():
        statuses = open_ledger().projection_status()
        if format == Format.json:
            write_json([s.as_dict() for s in statuses])
            return
        columns = [
            Column("name", keep=True),
            Column("position", numeric=True),
            Column("head", numeric=True),
            Column("lag_events", "lag (events)", numeric=True),
            Column("lag_seconds", "lag (s)", numeric=True),
            Column("updated", keep=True, priority=60),
        ]
        rows = [
            [
                s.name,
                str(s.position),
                str(s.head),
                str(s.lag_events),
                f"{s.lag_seconds:.1f}",
                s.updated_at.isoformat(timespec="seconds") if s.updated_at else "",
            ]
            for s in statuses
        ]
        failed = any(s.error for s in statuses)
        if failed:  # a projection stopped at an event: say which, and exit non-zero
            columns.append(Column("error", priority=55))
            for row, s in zip(rows, statuses, strict=True):
                row.append(f"stopped at event {s.error_position}: {s.error}" if s.error else "")
        print_table("projections", columns, rows)
        if failed:
            raise typer.Exit(EXIT_CODES["failed"])


@app.command("run")
def projections_run(
    once: Annotated[bool, typer.Option(help="Catch up and exit instead of running on")] = False,
    poll: Annotated[float, typer.Option(help="Seconds between polls when idle")] = 0.5,
    name: Annotated[list[str] | None, typer.Option(help="Only these projections")] = None,
) -> None:
    """Keep the projections current (continuous); --once catches up and exits."""
    with handled():
        ledger = open_ledger()
        if once:
            try:
                with progress_bar() as progress:
                    task = progress.add_task("catching up", total=None)
                    done = ledger.catch_up(name, lambda _n, k: progress.advance(task, k))
            except ProjectionFailed as e:
                out.print(", ".join(f"{k}: {v} events" for k, v in e.done.items()))
                for failure in e.failures:
                    print_error(failure.line())
                raise typer.Exit(EXIT_CODES[e.kind]) from None
            out.print(", ".join(f"{k}: {v} events" for k, v in done.items()))
            return
        logging.basicConfig(
            level=logging.INFO,
            stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        stop = threading.Event()
        out.print("running projections (Ctrl-C to stop)")
        try:
            ledger.run_projections(stop, poll_seconds=poll, names=name)
        except KeyboardInterrupt:
            stop.set()


@app.command("rebuild")
def projections_rebuild(
    name: Annotated[str | None, typer.Argument(help="Projection to rebuild (default: all)")] = None,
) -> None:
    """Replay the whole log into fresh tables and swap them in when caught up."""
    with handled():
        ledger = open_ledger()
        names = [ledger.check_projection(name)] if name else ledger.projection_names()
        for n in names:
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                TextColumn("{task.completed:,.0f}/{task.total:,.0f} events"),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                console=err,
            ) as progress:
                task = progress.add_task(f"rebuild {n}", total=ledger.log_head(), rate="")

                def advance(
                    consumed: int, head: int, task: Any = task, progress: Any = progress
                ) -> None:
                    progress.update(task, advance=consumed, total=max(head, 1))
                    elapsed = progress.tasks[0].elapsed or 0
                    done = progress.tasks[0].completed
                    progress.update(task, rate=f"{done / elapsed:,.0f} ev/s" if elapsed else "")

                result = ledger.rebuild_projection(n, advance)
            out.print(
                f"rebuilt {n}: {result['events']:,} events in {result['seconds']:.2f}s "
                f"({result['events_per_second']:,.0f} events/s), position "
                f"{result['position']}"
            )
