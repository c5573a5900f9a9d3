"""End-to-end fixtures: drive the real ``ledger`` console script as a user would.

* ``ledger_for(url)`` (and ``offline_ledger``, whose database cannot exist) run the installed
  console script in a subprocess (in a scratch directory, so no ``.env`` or ``./ledger.db`` of
  the checkout leaks in) with ``LEDGER_DATABASE_URL`` set, and return exit code, stdout and
  stderr. Whatever the command, it must never die with a traceback.
* ``new_database`` is parametrized over ``sqlite`` (a fresh file) and ``postgresql`` (a fresh,
  uniquely named database created for the test module and dropped ``WITH (FORCE)`` after it).
  Each call hands out another empty, *unmigrated* database: the stories start with
  ``ledger db upgrade`` like a user's would. PostgreSQL skips with a visible reason when the
  server is unreachable, unless ``LEDGER_REQUIRE_POSTGRES=1``, where it fails instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.databases import PostgresServer, reach_postgres


def ledger_command() -> list[str]:
    """The console script installed next to this interpreter (else the module itself)."""
    script = Path(sys.executable).parent / "ledger"
    return [str(script)] if script.exists() else [sys.executable, "-m", "ledger.cli"]


@dataclass(frozen=True)
class Run:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def text(self) -> str:
        """stdout with whitespace collapsed: rich wraps long lines at 80 columns on a pipe."""
        return " ".join(self.stdout.split())

    def json(self) -> Any:
        return json.loads(self.stdout)

    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    def __str__(self) -> str:  # shown by pytest when an assertion about a run fails
        return (
            f"ledger {' '.join(self.args)} → exit {self.returncode}\n"
            f"--- stdout\n{self.stdout}--- stderr\n{self.stderr}"
        )


class Ledger:
    """``ledger(...)`` for one database URL."""

    def __init__(self, database_url: str, cwd: Path) -> None:
        self.database_url = database_url
        self.cwd = cwd

    def __call__(
        self,
        *args: str,
        expect: int | None = 0,
        env: dict[str, str] | None = None,
        stdin: bytes | None = None,
    ) -> Run:
        """Run ``ledger *args`` (with extra ``LEDGER_*`` variables in ``env``, and ``stdin``
        piped in); it must never print a traceback, and must exit ``expect`` unless None."""
        environ = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("LEDGER_") and k not in ("COLUMNS", "LINES", "FORCE_COLOR")
        }
        # A pipe, not a terminal: plain text at rich's default 80 columns, as in CI or a script.
        environ.update(
            LEDGER_DATABASE_URL=self.database_url, NO_COLOR="1", PYTHONIOENCODING="utf-8"
        )
        environ.update(env or {})
        proc = subprocess.run(
            [*ledger_command(), *args],
            cwd=self.cwd,
            env=environ,
            input=stdin if stdin is not None else b"",
            capture_output=True,
            timeout=120,
            check=False,
        )
        run = Run(
            tuple(args), proc.returncode, proc.stdout.decode("utf-8"), proc.stderr.decode("utf-8")
        )
        assert "Traceback" not in run.stderr, str(run)
        if expect is not None:
            assert run.returncode == expect, str(run)
        return run

    def side_by_side(self, expect: int | None = 0, **commands: tuple[str, ...]) -> dict[str, Run]:
        """Run independent, read-only commands concurrently (each is mostly interpreter
        start-up) and return their results by name, as if typed one after another."""
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            futures = {
                name: pool.submit(self, *args, expect=expect) for name, args in commands.items()
            }
            return {name: future.result() for name, future in futures.items()}


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The module's working directory: the CLI runs here, batch files are written here."""
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="module")
def ledger_for(scratch: Path) -> Callable[[str], Ledger]:
    """``ledger_for(url)("loan", "list")``: the CLI against a given database URL."""
    return lambda url: Ledger(url, scratch)


@pytest.fixture(scope="module")
def no_database_url(scratch: Path) -> str:
    """A SQLite URL in a directory that does not exist: any attempt to open it fails."""
    return f"sqlite:///{scratch / 'no' / 'such' / 'dir' / 'ledger.db'}"


@pytest.fixture(scope="module")
def offline_ledger(ledger_for: Callable[[str], Ledger], no_database_url: str) -> Ledger:
    """The CLI with no usable database at all (for pure commands and bad input)."""
    return ledger_for(no_database_url)


@pytest.fixture(scope="module")
def write_batch(scratch: Path) -> Callable[[str, list[dict[str, Any] | str]], Path]:
    """``write_batch("name.jsonl", [command, ...])``: a JSONL file of commands (a str is written
    verbatim, for lines that are deliberately not valid JSON)."""

    def write(name: str, commands: list[dict[str, Any] | str]) -> Path:
        path = scratch / name
        path.write_text(
            "".join((c if isinstance(c, str) else json.dumps(c)) + "\n" for c in commands),
            encoding="utf-8",
        )
        return path

    return write


# ---------------------------------------------------------------------------- databases
@pytest.fixture(scope="session")
def e2e_postgres_server() -> Iterator[PostgresServer]:
    """Checked once per session: skipped with the reason shown when unreachable, or failed
    under LEDGER_REQUIRE_POSTGRES=1."""
    server = reach_postgres("ledger_e2e")
    yield server
    server.close()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def new_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[], str]]:
    """Each call returns the URL of another fresh, empty, unmigrated database: a new SQLite
    file, or a new uniquely named PostgreSQL database, dropped WITH (FORCE) after the module."""
    if request.param == "sqlite":
        folder = tmp_path_factory.mktemp("e2e-sqlite")
        count = 0

        def sqlite() -> str:
            nonlocal count
            count += 1
            return f"sqlite:///{folder / f'ledger_{count}.db'}"

        yield sqlite
        return
    server: PostgresServer = request.getfixturevalue("e2e_postgres_server")
    created: list[str] = []

    def postgresql() -> str:
        url = server.create_database(migrated=False)
        created.append(url)
        return url

    try:
        yield postgresql
    finally:
        for url in reversed(created):
            server.drop(url)
