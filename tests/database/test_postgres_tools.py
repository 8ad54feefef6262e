"""The PostgreSQL toolset as the model uses it: catalog, exact values, formats, explain, two-phase writes, lifecycle."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

pytest.importorskip("psycopg")

from db_answers import answer
from pg import PgServer

from bridge import Toolset
from toolkits.database import postgres_toolset

pytestmark = pytest.mark.anyio


@pytest.fixture
async def shop(pg: PgServer) -> AsyncIterator[Toolset]:
    """The read-only toolset as the least-privileged reader."""
    async with postgres_toolset(pg.reader) as toolset:
        yield toolset


@pytest.fixture
async def writable(pg: PgServer) -> AsyncIterator[Toolset]:
    """A read-write toolset as the writer role, under the prefix `crm`."""
    async with postgres_toolset(pg.writer, read_only=False, prefix="crm") as toolset:
        yield toolset


def test_hints_and_names(pg: PgServer) -> None:
    """Read-only tools are read_only and idempotent; execute (rw only) is destructive, not idempotent."""
    ro = postgres_toolset(pg.reader)
    rw = postgres_toolset(pg.writer, read_only=False, prefix="crm")
    assert ro.names() == ["db_describe_source", "db_search_objects", "db_describe_table", "db_query", "db_explain"]
    assert all(t.options.read_only and t.options.idempotent for t in ro)
    execute = rw.get("crm_execute")
    assert (execute.options.read_only, execute.options.idempotent, execute.options.destructive) == (False, False, True)
    assert "$1" in ro.get("db_query").description
    assert "analyze" not in ro.get("db_explain").input_schema["properties"]
    assert "analyze" in rw.get("crm_explain").input_schema["properties"]


async def test_describe_source(shop: Toolset) -> None:
    """describe_source names the engine, database, role and mode; what the server reports is inside the boundary."""
    header, described = answer(await shop.call("db_describe_source", {}))
    assert header["mode"] == "read-only"
    assert (described["engine"], described["database"], described["role"], described["mode"]) == (
        "postgresql",
        "shop",
        "bridge_reader",
        "read-only",
    )
    assert "warnings" not in described


async def test_search_objects(shop: Toolset) -> None:
    """Progressive detail over the catalog, limited to schemas and tables the role can use."""
    _, tables = answer(await shop.call("db_search_objects", {"pattern": "%ord%"}))
    assert tables == [{"schema": "public", "name": "orders"}]
    _, summary = answer(await shop.call("db_search_objects", {"pattern": "orders", "detail": "summary"}))
    assert summary[0]["columns"][:3] == ["id", "customer_id", "total"]
    assert summary[0]["row_estimate"] == 50
    _, full = answer(await shop.call("db_search_objects", {"pattern": "customers", "detail": "full"}))
    assert full[0]["comment"] == "People who buy things"
    _, views = answer(await shop.call("db_search_objects", {"object_type": "view"}))
    assert views == [{"schema": "public", "name": "order_totals"}]
    _, columns = answer(await shop.call("db_search_objects", {"object_type": "column", "pattern": "total"}))
    assert {(c["table"], c["name"]) for c in columns} == {("orders", "total"), ("order_totals", "total")}
    _, indexes = answer(await shop.call("db_search_objects", {"object_type": "index", "table": "orders"}))
    assert {i["name"] for i in indexes} == {"orders_pkey", "orders_customer"}
    _, schemas = answer(await shop.call("db_search_objects", {"object_type": "schema"}))
    assert schemas == [{"name": "public"}]


async def test_describe_table(shop: Toolset) -> None:
    """Columns with types, keys and constraints, indexes and an estimate; sample rows only on request."""
    _, table = answer(await shop.call("db_describe_table", {"table": "orders"}))
    assert table["primary_key"] == ["id"]
    assert {"name": "total", "type": "numeric(12,2)", "nullable": True, "default": None} in table["columns"]
    assert any(c["type"] == "foreign key" and "customers(id)" in c["definition"] for c in table["constraints"])
    assert table["row_estimate"] == 50
    assert "sample_rows" not in table
    _, view = answer(await shop.call("db_describe_table", {"table": "order_totals", "sample_rows": 1}))
    assert view["type"] == "view"
    assert "sum(orders.total)" in view["definition"]
    assert len(view["sample_rows"]["rows"]) == 1
    result = await shop.call("db_describe_table", {"table": "order"})
    assert result.is_error
    assert "did you mean" in result.text


async def test_values_are_exact(shop: Toolset) -> None:
    """numeric and bigint arrive as strings, timestamps as ISO 8601, jsonb as JSON, bytea as base64."""
    header, body = answer(
        await shop.call(
            "db_query", {"sql": "SELECT total, big, placed_at, data, payload FROM orders WHERE id = $1", "params": [1]}
        )
    )
    assert body["columns"] == ["total", "big", "placed_at", "data", "payload"]
    assert body["rows"] == [["1.25", "9007199254740994", "2025-01-01T01:00:00+00:00", {"n": 1}, "base64:AP8AAQ=="]]
    assert header["row_count"] == 1


async def test_query_params_formats_and_errors(shop: Toolset) -> None:
    """$n placeholders bind values; CSV and markdown render the same rows; errors say what to fix."""
    args = {
        "sql": "SELECT id, name FROM customers WHERE id <= $1 AND name LIKE $2 ORDER BY id",
        "params": [2, "customer%"],
    }
    _, body = answer(await shop.call("db_query", args))
    assert body["rows"] == [[1, "customer 1"], [2, "customer 2"]]
    _, csv_body = answer(await shop.call("db_query", {**args, "format": "csv"}))
    assert csv_body == "id,name\n1,customer 1\n2,customer 2"
    result = await shop.call("db_query", {"sql": "SELECT $1 + $2", "params": [1]})
    assert result.is_error
    assert result.text.startswith("invalid_input:")
    result = await shop.call("db_query", {"sql": "SELECT * FROM nope"})
    assert result.is_error
    assert 'relation "nope" does not exist' in result.text


async def test_explain(shop: Toolset, writable: Toolset) -> None:
    """explain returns the JSON plan; analyze exists only on read-write sources and runs reads only."""
    _, plan = answer(await shop.call("db_explain", {"sql": "SELECT * FROM orders WHERE id = $1", "params": [1]}))
    assert plan["plan"][0]["Plan"]["Node Type"] in {"Index Scan", "Seq Scan"}
    header, analyzed = answer(
        await writable.call("crm_explain", {"sql": "SELECT count(*) FROM customers", "analyze": True})
    )
    assert header["analyze"] is True
    assert "Actual Rows" in analyzed["plan"][0]["Plan"]
    _, dml = answer(await writable.call("crm_explain", {"sql": "DELETE FROM canary"}))
    assert dml["plan"][0]["Plan"]["Node Type"] == "ModifyTable"
    result = await writable.call("crm_explain", {"sql": "DELETE FROM canary", "analyze": True})
    assert result.is_error


async def test_two_phase_execute(writable: Toolset, pg: PgServer) -> None:
    """preview rolls back and returns affected rows and an id; commit with that id applies exactly that, once."""
    change = {
        "sql": "UPDATE customers SET email = $1 WHERE id = $2 RETURNING id, email",
        "params": ["new@example.com", 3],
    }
    preview = await writable.call("crm_execute", change)
    header, returned = answer(preview)
    assert (header["mode"], header["rows_affected"], header["committed"]) == ("preview", 1, False)
    assert returned["rows"] == [[3, "new@example.com"]]
    assert pg.scalar("SELECT email FROM customers WHERE id = 3") == "c3@example.com"
    commit = await writable.call("crm_execute", {**change, "mode": "commit", "preview_id": header["preview_id"]})
    committed, _ = answer(commit)
    assert (committed["committed"], committed["rows_affected"]) == (True, 1)
    assert pg.scalar("SELECT email FROM customers WHERE id = 3") == "new@example.com"
    again = await writable.call("crm_execute", {**change, "mode": "commit", "preview_id": header["preview_id"]})
    assert again.is_error
    assert "already used" in again.text
    pg.scalar("UPDATE customers SET email = 'c3@example.com' WHERE id = 3 RETURNING 1")


async def test_execute_refuses_what_is_not_one_plain_write(writable: Toolset, pg: PgServer) -> None:
    """execute runs one INSERT/UPDATE/DELETE/MERGE: no DDL, stacked statements, nested writes or denied functions."""
    for sql in [
        "DROP TABLE canary",
        "DELETE FROM canary; DROP TABLE canary",
        "WITH d AS (DELETE FROM canary RETURNING *) INSERT INTO canary SELECT * FROM d",
        "UPDATE canary SET value = pg_read_file('secret.txt')",
        "SELECT 1",
        "TRUNCATE canary",
    ]:
        result = await writable.call("crm_execute", {"sql": sql})
        assert result.is_error, sql
    assert pg.scalar("SELECT array_agg(value) FROM canary") == ["intact"]


async def test_commit_refuses_when_the_data_moved(writable: Toolset, pg: PgServer) -> None:
    """A commit whose row count differs from its preview rolls back and asks for a new preview."""
    change = {"sql": "DELETE FROM orders WHERE customer_id = $1 AND id > 1000", "params": [5]}
    header, _ = answer_or_json(await writable.call("crm_execute", change))
    assert header["rows_affected"] == 0
    pg.scalar("INSERT INTO orders (id, customer_id) VALUES (1001, 5) RETURNING 1")
    try:
        result = await writable.call("crm_execute", {**change, "mode": "commit", "preview_id": header["preview_id"]})
        assert result.is_error
        assert "nothing was committed" in result.text
        assert pg.scalar("SELECT count(*) FROM orders WHERE id = 1001") == 1
    finally:
        pg.scalar("DELETE FROM orders WHERE id = 1001 RETURNING 1")


def answer_or_json(result: object) -> tuple[dict[str, object], object]:
    """Writes without RETURNING answer with a bare JSON header."""
    from bridge import CallResult

    assert isinstance(result, CallResult)
    assert not result.is_error, result.text
    return json.loads(result.text), None


async def test_pool_closes_with_the_toolset(pg: PgServer) -> None:
    """The pool opens on first use and its connections are closed when the toolset's `async with` ends."""
    import anyio

    count = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'bridge_pool_test'"
    toolset = postgres_toolset(f"{pg.reader} application_name=bridge_pool_test", name="closing")
    assert pg.scalar(count) == 0
    async with toolset:
        assert not (await toolset.call("db_query", {"sql": "SELECT 1"})).is_error
        assert pg.scalar(count) >= 1
    with anyio.fail_after(5):  # the server reaps a backend shortly after its client hangs up
        while pg.scalar(count):  # noqa: ASYNC110 - PostgreSQL offers no event for a backend exiting
            await anyio.sleep(0.02)
