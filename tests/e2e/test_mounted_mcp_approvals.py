"""Approval policies on mounted MCP servers (`mcp_toolset(..., approval=...)`): a tool the policy says "ask" about is
parked by the bridge and reaches the MCP server only once approved; a denied one never reaches it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from e2e_support import Calls, serve_turn, world

from bridge import Bridge, CallEventKind, PendingApproval, Toolset
from bridge.testing import AgentTurn
from toolkits.mcp import mcp_toolset

pytestmark = pytest.mark.anyio

FAULT_SERVER = str(Path(__file__).resolve().parents[1] / "mcp_pack" / "fault_server.py")
answers: list[tuple[str, bool]] = []


async def echo_then_say(agent: AgentTurn) -> None:
    result = await agent.call_tool("fault_echo", {"text": agent.text})
    answers.append((result.text, result.is_error))
    await agent.say(result.text)


async def serve_one_echo(tools: Toolset, decide: Any) -> tuple[Calls, list[str]]:
    """Serve one `fault_echo` call; `decide(bridge, pending)` decides a parked call. Returns the call events and the
    kinds of events seen before the decision."""
    answers.clear()
    calls = Calls()
    before: list[str] = []
    async with tools, world(tools, echo_then_say) as w:  # opened first: the agent needs the MCP tools' definitions
        session_id = await w.session()
        bridge = Bridge(w.client, tools, on_call=calls.listen)
        async with bridge, bridge.approvals.subscribe() as requests:
            await w.say(session_id, "hello")
            with anyio.fail_after(30):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(serve_turn, bridge, session_id)
                    if decide is not None:
                        pending = await requests.receive()
                        await calls.wait(CallEventKind.AWAITING_APPROVAL)
                        before = [e.kind.value for e in calls.events]
                        decide(bridge, pending)
        w.api.control.invariants(session_id).assert_ok()
    return calls, before


def fault_toolset(approval: Any) -> Toolset:
    return mcp_toolset([sys.executable, FAULT_SERVER], name="fault", approval=approval)


async def test_ask_parks_the_mcp_call_until_approved() -> None:
    """With approval "ask", the call waits (not started) until approved; then it reaches the server, once."""

    def approve(bridge: Bridge, pending: PendingApproval) -> None:
        assert pending.tool_name == "fault_echo"
        assert dict(pending.input) == {"text": "hello"}
        assert bridge.approvals.approve(pending.call_id, by="alice")

    calls, before = await serve_one_echo(fault_toolset("ask"), approve)
    assert "started" not in before
    [(text, is_error)] = answers
    assert not is_error
    assert "\nhello\n" in text  # the server's answer, fenced as untrusted data
    assert len(calls.of(CallEventKind.STARTED)) == 1
    assert len(calls.of(CallEventKind.APPROVED)) == 1


async def test_per_tool_pattern_denies_without_reaching_the_server() -> None:
    """`{"default": "allow", "tools": {"ech*": "deny"}}`: the pattern (the server's own tool name) denies the call,
    which never starts; the model reads the denial."""
    calls, _ = await serve_one_echo(fault_toolset({"default": "allow", "tools": {"ech*": "deny"}}), None)
    assert answers == [("Denied by policy. The call did not run.", True)]
    assert calls.of(CallEventKind.STARTED) == []
