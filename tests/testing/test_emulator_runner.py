"""The SDK's own session tool runner, unchanged, completes scripted sessions against the emulator."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from anthropic import beta_async_tool
from emulator_support import BOTH_BACKENDS

from bridge.testing import AgentTurn, Emulator, ScriptedAgent

pytestmark = pytest.mark.anyio

executed: list[tuple[str, int, int]] = []


@beta_async_tool
async def add(a: int, b: int) -> str:
    """Add two integers."""
    executed.append(("add", a, b))
    return str(a + b)


@beta_async_tool
async def mul(a: int, b: int) -> str:
    """Multiply two integers."""
    executed.append(("mul", a, b))
    return str(a * b)


async def ten_calls(agent: AgentTurn) -> None:
    """Four calls one after another, then six in parallel in one idle, then an answer built from the results."""
    total = 0
    for i in range(4):
        result = await agent.call_tool("add", {"a": i, "b": total})
        assert not result.is_error, result.text
        total = int(result.text)
    results = await agent.call_tools([("mul", {"a": i, "b": 2}) for i in range(6)])
    total += sum(int(r.text) for r in results)
    await agent.say(f"total {total}")


async def run_session(make_setup: Any, api: Emulator) -> str:
    setup = await make_setup(api)
    session_id = await setup.session()
    runner = setup.client.beta.sessions.events.tool_runner(session_id, tools=[add, mul], max_idle=0)
    calls = []
    async with anyio.create_task_group() as tg:

        async def consume() -> None:
            async for call in runner:
                calls.append(call)

        tg.start_soon(consume)
        await api.control.wait_streams(session_id, connects=1)
        await setup.say(session_id)
        await api.control.wait_idle(session_id, "end_turn")
    assert len(calls) == 10
    assert all(c.posted and not c.is_error for c in calls)
    return session_id


@BOTH_BACKENDS
async def test_tool_runner_completes_ten_calls() -> None:
    """The SDK runner answers 10 scripted calls (sequential and parallel) and stops at the turn's end."""
    from emulator_support import _make_setup

    executed.clear()
    async with Emulator(script=ten_calls) as api:
        session_id = await run_session(_make_setup, api)
        events = api.control.events(session_id)
        report = api.control.invariants(session_id)
    assert [e["content"][0]["text"] for e in events if e["type"] == "agent.message"] == ["total 36"]
    assert len(executed) == 10
    report.assert_ok()
    assert len(report.calls) == 10


@BOTH_BACKENDS
async def test_tool_runner_survives_a_stream_drop() -> None:
    """The first stream is cut after 8 events; the runner reconnects, reconciles, answers each call exactly once."""
    from emulator_support import _make_setup

    executed.clear()
    async with Emulator(script=ten_calls) as api:
        api.control.drop_next_stream(after_events=8)
        session_id = await run_session(_make_setup, api)
        assert api.control.stream_connects(session_id) >= 2
        report = api.control.invariants(session_id)
    report.assert_ok()
    assert len(executed) == 10


async def test_tool_runner_with_an_environment_key() -> None:
    """A runner that authenticates with an `environment_key` works when the emulator accepts that key."""
    from emulator_support import _make_setup

    async with Emulator(script=ScriptedAgent.calls([("add", {"a": 1, "b": 2})]), extra_api_keys=("env-key",)) as api:
        setup = await _make_setup(api)
        sid = await setup.session()
        runner = setup.client.beta.sessions.events.tool_runner(sid, tools=[add], max_idle=0, environment_key="env-key")
        async with anyio.create_task_group() as tg:
            tg.start_soon(runner.until_done)
            await api.control.wait_streams(sid, open=1)
            await setup.say(sid)
        api.control.invariants(sid).assert_ok()
        assert len(api.control.invariants(sid).calls) == 1
