"""The runtime's acceptance bar: concurrency, limits, honest deadlines, interrupts, many sessions at once."""

from __future__ import annotations

import threading

import anyio
import pytest
from e2e_support import BOTH_BACKENDS, Calls, world

from bridge import Bridge, CallEventKind, Limits, ToolContext, tool
from bridge.testing import AgentTurn, Script

pytestmark = pytest.mark.anyio

EVENTS_ROUTE = "POST /v1/sessions/*/events"


@tool
async def io(n: int) -> int:
    """Pretend to do 50 ms of I/O.

    Args:
        n: Echoed back.
    """
    await anyio.sleep(0.05)
    return n


def calls_of(name: str, count: int) -> Script:
    async def script(agent: AgentTurn) -> None:
        results = await agent.call_tools([(name, {"n": i}) for i in range(count)])
        await agent.say(",".join(r.text for r in results))

    return script


@BOTH_BACKENDS
async def test_200_io_calls_in_one_turn_run_concurrently_and_post_in_batches() -> None:
    """200 calls in one turn run up to the per-session limit at once (and never more), in far fewer than 200 POSTs."""
    width = Limits().per_session
    assert width is not None
    running, peak = 0, 0
    full = anyio.Event()

    @tool(name="io")
    async def gathered(n: int) -> int:
        """Wait until a full session's worth of calls run at once: a bridge running fewer never lets them finish.

        Args:
            n: Echoed back.
        """
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        if running == width:
            full.set()
        try:
            await full.wait()
        finally:
            running -= 1
        return n

    async with world([gathered], calls_of("io", 200)) as w:
        session_id = await w.session()
        async with Bridge(w.client, [gathered]) as bridge:
            with anyio.fail_after(60):  # a bridge running calls one by one would wait here forever
                reply = await bridge.ask(session_id, "go")
        report = w.api.control.invariants(session_id)
        report.assert_ok()
        posts = len(w.api.control.requests(EVENTS_ROUTE)) - 1  # minus the user message
    assert reply == ",".join(str(i) for i in range(200))
    assert peak == width  # all the limit allows, and no more
    assert len(report.calls) == 200
    assert posts < 50, f"{posts} result POSTs for 200 results"


async def test_per_tool_limit_of_two_is_never_exceeded() -> None:
    """A tool declared max_concurrency=2 never has more than two calls running, across 20 parallel calls."""
    running, peak = 0, 0

    @tool(max_concurrency=2)
    async def narrow(n: int) -> int:
        """Do something that tolerates two callers at once.

        Args:
            n: Echoed back.
        """
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await anyio.sleep(0.01)
        finally:
            running -= 1
        return n

    async with world([narrow], calls_of("narrow", 20)) as w:
        session_id = await w.session()
        async with Bridge(w.client, [narrow]) as bridge:
            await bridge.ask(session_id, "go")
        w.api.control.invariants(session_id).assert_ok()
    assert peak == 2


@BOTH_BACKENDS
async def test_sync_tool_past_its_deadline_is_answered_at_once_and_its_thread_counted() -> None:
    """A sync tool past its 0.2 s timeout is answered while its thread still blocks; the thread counts until it ends."""
    wake = threading.Event()

    @tool(timeout=0.2)
    def sleepy() -> str:
        """Block until the test wakes it."""
        wake.wait(30)
        return "slept"

    async def script(agent: AgentTurn) -> None:
        result = await agent.call_tool("sleepy", {})
        await agent.say(result.text)

    calls = Calls()
    async with world([sleepy], script) as w:
        session_id = await w.session()
        async with Bridge(w.client, [sleepy], on_call=calls.listen) as bridge:
            reply = await bridge.ask(session_id, "go")
            report = w.api.control.invariants(session_id)
            assert bridge.stats().abandoned_threads == 1  # answered while the thread still blocks on `wake`
            wake.set()
            with anyio.fail_after(5):
                await calls.wait(CallEventKind.RELEASED)
            assert bridge.stats().abandoned_threads == 0
    report.assert_ok()
    assert "did not finish in time" in reply
    assert len(calls.of(CallEventKind.TIMED_OUT)) == 1


@BOTH_BACKENDS
async def test_interrupt_cancels_running_and_queued_calls_and_none_is_answered_twice() -> None:
    """user.interrupt during 10 calls (5 running, 5 queued) cancels them all; none runs on or gets 2 answers."""
    after_cancel: list[int] = []
    started_sync = threading.Event()

    @tool(max_concurrency=5)
    async def hang(n: int) -> int:
        """Wait for a long time.

        Args:
            n: Which call.
        """
        await anyio.sleep(30)
        after_cancel.append(n)
        return n

    @tool
    def spin(ctx: ToolContext) -> str:
        """Run in a thread until cancelled."""
        started_sync.set()
        while not ctx.cancelled:
            ctx.cancel_event.wait(5)  # type: ignore[union-attr]
        return "stopped"

    async def script(agent: AgentTurn) -> None:
        await agent.call_tools([("hang", {"n": i}) for i in range(9)] + [("spin", {})])
        await agent.say("never")

    calls = Calls()
    async with world([hang, spin], script) as w:
        session_id = await w.session()
        async with Bridge(w.client, [hang, spin], on_call=calls.listen) as bridge:
            bridge.attach(session_id)
            await w.say(session_id)
            with anyio.fail_after(10):
                await calls.wait(CallEventKind.STARTED, 6)  # 5 of `hang` (its limit) + `spin`
            assert bridge.stats().queued == 4
            await w.client.beta.sessions.events.send(session_id, events=[{"type": "user.interrupt"}])
            with anyio.fail_after(10):  # `hang` never returns: only the interrupt can end these calls
                cancelled = await calls.wait(CallEventKind.CANCELLED, 10)
            await w.api.control.wait_idle(session_id, "end_turn")
            with anyio.fail_after(5):
                await calls.wait(CallEventKind.DROPPED, 10)
        report = w.api.control.invariants(session_id)
    assert sorted(e.tool_use_id for e in cancelled) == sorted(c.tool_use_id for c in report.calls)
    assert len(calls.of(CallEventKind.STARTED)) == 6  # the queued calls never started
    assert after_cancel == []
    assert report.duplicates == {}
    assert report.late == {}
    assert set(report.abandoned) == {c.tool_use_id for c in report.calls}


async def test_one_process_serves_100_sessions_at_once() -> None:
    """One bridge serves 100 sessions concurrently; every call in every session gets exactly one answer."""

    async def script(agent: AgentTurn) -> None:
        results = await agent.call_tools([("io", {"n": 1}), ("io", {"n": 2})])
        await agent.say(str(sum(int(r.text) for r in results)))

    async with world([io], script) as w:
        sessions = [await w.session() for _ in range(100)]
        replies: dict[str, str] = {}
        async with Bridge(w.client, [io]) as bridge:

            async def ask(session_id: str) -> None:
                replies[session_id] = await bridge.ask(session_id, "go")

            with anyio.fail_after(30):
                async with anyio.create_task_group() as tg:
                    for session_id in sessions:
                        tg.start_soon(ask, session_id)
            assert len(bridge.sessions) == 100
        report = w.api.control.invariants()
    report.assert_ok()
    assert set(replies.values()) == {"3"}
    assert len(report.calls) == 200
