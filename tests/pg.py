"""A throwaway PostgreSQL cluster for the tests: the database pack's, the PostgreSQL journal's and the fleet's.

`cluster()` starts one from the machine's binaries (`pg_config --bindir`, or /usr/lib/postgresql/*/bin): `initdb` into
a temporary directory, then `pg_ctl start -w`, listening on 127.0.0.1 only, on a free port, with its socket in the same
directory and fsync off. PostgreSQL refuses to run as root, so when the tests run as root the cluster is owned and run
by the unprivileged `postgres` user through `runuser`. Without the binaries the PostgreSQL tests skip with the reason;
with BRIDGE_REQUIRE_POSTGRES=1 (CI) they fail instead, so CI can never pass by skipping them.

The session-wide `pg_cluster` fixture (tests/conftest.py) starts one cluster for every test directory that asks;
kept out of `conftest.py` under a unique module name, because several test directories have a `conftest.py` and
`from conftest import ...` would pick whichever was imported first.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROWS = 1_000_000  # rows in the `big` tables
ADMIN = "bridge_admin"


@dataclass(frozen=True)
class PgServer:
    """A running test cluster and the DSNs of its roles."""

    host: str
    port: int
    datadir: Path
    secret: str  # content of a file in the data directory that no query may ever return

    def dsn(self, user: str, dbname: str = "shop") -> str:
        return f"host={self.host} port={self.port} user={user} dbname={dbname} connect_timeout=5"

    def url(self, dbname: str, user: str = ADMIN) -> str:
        """A `postgresql://` URL, as `bridge run --journal` takes it."""
        return f"postgresql://{user}@{self.host}:{self.port}/{dbname}"

    @property
    def admin(self) -> str:
        return self.dsn(ADMIN)

    @property
    def reader(self) -> str:
        return self.dsn("bridge_reader")

    @property
    def writer(self) -> str:
        return self.dsn("bridge_writer")

    def scalar(self, query: str, params: Any = None, *, dbname: str = "shop") -> Any:
        """Run one query as the superuser, outside any test transaction; return the first column of the first row."""
        import psycopg

        with psycopg.connect(self.dsn(ADMIN, dbname), autocommit=True) as conn:
            cursor = conn.execute(query, params)
            row = cursor.fetchone() if cursor.description else None
            return row[0] if row else None

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database (a cheap copy of template1); returns its name."""
        name = f"{prefix}_{secrets.token_hex(6)}"
        self.scalar(f"CREATE DATABASE {name}", dbname="postgres")
        return name


def find_bindir() -> Path | None:
    pg_config = shutil.which("pg_config")
    if pg_config:
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False).stdout.strip()
        if found and (Path(found) / "initdb").exists():
            return Path(found)
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    return Path(candidates[0]).parent if candidates else None


def unavailable(reason: str) -> None:
    if os.environ.get("BRIDGE_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"PostgreSQL is required (BRIDGE_REQUIRE_POSTGRES=1) but {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL tests need server binaries: {reason}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def cluster() -> Iterator[PgServer]:
    """Start a cluster (superuser `bridge_admin`, trust auth on 127.0.0.1), stop and delete it on exit."""
    bindir = find_bindir()
    if bindir is None:
        unavailable("no initdb found (pg_config --bindir, /usr/lib/postgresql/*/bin)")
    assert bindir is not None
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("psycopg is not installed (pip install 'tool-bridge[postgres]')")
    as_root = os.geteuid() == 0
    if as_root:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            unavailable("running as root and there is no 'postgres' user to run the server as")
    base = Path(tempfile.mkdtemp(prefix="bridge-pg-"))
    prefix: list[str] = []
    if as_root:
        os.chown(base, owner.pw_uid, owner.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    datadir, port = base / "data", free_port()
    subprocess.run(
        [*prefix, str(bindir / "initdb"), "-D", str(datadir), "-U", ADMIN, "--auth=trust", "-E", "UTF8", "-N"],
        check=True,
        capture_output=True,
    )
    secret = f"TOP-SECRET-{secrets.token_hex(8)}"
    subprocess.run([*prefix, "sh", "-c", f"echo {secret} > {datadir}/secret.txt"], check=True)
    options = (
        f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=300"
    )
    ctl = [*prefix, str(bindir / "pg_ctl"), "-D", str(datadir), "-l", str(base / "server.log")]
    subprocess.run([*ctl, "-w", "-s", "-o", options, "start"], check=True, capture_output=True)
    try:
        yield PgServer("127.0.0.1", port, datadir, secret)
    finally:
        subprocess.run([*ctl, "-w", "-s", "-m", "immediate", "stop"], check=False, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
