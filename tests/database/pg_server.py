"""A throwaway PostgreSQL cluster for the database pack's tests (used by `conftest.py`).

Kept out of `conftest.py` under a unique module name: several test directories have a `conftest.py`, so
`from conftest import ...` would pick whichever was imported first.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROWS = 1_000_000  # rows in the `big` tables


@dataclass(frozen=True)
class PgServer:
    """A running test cluster and the DSNs of its roles."""

    host: str
    port: int
    datadir: Path
    secret: str  # content of a file in the data directory that no query may ever return

    def dsn(self, user: str, dbname: str = "shop") -> str:
        return f"host={self.host} port={self.port} user={user} dbname={dbname} connect_timeout=5"

    @property
    def admin(self) -> str:
        return self.dsn("bridge_admin")

    @property
    def reader(self) -> str:
        return self.dsn("bridge_reader")

    @property
    def writer(self) -> str:
        return self.dsn("bridge_writer")

    def scalar(self, query: str, params: Any = None) -> Any:
        """Run one query as the superuser, outside any test transaction; return the first column of the first row."""
        import psycopg

        with psycopg.connect(self.admin, autocommit=True) as conn:
            row = conn.execute(query, params).fetchone()
            return row[0] if row else None


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
