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
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

DEFAULT_POSTGRES_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


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
        return (f"ledger {' '.join(self.args)} → exit {self.returncode}\n"
                f"--- stdout\n{self.stdout}--- stderr\n{self.stderr}")


class Ledger:
    """``ledger(...)`` for one database URL."""

    def __init__(self, database_url: str, cwd: Path) -> None:
        self.database_url = database_url
        self.cwd = cwd

    def __call__(self, *args: str, expect: int | None = 0, env: dict[str, str] | None = None,
                 stdin: bytes | None = None) -> Run:
        """Run ``ledger *args`` (with extra ``LEDGER_*`` variables in ``env``, and ``stdin``
        piped in); it must never print a traceback, and must exit ``expect`` unless None."""
        environ = {k: v for k, v in os.environ.items()
                   if not k.startswith("LEDGER_") and k not in ("COLUMNS", "LINES", "FORCE_COLOR")}
        # A pipe, not a terminal: plain text at rich's default 80 columns, as in CI or a script.
        environ.update(LEDGER_DATABASE_URL=self.database_url, NO_COLOR="1",
                       PYTHONIOENCODING="utf-8")
        environ.update(env or {})
        proc = subprocess.run([*ledger_command(), *args], cwd=self.cwd, env=environ,
                              input=stdin if stdin is not None else b"", capture_output=True,
                              timeout=120, check=False)
        run = Run(tuple(args), proc.returncode, proc.stdout.decode("utf-8"),
                  proc.stderr.decode("utf-8"))
        assert "Traceback" not in run.stderr, str(run)
        if expect is not None:
            assert run.returncode == expect, str(run)
        return run

    def side_by_side(self, expect: int | None = 0, **commands: tuple[str, ...]
                     ) -> dict[str, Run]:
        """Run independent, read-only commands concurrently (each is mostly interpreter
        start-up) and return their results by name, as if typed one after another."""
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            futures = {name: pool.submit(self, *args, expect=expect)
                       for name, args in commands.items()}
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
        path.write_text("".join((c if isinstance(c, str) else json.dumps(c)) + "\n"
                                for c in commands), encoding="utf-8")
        return path

    return write


# ---------------------------------------------------------------------------- databases
def postgres_required() -> bool:
    return os.environ.get("LEDGER_REQUIRE_POSTGRES", "") not in ("", "0", "false", "no")


class PostgresServer:
    """An AUTOCOMMIT connection to the server (CREATE/DROP DATABASE cannot run inside a
    transaction), on its `postgres` maintenance database if there is one, else the configured
    database."""

    def __init__(self, base_url: str) -> None:
        self.base_url = make_url(base_url)
        last: Exception | None = None
        for database in ("postgres", self.base_url.database):
            engine = create_engine(self.base_url.set(database=database),
                                   isolation_level="AUTOCOMMIT",
                                   connect_args={"connect_timeout": 5})
            try:
                with engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
            except Exception as exc:
                engine.dispose()
                last = exc
                continue
            self.admin: Engine = engine
            return
        assert last is not None
        raise last

    def execute(self, sql: str) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(sql))


@pytest.fixture(scope="session")
def e2e_postgres_server() -> Iterator[PostgresServer]:
    """Checked once per session: skipped with the reason shown when unreachable, or failed
    under LEDGER_REQUIRE_POSTGRES=1."""
    base = os.environ.get("LEDGER_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    try:
        server = PostgresServer(base)
    except Exception as exc:
        reason = f"PostgreSQL not reachable at {make_url(base)!r}: {exc}".splitlines()[0]
        if postgres_required():
            pytest.fail(f"{reason} (LEDGER_REQUIRE_POSTGRES=1, so this is an error)",
                        pytrace=False)
        pytest.skip(reason)
    yield server
    server.admin.dispose()


@pytest.fixture(scope="module",
                params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def new_database(request: pytest.FixtureRequest,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], str]]:
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
    prefix = f"ledger_e2e_{secrets.token_hex(4)}"
    created: list[str] = []

    def postgresql() -> str:
        name = f"{prefix}_{len(created)}"
        server.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return server.base_url.set(database=name).render_as_string(hide_password=False)

    try:
        yield postgresql
    finally:
        for name in reversed(created):
            server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
