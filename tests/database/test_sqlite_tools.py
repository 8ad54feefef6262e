"""The SQLite toolset as the model uses it: names, hints, catalog, queries, formats, explain, two-phase writes."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from db_answers import answer

from bridge import ConfigError, ToolContext, Toolset
from toolkits.database import QueryLimits, make_sample_db, sqlite_toolset

pytestmark = pytest.mark.anyio


@pytest.fixture
def shop(shop_db: Path) -> Toolset:
    """The sample shop database, served read-only with the default prefix."""
    return sqlite_toolset(shop_db)


@pytest.fixture
def writable(tmp_path: Path) -> tuple[Path, Toolset]:
    """A fresh copy of the shop database served read-write under the prefix `shop`."""
    path = make_sample_db(tmp_path / "shop.db")
    return path, sqlite_toolset(path, read_only=False, prefix="shop")


def test_read_only_toolset_names_and_truthful_hints(shop: Toolset) -> None:
    """Read-only sources get five read-only, idempotent tools and no execute tool."""
    assert shop.names() == ["db_describe_source", "db_search_objects", "db_describe_table", "db_query", "db_explain"]
    for tool in shop:
        assert (tool.options.read_only, tool.options.idempotent, tool.options.destructive) == (True, True, False)
        assert tool.options.timeout is not None
        assert tool.options.timeout > QueryLimits().max_timeout
        assert tool.lint.issues == ()


def test_read_write_toolset_adds_a_destructive_execute(writable: tuple[Path, Toolset]) -> None:
    """execute exists only on read-write sources and is declared destructive and not idempotent."""
    _, toolset = writable
    assert toolset.names()[-1] == "shop_execute"
    execute = toolset.get("shop_execute")
    assert (execute.options.read_only, execute.options.idempotent, execute.options.destructive) == (False, False, True)
    assert toolset.get("shop_query").options.read_only


def test_schema_carries_the_caps_and_the_placeholder_style(tmp_path: Path) -> None:
    """The model sees this source's ceilings in the schema and the `?` placeholder style in the description."""
    limits = QueryLimits(max_rows=10, max_rows_limit=50)
    toolset = sqlite_toolset(make_sample_db(tmp_path / "s.db"), limits=limits)
    query = toolset.get("db_query")
    assert query.input_schema["properties"]["max_rows"]["anyOf"][0]["maximum"] == 50
    assert "? placeholders" in query.description
    assert "sql" in query.input_schema["required"]


def test_missing_or_invalid_files_fail_at_construction(tmp_path: Path) -> None:
    """A toolset never creates a database: a missing file, a non-database file or a bad URI is a ConfigError."""
    with pytest.raises(ConfigError, match="no SQLite database file"):
        sqlite_toolset(tmp_path / "missing.db")
    with pytest.raises(ConfigError, match="no SQLite database file"):
        sqlite_toolset(":memory:")
    (tmp_path / "text.db").write_text("not a database, just text " * 100)
    with pytest.raises(ConfigError, match="cannot open"):
        sqlite_toolset(tmp_path / "text.db")
    db = make_sample_db(tmp_path / "ok.db")
    with pytest.raises(ConfigError, match="mode=rwc"):
        sqlite_toolset(f"file:{db}?mode=rwc")
    with pytest.raises(ConfigError, match="unsupported"):
        sqlite_toolset(f"file:{db}?vfs=unix-none")
    assert sqlite_toolset(f"file:{db}?immutable=1").names()
    assert not (tmp_path / "missing.db").exists()


async def test_describe_source(shop: Toolset) -> None:
    """describe_source reports engine, mode, caps and tool names in its header, the file's details fenced."""
    header, described = answer(await shop.call("db_describe_source", {}))
    assert described["engine"] == "sqlite"
    assert header["mode"] == "read-only"
    assert header["caps"]["max_rows_limit"] == 1000
    assert header["tools"] == shop.names()


async def test_search_objects_progressive_detail(shop: Toolset) -> None:
    """names, then summary, then full: each level adds detail about the same objects."""
    _, names = answer(await shop.call("db_search_objects", {"pattern": "order%"}))
    assert names == [{"name": "order_items"}, {"name": "orders"}]
    _, summary = answer(await shop.call("db_search_objects", {"pattern": "orders", "detail": "summary"}))
    assert summary == [{"name": "orders", "columns": ["id", "customer_id", "placed_at", "status", "total_cents"]}]
    _, full = answer(await shop.call("db_search_objects", {"pattern": "ORDERS", "detail": "full"}))
    assert full[0]["foreign_keys"] == [
        {"columns": ["customer_id"], "references": "customers", "referenced_columns": ["id"]}
    ]
    _, views = answer(await shop.call("db_search_objects", {"object_type": "view"}))
    assert views == [{"name": "order_totals"}]
    header, columns = answer(await shop.call("db_search_objects", {"object_type": "column", "pattern": "%cents"}))
    assert {(c["table"], c["name"]) for c in columns} >= {("orders", "total_cents"), ("products", "price_cents")}
    assert header["count"] == len(columns)
    _, indexes = answer(await shop.call("db_search_objects", {"object_type": "index", "table": "orders"}))
    assert indexes == [{"name": "orders_customer", "table": "orders"}, {"name": "orders_placed_at", "table": "orders"}]
    _, schemas = answer(await shop.call("db_search_objects", {"object_type": "schema"}))
    assert schemas == [{"name": "main"}]


