"""Fixtures for the fleet's tests: the shared PostgreSQL cluster (tests/pg.py) gives each test its own database."""

from __future__ import annotations

import pytest
from pg import PgServer


@pytest.fixture
def fleet_db(pg_cluster: PgServer) -> str:
    """A new database with the oracle ledger table; its name."""
    name = pg_cluster.create_database("fleet")
    pg_cluster.scalar(
        "CREATE TABLE effects (tool_use_id text NOT NULL, session_id text NOT NULL, pid int NOT NULL, "
        "at timestamptz NOT NULL DEFAULT clock_timestamp())",
        dbname=name,
    )
    return name
