"""The media library's test databases: SQLite, and a real PostgreSQL server per test session.

A pytest plugin (tests/conftest.py lists it in `pytest_plugins`). A test that takes
`database_url` runs twice, once per engine. `python -m tests.databases` prints the folder of
PostgreSQL's server programs, or exits 1 when there are none (the Makefile's `postgres` step).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

SERVER_PROGRAMS = ("initdb", "pg_ctl", "postgres")
SERVICE_USER = "postgres"  # runs the server when the tests run as root
MISSING = ("PostgreSQL's server programs (initdb, pg_ctl, postgres) were not found "
           "(looked at `pg_config --bindir`, /usr/lib/postgresql/*/bin and PATH). "
           "`make test` installs them (as root, with apt-get install postgresql); "
           "elsewhere install PostgreSQL's server package yourself.")

# The server's settings. fsync and friends off: the data is thrown away, and a test must not
# wait on the disk. UTC: timestamps read back the same on every machine.
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "timezone": "UTC",
}


def _version(bindir: Path) -> tuple[int, ...]:
    """The major version in /usr/lib/postgresql/<version>/bin, for picking the newest."""
    return tuple(int(part) for part in re.findall(r"\d+", bindir.parent.name)) or (-1,)


def has_server(bindir: Path) -> bool:
    """Whether the folder holds initdb, pg_ctl and postgres."""
    return all(os.access(bindir / name, os.X_OK) for name in SERVER_PROGRAMS)


def find_bindir() -> Path | None:
    """The folder of PostgreSQL's server programs, or None when there is none."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            answer = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                                    timeout=10, check=True)
            candidates.append(Path(answer.stdout.strip()))
    # Debian keeps each major version's server apart, and its pg_config (libpq-dev) may name a
    # version whose server is not installed: each candidate is checked for the programs.
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version, reverse=True)
    for name in ("initdb", "pg_ctl"):
        found = shutil.which(name)
        if found is not None:
            candidates.append(Path(found).resolve().parent)  # /usr/local/bin/initdb -> ../15/bin
    return next((bindir for bindir in candidates if has_server(bindir)), None)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _environment() -> dict[str, str]:
    # PG* variables (PGDATA, PGPORT, PGHOST...) would steer the programs elsewhere, and a
    # locale the machine lacks makes initdb fail.
    env = {name: value for name, value in os.environ.items() if not name.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


def _run_coroutine(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine to the end, also when called from inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(coroutine)
        return
    # Inside an async test asyncio.run is refused: it gets a thread, and a loop, of its own.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coroutine).result()


@dataclass
class PostgresServer:
    """A throwaway PostgreSQL server on 127.0.0.1: trust authentication, superuser postgres."""

    bindir: Path
    folder: Path  # holds data/, the socket and postgres.log; removed at the end
    port: int
    user: str | None  # the system user the programs run as (None: as ourselves)
    _numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1), repr=False)

    @property
    def data(self) -> Path:
        """The cluster's data directory."""
        return self.folder / "data"

    @property
    def log(self) -> Path:
        """The server's log file."""
        return self.folder / "postgres.log"

    def url(self, dbname: str = "postgres") -> str:
        """The URL of one database on this server."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def command(self, program: str, *args: str) -> list[str]:
        """A server program's command line, run as the server's user."""
        # PostgreSQL refuses to run as root: as root its programs run as the postgres user.
        prefix = ["runuser", "-u", self.user, "--"] if self.user else []
        return [*prefix, str(self.bindir / program), *args]

    def run(self, program: str, *args: str, timeout: float = 120) -> str:
        """Run a server program; its output, or RuntimeError with the output when it fails."""
        # cwd: the postgres user may not be allowed into the folder pytest was started from.
        answer = subprocess.run(self.command(program, *args), cwd=self.folder,
                                env=_environment(), capture_output=True, text=True,
                                timeout=timeout, check=False)
        if answer.returncode != 0:
            raise RuntimeError(f"{program} {' '.join(args)} exited with {answer.returncode}:\n"
                               f"{answer.stdout}{answer.stderr}{self.log_tail()}")
        return answer.stdout

    def log_tail(self) -> str:
        """The end of the server's log, for error messages."""
        with contextlib.suppress(OSError):
            return "\n--- postgres.log ---\n" + self.log.read_text(errors="replace")[-3000:]
        return ""

    def start(self) -> None:
        """initdb and start the server on self.port."""
        # --locale=C: independent of the machine's locales, and text sorts by code point,
        # as SQLite's default (BINARY) collation does.
        self.run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync",
                 "-E", "UTF8", "--locale=C")
        for attempt in range(3):
            # pg_ctl hands these to a shell.
            options = [f"-p {self.port}", f"-k {shlex.quote(str(self.folder))}"]
            options += [f"-c {name}={value}" for name, value in SERVER_SETTINGS.items()]
            try:
                self.run("pg_ctl", "-D", str(self.data), "-l", str(self.log),
                         "-o", " ".join(options), "-w", "-t", "60", "start")
                return
            except RuntimeError as error:
                # The free port was taken between the look and the bind: another one.
                if attempt == 2 or "already in use" not in str(error):
                    raise
                self.port = _free_port()

    def stop(self) -> None:
        """Stop the server at once (its data is thrown away)."""
        self.run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "-t", "60", "stop")

    def create_database(self) -> str:
        """Create a new, empty database; its URL."""
        name = f"test_{next(self._numbers)}"
        statement = f'CREATE DATABASE "{name}"'
        try:
            import asyncpg
        except ImportError:
            self._psql(statement)
        else:
            async def create() -> None:
                connection = await asyncpg.connect(self.url(), timeout=30)
                try:
                    await connection.execute(statement)
                finally:
                    await connection.close()

            _run_coroutine(create())
        return self.url(name)

    def _psql(self, statement: str) -> None:
        psql = self.bindir / "psql"
        program = str(psql) if psql.exists() else shutil.which("psql")
        if program is None:
            pytest.fail("neither asyncpg nor psql is installed: run `make setup`", pytrace=False)
        answer = subprocess.run([program, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.url(),
                                 "-c", statement], env=_environment(), capture_output=True,
                                text=True, timeout=60, check=False)
        if answer.returncode != 0:
            raise RuntimeError(f"psql -c {statement!r} exited with {answer.returncode}:\n"
                               f"{answer.stdout}{answer.stderr}")