async def test_search_objects_limit(shop: Toolset) -> None:
    """limit bounds the entries and the header says when it was reached."""
    header, tables = answer(await shop.call("db_search_objects", {"limit": 2}))
    assert len(tables) == 2
    assert header["limit_reached"] is True


async def test_describe_table_and_opt_in_sample_rows(shop: Toolset) -> None:
    """describe_table gives columns, keys, indexes and an exact count; rows appear only when asked for."""
    _, table = answer(await shop.call("db_describe_table", {"table": "orders"}))
    assert table["primary_key"] == ["id"]
    assert table["row_count"] == 200
    assert [c["name"] for c in table["columns"]] == ["id", "customer_id", "placed_at", "status", "total_cents"]
    assert {i["name"] for i in table["indexes"]} == {"orders_customer", "orders_placed_at"}
    assert "sample_rows" not in table
    _, sampled = answer(await shop.call("db_describe_table", {"table": "products", "sample_rows": 2}))
    assert sampled["sample_rows"]["columns"][:2] == ["id", "name"]
    assert len(sampled["sample_rows"]["rows"]) == 2


async def test_describe_table_suggests_close_names(shop: Toolset) -> None:
    """An unknown table is an is_error with the closest names, so the model can correct itself."""
    result = await shop.call("db_describe_table", {"table": "order"})
    assert result.is_error
    assert "did you mean" in result.text
    assert result.text.index("<untrusted-data-") < result.text.index("orders")


async def test_query_with_bound_params_in_each_format(shop: Toolset) -> None:
    """Values are bound with ?, and the same rows render as JSON, CSV and markdown."""
    args = {"sql": "SELECT id, name FROM products WHERE price_cents > ? ORDER BY id", "params": [5000]}
    header, body = answer(await shop.call("db_query", args))
    assert body == {"columns": ["id", "name"], "rows": [[3, "Pour-over kettle"], [4, "Burr grinder"]]}
    assert (header["row_count"], header["truncated"], header["format"]) == (2, False, "json")
    _, csv_body = answer(await shop.call("db_query", {**args, "format": "csv"}))
    assert csv_body == "id,name\n3,Pour-over kettle\n4,Burr grinder"
    _, md = answer(await shop.call("db_query", {**args, "format": "markdown"}))
    assert md.splitlines()[2] == "| 3 | Pour-over kettle |"


async def test_query_input_errors_name_the_field(shop: Toolset) -> None:
    """Bad input never reaches the engine: the bridge's validation names the field and the allowed range."""
    result = await shop.call("db_query", {"sql": "SELECT 1", "max_rows": 0})
    assert result.is_error
    assert "max_rows" in result.text
    result = await shop.call("db_query", {"sql": "SELECT 1", "format": "xml"})
    assert result.is_error
    assert "format" in result.text
    result = await shop.call("db_query", {"sql": "SELECT ?", "params": []})
    assert result.is_error
    assert result.text.startswith("invalid_input:")
    result = await shop.call("db_query", {"sql": "SELECT * FROM nope"})
    assert result.is_error
    assert "no such table: nope" in result.text


