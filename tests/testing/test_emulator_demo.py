"""The demo's scripted agent runs end to end with the SDK's own runner and real SQLite."""

from __future__ import annotations

import sqlite3
from typing import Any

import anyio
import pytest
from anthropic import beta_async_tool, beta_tool
from emulator_support import Setup

from bridge.testing import Emulator, demo_script

pytestmark = pytest.mark.anyio


@beta_tool
def sql_query(sql: str) -> str:
    """Run a read-only SQL query."""
    with sqlite3.connect(":memory:") as db:
        db.execute("CREATE TABLE users (id INTEGER)")
        return repr(db.execute(sql).fetchall())


@beta_async_tool
async def slow_report() -> str:
    """A slow report."""
    await anyio.lowlevel.checkpoint()
    return "report ready"


@beta_async_tool
async def get_time() -> str:
    """The time."""
    return "12:00"


@beta_async_tool
async def get_weather(city: str) -> str:
    """The weather."""
    return f"sunny in {city}"


async def test_demo_script_with_the_sdk_runner(make_setup: Any) -> None:
    """Bad input is rejected then corrected, the slow tool runs beside the fast ones, and the answer sums it up."""
    async with Emulator(script=demo_script()) as api:
        setup: Setup = await make_setup(api)
        sid = await setup.session()
        runner = setup.client.beta.sessions.events.tool_runner(
            sid, tools=[sql_query, slow_report, get_time, get_weather], max_idle=0
        )
        calls: list[Any] = []
        async with anyio.create_task_group() as tg:

            async def consume() -> None:
                calls.extend([call async for call in runner])

            tg.start_soon(consume)
            await api.control.wait_streams(sid, open=1)
            await setup.say(sid, "what tables do we have?")
            await api.control.wait_idle(sid)
        assert [(c.name, c.is_error) for c in calls] == [
            ("sql_query", True),
            ("sql_query", False),
            ("slow_report", False),
            ("get_time", False),
            ("get_weather", False),
        ]
        (answer,) = [e for e in api.control.events(sid) if e["type"] == "agent.message"]
        assert "sql_query: [('users',)]" in answer["content"][0]["text"]
        idles = [e for e in api.control.events(sid) if e["type"] == "session.status_idle"]
        assert [len(e["stop_reason"].get("event_ids", [])) for e in idles] == [1, 1, 3, 2, 1, 0]
        api.control.invariants(sid).assert_ok()
