"""Serving sessions end to end: the real SDK against the emulator over HTTP, on asyncio and trio."""

from __future__ import annotations

import pytest
from e2e_support import BOTH_BACKENDS, world

from bridge import Bridge, CallEvent, CallEventKind, Timeouts, ToolContext, tool
from bridge.testing import AgentTurn

pytestmark = pytest.mark.anyio

EVENTS_ROUTE = "POST /v1/sessions/*/events"


@tool
async def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first addend.
        b: The second addend.
    """
    return a + b


@tool
def whoami(ctx: ToolContext) -> str:
    """Say which tenant the session belongs to."""
    return ctx.metadata.get("tenant", "?")


async def adding(agent: AgentTurn) -> None:
    result = await agent.call_tool("add", {"a": 2, "b": 3})
    await agent.say(f"the sum is {result.text}")


@BOTH_BACKENDS
async def test_ask_serves_the_tools_and_returns_the_reply() -> None:
    """`ask` sends a message, the bridge answers the agent's tool call, and the agent's reply comes back."""
    events: list[CallEvent] = []
    async with world([add], adding) as w:
        session_id = await w.session()
        async with Bridge(w.client, [add], on_call=events.append) as bridge:
            reply = await bridge.ask(session_id, "add 2 and 3")
            assert reply == "the sum is 5"
        stats = bridge.stats()
        w.api.control.invariants(session_id).assert_ok()
    kinds = [e.kind for e in events]
    assert kinds[:3] == [CallEventKind.RECEIVED, CallEventKind.STARTED, CallEventKind.FINISHED]
    assert CallEventKind.POSTED in kinds
    assert (stats.received, stats.finished, stats.posted) == (1, 1, 1)


@BOTH_BACKENDS
async def test_tools_see_the_session_metadata() -> None:
    """ToolContext.metadata carries the session's metadata, read when serving starts."""

    async def script(agent: AgentTurn) -> None:
        result = await agent.call_tool("whoami", {})
        await agent.say(result.text)

    async with world([whoami], script) as w:
        session_id = await w.session(metadata={"tenant": "acme"})
        async with Bridge(w.client, [whoami]) as bridge:
            assert await bridge.ask(session_id, "who?") == "acme"


async def test_unknown_tool_is_answered_with_the_available_names() -> None:
    """A call naming a tool the bridge does not serve gets an is_error result listing the tools it serves."""
    seen: list[str] = []

    async def script(agent: AgentTurn) -> None:
        result = await agent.call_tool("nope", {})
        seen.append(result.text)
        await agent.say("ok")

    extra = [{"type": "custom", "name": "nope", "description": "x", "input_schema": {"type": "object"}}]
    async with world([add], script, extra_tools=extra) as w:
        session_id = await w.session()
        async with Bridge(w.client, [add]) as bridge:
            await bridge.ask(session_id, "go")
        w.api.control.invariants(session_id).assert_ok()
    assert seen == ["Unknown tool 'nope': this bridge serves add."]


@BOTH_BACKENDS
async def test_ask_whose_message_response_is_lost_stores_the_message_once() -> None:
    """`ask` after a user-message POST stored by the API but whose response was lost finds it in the history."""
    async with world([add], adding) as w:
        session_id = await w.session()
        async with Bridge(w.client, [add], timeouts=Timeouts(post_backoff_max=0.05)) as bridge:
            w.api.control.drop_responses(EVENTS_ROUTE, 1)
            reply = await bridge.ask(session_id, "add 2 and 3")
        messages = [e for e in w.api.control.events(session_id) if e["type"] == "user.message"]
        dropped = [r for r in w.api.control.requests(EVENTS_ROUTE) if r.dropped]
    assert reply == "the sum is 5"
    assert len(dropped) == 1, "the fault did not happen"
    assert len(messages) == 1
