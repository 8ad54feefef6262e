"""The database pack served by the bridge over real HTTP: an agent explores a SQLite database and queries it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import anyio
import pytest
from e2e_support import world

from bridge import Bridge
from bridge.testing import AgentTurn
from toolkits.database import make_sample_db, sqlite_toolset

pytestmark = pytest.mark.anyio


async def explore(agent: AgentTurn) -> None:
    """List the tables, describe one, count its rows, then try a write the pack must refuse."""
    tables = await agent.call_tool("db_search_objects", {"object_type": "table"})
    if tables.is_error or "orders" not in tables.text:
        await agent.say(f"could not list tables: {tables.text}")
        return
    described = await agent.call_tool("db_describe_table", {"table": "orders"})
    counted = await agent.call_tool(
        "db_query", {"sql": "SELECT count(*) AS n FROM orders WHERE status = ?", "params": ["shipped"], "format": "csv"}
    )
    write = await agent.call_tool("db_query", {"sql": "DELETE FROM orders"})
    await agent.say(
        json.dumps(
            {
                "described_ok": not described.is_error and "customer_id" in described.text,
                "count_text": counted.text,
                "count_is_error": counted.is_error,
                "write_is_error": write.is_error,
                "write_text": write.text,
            }
        )
    )


async def test_agent_lists_describes_and_queries_a_sqlite_database(tmp_path: Path) -> None:
    """Through the emulator and the runtime, the pack answers every call; the count is exact and a write is refused."""
    db = make_sample_db(tmp_path / "shop.db")
    with sqlite3.connect(db) as conn:
        (expected,) = conn.execute("SELECT count(*) FROM orders WHERE status = 'shipped'").fetchone()
        (total_before,) = conn.execute("SELECT count(*) FROM orders").fetchone()
    toolset = sqlite_toolset(db)
    async with world(toolset, explore) as w:
        session_id = await w.session()
        async with Bridge(w.client, [toolset]) as bridge:
            with anyio.fail_after(30):
                reply = json.loads(await bridge.ask(session_id, "How many orders have shipped?"))
        w.api.control.invariants(session_id).assert_ok()
    assert reply["described_ok"] is True
    assert reply["count_is_error"] is False
    assert f"\nn\n{expected}\n</untrusted-data-" in reply["count_text"]
    assert reply["write_is_error"] is True
    assert reply["write_text"].startswith("denied_by_policy: this tool runs one SELECT")
    assert reply["write_text"].index("<untrusted-data-") < reply["write_text"].index("DELETE orders")
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (total_before,)
