"""Shared fixtures: every async test runs on both asyncio and trio; one PostgreSQL cluster serves every directory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pg import PgServer, cluster


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run each `@pytest.mark.anyio` test once per backend."""
    return str(request.param)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgServer]:
    """A PostgreSQL cluster for the whole test session, started on first use (see tests/pg.py)."""
    with cluster() as server:
        yield server
