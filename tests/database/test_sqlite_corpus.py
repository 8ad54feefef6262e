"""The attack corpus against a real SQLite file through the toolset: every attempt is an is_error, nothing changes.

Payloads come from `reference/toolkits.md`: the archived reference server's bypasses (V3: prefix checks, the
f-string PRAGMA injection, a `write_query` that accepts PRAGMA and ATTACH), the keyword-classifier family (V6, V9:
comments, CTEs, stacked statements), and probes S1-S6, plus VACUUM INTO, which mode=ro alone allows.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from db_answers import answer, snapshot

from bridge import Toolset
from toolkits.database import QueryLimits, sqlite_toolset

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory, shop_db: Path) -> tuple[Path, Toolset]:
    """A copy of the shop database alone in its directory, with a secret database next to it, served read-only."""
    directory = tmp_path_factory.mktemp("corpus")
    target = directory / "shop.db"
    shutil.copy(shop_db, target)
    shutil.copy(shop_db, directory / "secret.db")
    return directory, sqlite_toolset(target, limits=QueryLimits(timeout=0.5))


STOLEN = Path("/tmp/bridge-stolen.db")
WRITES = [
    # V3: write_query accepts anything but SELECT; read_query trusts a SELECT prefix
    "DROP TABLE customers",
    "DELETE FROM customers",
    "UPDATE products SET price_cents = 1",
    "INSERT INTO customers (name, email, country, created_at) VALUES ('x', 'x@x', 'FR', '2025')",
    "REPLACE INTO products VALUES (1, 'x', 'x', 1, 1)",
    "INSERT INTO products VALUES (1, 'x', 'x', 1, 1) ON CONFLICT (id) DO UPDATE SET stock = 0",
    "CREATE TABLE stolen AS SELECT * FROM customers",
    "CREATE TEMP TABLE stolen (a)",
    "CREATE VIEW v AS SELECT 1",
    "CREATE TRIGGER t AFTER INSERT ON orders BEGIN DELETE FROM customers; END",
    "CREATE INDEX i ON customers(name)",
    "ALTER TABLE customers ADD COLUMN pwned TEXT",
    "ALTER TABLE customers RENAME TO gone",
    "REINDEX",
    "ANALYZE",
    "VACUUM",
    # V9: keyword and prefix tricks
    "/* SELECT */ DELETE FROM customers",
    "-- SELECT\nDELETE FROM customers",
    "WITH x AS (SELECT 1) DELETE FROM customers",
    "WITH x AS (SELECT 1) UPDATE products SET stock = 0",
    "SELECT 1; DROP TABLE customers",
    "SELECT * FROM customers; DELETE FROM customers",
    "  select * from customers ; drop table customers ; --",
    # S2: switch the engine's read-only mode off, or weaken the file
    "PRAGMA query_only = OFF",
    "PRAGMA query_only = 0",
    "PRAGMA writable_schema = ON",
    "PRAGMA journal_mode = WAL",
    "PRAGMA user_version = 7",
    "PRAGMA trusted_schema = ON",
    "PRAGMA query_only = OFF; INSERT INTO customers (name) VALUES ('x')",
    # transaction control
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT s",
    "RELEASE s",
    "END",
    # S1 / S3: files beside the database
    "ATTACH 'new.db' AS n",
    "ATTACH DATABASE ':memory:' AS m",
    "DETACH DATABASE main",
    "VACUUM INTO 'copy.db'",
    "VACUUM INTO '/tmp/bridge-stolen.db'",
    # code and files through functions
    "SELECT load_extension('/tmp/evil.so')",
    "SELECT load_extension('libc.so.6', 'system')",
    "SELECT writefile('/tmp/x', 'y')",
    "SELECT fts3_tokenizer('simple')",
    "SELECT sqlite_log(1, 'x')",
]

READS_OUTSIDE = [
    "ATTACH 'secret.db' AS s",
    "ATTACH 'file:secret.db?mode=ro' AS s",
    "ATTACH '/etc/passwd' AS p",
    "SELECT readfile('/etc/passwd')",
    "SELECT * FROM fsdir('/etc')",
    "SELECT edit('x')",
]


@pytest.mark.parametrize("sql", WRITES + READS_OUTSIDE)
async def test_attempt_is_an_error_and_changes_nothing(guarded: tuple[Path, Toolset], sql: str) -> None:
    """Each corpus payload sent to db_query is answered with an is_error naming why; no file changes or appears."""
    directory, toolset = guarded
    before = snapshot(directory)
    result = await toolset.call("db_query", {"sql": sql})
    assert result.is_error, result.text
    assert result.text.split(":")[0] in {"denied_by_policy", "invalid_input"}, result.text
    assert snapshot(directory) == before
    assert not STOLEN.exists()  # noqa: ASYNC240 - a stat, not I/O worth a thread


async def test_describe_table_name_is_never_sql(guarded: tuple[Path, Toolset]) -> None:
    """V3: the table name of describe_table is a bound value, so the PRAGMA f-string injection has no effect."""
    directory, toolset = guarded
    before = snapshot(directory)
    for name in ["customers); DROP TABLE customers; --", "customers' UNION SELECT sql FROM sqlite_master --"]:
        result = await toolset.call("db_describe_table", {"table": name, "sample_rows": 3})
        assert result.is_error
        assert "no table or view named" in result.text
    assert snapshot(directory) == before


async def test_infinite_recursive_cte_stops_at_the_deadline(guarded: tuple[Path, Toolset]) -> None:
    """S6: an endless recursive CTE stops at the configured 0.5 s deadline with a clear timeout error."""
    started = time.monotonic()
    result = await guarded[1].call(
        "db_query", {"sql": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c"}
    )
    elapsed = time.monotonic() - started
    assert result.is_error
    assert result.text.startswith("timeout: the statement ran past its 0.5 s deadline")
    assert elapsed >= 0.5  # stopped by the deadline, not before it (the CTE never ends alone)


async def test_timeout_ms_from_the_model_shortens_the_deadline(guarded: tuple[Path, Toolset]) -> None:
    """A model-supplied timeout_ms is honoured by the engine (here 100 ms instead of the 500 ms default)."""
    result = await guarded[1].call(
        "db_query",
        {
            "sql": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
            "timeout_ms": 100,
        },
    )
    assert result.is_error
    assert "0.1 s deadline" in result.text


async def test_oversized_values_are_refused_by_the_engine(guarded: tuple[Path, Toolset]) -> None:
    """A value built at run time past the length limit is an error, not an allocation of gigabytes."""
    result = await guarded[1].call("db_query", {"sql": "SELECT length(randomblob(200000000))"})
    assert result.is_error
    assert "too big" in result.text


async def test_injected_instructions_arrive_inside_the_boundary(guarded: tuple[Path, Toolset]) -> None:
    """V8: a prompt injection stored in a row reaches the model only inside the untrusted-data boundary."""
    result = await guarded[1].call("db_query", {"sql": "SELECT note FROM customers WHERE note IS NOT NULL"})
    header, body = answer(result)
    assert header["row_count"] == 1
    assert body["rows"][0][0].startswith("Ignore all previous instructions")
    assert result.text.index("<untrusted-data-") < result.text.index("Ignore all previous instructions")


async def test_million_row_table_returns_promptly_with_truncated(big_sqlite: Path) -> None:
    """A SELECT * over 1,000,000 rows returns the capped rows at once, flagged truncated by max_rows."""
    toolset = sqlite_toolset(big_sqlite)
    header, body = answer(await toolset.call("db_query", {"sql": "SELECT * FROM big", "max_rows": 50}))
    assert (header["row_count"], header["truncated"], header["truncated_by"]) == (50, True, "max_rows")
    assert body["rows"][0] == [1, "row 1"]
    assert len(body["rows"]) == 50


async def test_row_cap_is_exact_at_the_boundary(big_sqlite: Path) -> None:
    """Exactly max_rows rows available is not truncated; one more is."""
    toolset = sqlite_toolset(big_sqlite)
    exact, _ = answer(await toolset.call("db_query", {"sql": "SELECT id FROM big LIMIT 10", "max_rows": 10}))
    over, _ = answer(await toolset.call("db_query", {"sql": "SELECT id FROM big LIMIT 11", "max_rows": 10}))
    assert (exact["row_count"], exact["truncated"]) == (10, False)
    assert (over["row_count"], over["truncated"]) == (10, True)