async def test_query_cancelled_by_the_runtime_stops_the_statement(shop: Toolset) -> None:
    """A cancelled call (interrupt, runtime deadline) stops SQLite through the same progress handler."""
    ctx = ToolContext(tool_name="db_query")
    ctx.cancel()
    result = await shop.call(
        "db_query", {"sql": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c"}, ctx
    )
    assert result.is_error
    assert result.text.startswith("cancelled:")


async def test_explain_shows_the_plan(shop: Toolset) -> None:
    """explain returns SQLite's query plan without running the statement."""
    _, plan = answer(
        await shop.call("db_explain", {"sql": "SELECT * FROM orders WHERE customer_id = ?", "params": [1]})
    )
    assert plan["plan"] == ["SEARCH orders USING INDEX orders_customer (customer_id=?)"]
    result = await shop.call("db_explain", {"sql": "DELETE FROM orders"})
    assert result.is_error
    assert "DELETE orders" in result.text


def rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


async def test_preview_rolls_back_and_commit_applies_exactly_that(writable: tuple[Path, Toolset]) -> None:
    """preview runs and rolls back, returning affected rows and an id; commit with that id applies it once."""
    path, toolset = writable
    change = {
        "sql": "UPDATE products SET stock = stock + ? WHERE category = ? RETURNING id, stock",
        "params": [100, "coffee"],
    }
    before = rows(path, "SELECT id, stock FROM products ORDER BY id")
    header, returned = answer(await toolset.call("shop_execute", change))
    assert (header["mode"], header["committed"], header["rows_affected"]) == ("preview", False, 2)
    assert [r[0] for r in returned["rows"]] == [1, 2]
    assert rows(path, "SELECT id, stock FROM products ORDER BY id") == before
    header, _ = answer(
        await toolset.call("shop_execute", {**change, "mode": "commit", "preview_id": header["preview_id"]})
    )
    assert (header["committed"], header["rows_affected"]) == (True, 2)
    after = dict(rows(path, "SELECT id, stock FROM products ORDER BY id"))
    assert after[1] == dict(before)[1] + 100
    assert after[3] == dict(before)[3]


async def test_commit_requires_a_matching_unused_preview(writable: tuple[Path, Toolset]) -> None:
    """No id, a forged id, a different statement, or a second commit with the same id: nothing is applied."""
    path, toolset = writable
    change = {"sql": "DELETE FROM order_items WHERE order_id = ?", "params": [1]}
    before = rows(path, "SELECT count(*) FROM order_items")
    result = await toolset.call("shop_execute", {**change, "mode": "commit"})
    assert result.is_error
    assert "needs the preview_id" in result.text
    result = await toolset.call("shop_execute", {**change, "mode": "commit", "preview_id": "pv_forged"})
    assert result.is_error
    assert "unknown or already used" in result.text
    preview = json.loads((await toolset.call("shop_execute", change)).text)
    other = {"sql": change["sql"], "params": [2], "mode": "commit", "preview_id": preview["preview_id"]}
    result = await toolset.call("shop_execute", other)
    assert result.is_error
    assert "differ from the preview" in result.text
    assert rows(path, "SELECT count(*) FROM order_items") == before
    preview = json.loads((await toolset.call("shop_execute", change)).text)
    committed = await toolset.call("shop_execute", {**change, "mode": "commit", "preview_id": preview["preview_id"]})
    assert not committed.is_error
    again = await toolset.call("shop_execute", {**change, "mode": "commit", "preview_id": preview["preview_id"]})
    assert again.is_error
    assert "already used" in again.text


async def test_commit_refuses_when_the_data_moved(writable: tuple[Path, Toolset]) -> None:
    """If the statement would now affect a different number of rows than its preview, nothing is committed."""
    path, toolset = writable
    change = {"sql": "UPDATE customers SET country = 'XX' WHERE country = ?", "params": ["FR"]}
    preview = json.loads((await toolset.call("shop_execute", change)).text)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE customers SET country = 'FR' WHERE id = 2")
    conn.commit()
    conn.close()
    result = await toolset.call("shop_execute", {**change, "mode": "commit", "preview_id": preview["preview_id"]})
    assert result.is_error
    assert f"but the preview affected {preview['rows_affected']}" in result.text
    assert rows(path, "SELECT count(*) FROM customers WHERE country = 'XX'") == [(0,)]


async def test_max_rows_affected_bounds_a_preview(writable: tuple[Path, Toolset]) -> None:
    """A change larger than max_rows_affected is refused at preview time."""
    result = await writable[1].call("shop_execute", {"sql": "DELETE FROM order_items", "max_rows_affected": 5})
    assert result.is_error
    assert "more than max_rows_affected=5" in result.text


@pytest.mark.parametrize(
    "sql",
    [
        "DROP TABLE customers",
        "CREATE TABLE t (a)",
        "PRAGMA query_only = OFF",
        "ATTACH 'x.db' AS x",
        "DELETE FROM customers; DROP TABLE customers",
        "UPDATE sqlite_sequence SET seq = 0",
        "INSERT INTO customers (name) SELECT load_extension('x')",
    ],
)
async def test_execute_refuses_anything_but_plain_dml(writable: tuple[Path, Toolset], sql: str) -> None:
    """Even on a read-write source, execute runs one INSERT/UPDATE/DELETE: no DDL, PRAGMA, ATTACH or extensions."""
    path, toolset = writable
    before = path.read_bytes()
    result = await toolset.call("shop_execute", {"sql": sql})
    assert result.is_error, result.text
    assert path.read_bytes() == before


async def test_explain_plans_writes_without_running_them(writable: tuple[Path, Toolset]) -> None:
    """On a read-write source explain also plans DML, through a read-only connection: nothing runs."""
    path, toolset = writable
    before = path.read_bytes()
    _, plan = answer(
        await toolset.call("shop_explain", {"sql": "DELETE FROM orders WHERE customer_id = ?", "params": [1]})
    )
    assert plan["plan"] == ["SEARCH orders USING INDEX orders_customer (customer_id=?)"]
    assert path.read_bytes() == before


async def test_query_stays_read_only_on_a_read_write_source(writable: tuple[Path, Toolset]) -> None:
    """The query tool of a read-write source still cannot write: writes go through execute's two phases."""
    path, toolset = writable
    result = await toolset.call("shop_query", {"sql": "DELETE FROM order_items"})
    assert result.is_error
    assert "denied_by_policy" in result.text
    assert rows(path, "SELECT count(*) FROM order_items")[0][0] > 0
