"""Scheduling end to end: per-key limits from `concurrency_key`, and timeout precedence tool > toolset > bridge."""

from __future__ import annotations

from collections import Counter

import anyio
import pytest
from e2e_support import world

from bridge import Bridge, Toolset, tool
from bridge.testing import AgentTurn

pytestmark = pytest.mark.anyio


async def test_concurrency_key_limits_calls_per_value() -> None:
    """With concurrency_key="account" and max_concurrency=1, calls for one account never overlap; accounts do."""
    running: Counter[str] = Counter()
    peaks: Counter[str] = Counter()
    overall = 0

    @tool(concurrency_key="account", max_concurrency=1)
    async def charge(account: str, cents: int) -> str:
        """Charge an account.

        Args:
            account: Whose account.
            cents: How much.
        """
        nonlocal overall
        running[account] += 1
        peaks[account] = max(peaks[account], running[account])
        overall = max(overall, sum(running.values()))
        try:
            await anyio.sleep(0.02)
        finally:
            running[account] -= 1
        return f"{account} {cents}"

    async def script(agent: AgentTurn) -> None:
        await agent.call_tools([("charge", {"account": f"acct-{i % 2}", "cents": i}) for i in range(6)])
        await agent.say("done")

    async with world([charge], script) as w:
        session_id = await w.session()
        async with Bridge(w.client, [charge]) as bridge:
            await bridge.ask(session_id, "go")
        w.api.control.invariants(session_id).assert_ok()
    assert peaks == {"acct-0": 1, "acct-1": 1}
    assert overall == 2


async def test_timeouts_resolve_tool_then_toolset_then_bridge() -> None:
    """A tool's own timeout beats its toolset's, which beats the bridge's."""

    @tool(timeout=0.05)
    async def own() -> str:
        """Has its own timeout."""
        await anyio.sleep(5)
        return "late"

    @tool
    async def inherited() -> str:
        """Takes the toolset's timeout."""
        await anyio.sleep(5)
        return "late"

    @tool
    async def bridged() -> str:
        """Takes the bridge's timeout."""
        await anyio.sleep(5)
        return "late"

    texts: dict[str, str] = {}

    async def script(agent: AgentTurn) -> None:
        for result in await agent.call_tools([("own", {}), ("inherited", {}), ("bridged", {})]):
            texts[result.name] = result.text
        await agent.say("done")

    tools = Toolset.merge(Toolset([own, inherited], timeout=0.1), Toolset([bridged]))
    async with world(tools, script) as w:
        session_id = await w.session()
        async with Bridge(w.client, tools, timeout=0.15) as bridge:
            await bridge.ask(session_id, "go")
    assert "0.05 s" in texts["own"]
    assert "0.1 s" in texts["inherited"]
    assert "0.15 s" in texts["bridged"]