def _service_user() -> str | None:
    """The user the server runs as: postgres when we are root (created if missing)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        # Debian's postgresql package creates it; a machine without the package may lack it.
        subprocess.run(["useradd", "--system", "--no-create-home", SERVICE_USER], check=True,
                       capture_output=True, timeout=60)
    return SERVICE_USER


# Started beside the server: it waits for pytest's end, however pytest ends (even killed),
# and then stops the server and removes its folder, so no postgres outlives the tests.
WATCHDOG = """\
import shutil, subprocess, sys
sys.stdin.buffer.read()
subprocess.run(sys.argv[2:], capture_output=True, timeout=60, check=False)
shutil.rmtree(sys.argv[1], ignore_errors=True)
"""


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the session, stopped and removed at its end."""
    bindir = find_bindir()
    if bindir is None:
        pytest.fail(MISSING, pytrace=False)
    user = _service_user()
    # Under /tmp: the postgres user can cross it (mode 1777) when we are root, and the socket's
    # path stays short (at most 107 bytes), whatever TMPDIR is.
    folder = Path(tempfile.mkdtemp(prefix="pixelport-pg-", dir="/tmp"))
    if user is not None:
        account = pwd.getpwnam(user)
        os.chown(folder, account.pw_uid, account.pw_gid)
    server = PostgresServer(bindir, folder, _free_port(), user)
    # start_new_session: Ctrl-C in the terminal must not end the watchdog before pytest.
    watchdog = subprocess.Popen(
        [sys.executable, "-c", WATCHDOG, str(folder), *server.command(
            "pg_ctl", "-D", str(server.data), "-m", "immediate", "-w", "stop")],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        cwd=folder, env=_environment(), start_new_session=True)
    try:
        server.start()
        yield server
    finally:
        with contextlib.suppress(RuntimeError, subprocess.SubprocessError):
            server.stop()  # fails harmlessly when the server never started
        watchdog.kill()
        watchdog.wait()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty database: a SQLite file, then a database on the session's PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/library.db"
    # Asked for here, not as a parameter: a run of the SQLite cases alone starts no server.
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database()


if __name__ == "__main__":
    found = find_bindir()
    if found is None:
        print(MISSING, file=sys.stderr)
        sys.exit(1)
    print(found)
