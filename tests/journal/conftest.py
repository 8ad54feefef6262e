"""Journal backends under test: every test that takes `journal` or `backend` runs against each of them.

Adding a backend (PostgreSQL) is one fixture returning a `Backend` plus its name in `BACKENDS`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from journal_backends import Backend
from pg import PgServer

from bridge.journal import Journal, MemoryJournal, PostgresJournal, SqliteJournal

BACKENDS = ["memory_backend", "sqlite_backend", pytest.param("postgres_backend", marks=pytest.mark.postgres)]


@pytest.fixture
def memory_backend(tmp_path: Path) -> Backend:
    return Backend(
        "memory",
        lambda root: MemoryJournal(),
        tmp_path,
        durable=False,
        bounded=lambda root, keep_finished, keep_results: MemoryJournal(
            keep_finished=keep_finished, keep_results=keep_results
        ),
        forgets_by_count=True,
    )


@pytest.fixture
def sqlite_backend(tmp_path: Path) -> Backend:
    return Backend(
        "sqlite",
        lambda root: SqliteJournal(root / "journal.db"),
        tmp_path,
        durable=True,
        bounded=lambda root, keep_finished, keep_results: SqliteJournal(root / "journal.db"),  # retention is an age
        forgets_by_count=False,
    )


@pytest.fixture
def postgres_backend(tmp_path: Path, pg_cluster: PgServer) -> Backend:
    databases: dict[Path, str] = {}  # one database per storage directory

    def make(root: Path) -> Journal:
        if root not in databases:
            databases[root] = pg_cluster.url(pg_cluster.create_database("journal"))
        return PostgresJournal(databases[root])

    return Backend(
        "postgres",
        make,
        tmp_path,
        durable=True,
        bounded=lambda root, keep_finished, keep_results: make(root),  # like SQLite: keeps finished calls by age
        forgets_by_count=False,
    )


@pytest.fixture(params=BACKENDS, ids=lambda name: name.removesuffix("_backend"))
def backend(request: pytest.FixtureRequest) -> Backend:
    backend: Backend = request.getfixturevalue(request.param)
    return backend


@pytest.fixture
async def journal(backend: Backend) -> AsyncIterator[Journal]:
    journal = backend.make()
    await journal.open()
    try:
        yield journal
    finally:
        await journal.close()
