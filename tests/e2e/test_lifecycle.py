"""Session lifecycle: termination, operator errors, following an agent, graceful shutdown, watching, threads."""

from __future__ import annotations

import anyio
import pytest
from e2e_support import BOTH_BACKENDS, Calls, serve_turn, world

from bridge import APIAccessError, Bridge, CallEventKind, SessionNotFoundError, Timeouts, ToolContext, tool
from bridge.testing import AgentTurn, Behavior, Emulator

pytestmark = pytest.mark.anyio


class Gate:
    """A tool that waits for the test to open its gate, so the test can act while calls run."""

    def __init__(self) -> None:
        self.open = anyio.Event()
        self.finished: list[int] = []

        @tool(idempotent=False)
        async def slow(n: int) -> str:
            """Take a while.

            Args:
                n: Which call.
            """
            await self.open.wait()
            self.finished.append(n)
            return f"slow {n}"

        self.slow = slow


async def two_slow(agent: AgentTurn) -> None:
    results = await agent.call_tools([("slow", {"n": 1}), ("slow", {"n": 2})])
    await agent.say(" ".join(r.text for r in results))


@BOTH_BACKENDS
async def test_termination_ends_serving_and_cancels_calls_without_posting() -> None:
    """A terminated session ends `serve`, cancels its running calls, and nothing is posted after it (I6)."""
    gate, calls = Gate(), Calls()
    async with world([gate.slow], two_slow) as w:
        session_id = await w.session()
        async with Bridge(w.client, [gate.slow], on_call=calls.listen) as bridge:
            await w.say(session_id)
            with anyio.fail_after(10):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(bridge.serve, session_id)
                    await calls.wait(CallEventKind.STARTED, 2)
                    w.api.control.terminate(session_id)
            assert bridge.sessions == []
            assert len(calls.of(CallEventKind.CANCELLED)) == 2
            assert (await bridge.journal.unfinished(session_id)) == []
        report = w.api.control.invariants(session_id)
    assert report.late == {}
    assert sorted(report.abandoned) == sorted(c.tool_use_id for c in report.calls)
    assert gate.finished == []


async def test_serving_an_already_terminated_session_returns_at_once() -> None:
    """A session terminated before serving starts is noticed, not waited on forever."""
    async with world([], ScriptedNoop()) as w:
        session_id = await w.session()
        w.api.control.terminate(session_id)
        async with Bridge(w.client, []) as bridge:
            with anyio.fail_after(5):
                await bridge.serve(session_id)


class ScriptedNoop:
    async def __call__(self, agent: AgentTurn) -> None:
        await agent.say("nothing to do")


@BOTH_BACKENDS
async def test_unknown_session_and_refused_key_are_clear_errors() -> None:
    """404 raises SessionNotFoundError and 401 raises APIAccessError, instead of a silent stop."""
    async with world([], ScriptedNoop()) as w:
        session_id = await w.session()
        async with Bridge(w.client, []) as bridge:
            with pytest.raises(SessionNotFoundError, match="sesn_missing"):
                await bridge.serve("sesn_missing")
        async with Bridge(w.api.client(api_key="sk-ant-wrong", max_retries=0), []) as bridge:
            with pytest.raises(APIAccessError, match="401"):
                await bridge.serve(session_id)


async def test_deleted_session_mid_serve_ends_serving() -> None:
    """Deleting a served session ends `serve` normally; its journaled calls are abandoned."""
    gate, calls = Gate(), Calls()
    async with world([gate.slow], two_slow) as w:
        session_id = await w.session()
        async with Bridge(w.client, [gate.slow], on_call=calls.listen) as bridge:
            await w.say(session_id)
            with anyio.fail_after(10):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(bridge.serve, session_id)
                    await calls.wait(CallEventKind.STARTED, 2)
                    await w.client.beta.sessions.delete(session_id)
            assert (await bridge.journal.unfinished(session_id)) == []


async def test_serve_agent_follows_new_sessions_and_skips_terminated_ones() -> None:
    """`serve_agent` serves the agent's live sessions and each new one; terminated ones are not attached."""

    @tool
    async def echo(text: str) -> str:
        """Echo.

        Args:
            text: What to say back.
        """
        return text

    async def script(agent: AgentTurn) -> None:
        result = await agent.call_tool("echo", {"text": agent.text})
        await agent.say(result.text)

    async with world([echo], script) as w:
        before, dead = await w.session(), await w.session()
        w.api.control.terminate(dead)
        bridge = Bridge(w.client, [echo], timeouts=Timeouts(agent_poll=0.05))
        async with bridge, anyio.create_task_group() as tg:
            tg.start_soon(bridge.serve_agent, w.agent_id)
            after = await w.session()
            with anyio.fail_after(10):
                for session_id in (before, after):
                    await w.say(session_id, f"hello {session_id}")
                    await w.api.control.wait_idle(session_id, "end_turn")
            assert dead not in bridge.sessions
            tg.cancel_scope.cancel()
        report = w.api.control.invariants()
    report.assert_ok()
    assert len(report.calls) == 2


async def test_serve_agent_of_an_unknown_agent_is_an_error() -> None:
    """Following an agent that does not exist raises SessionNotFoundError."""
    async with world([], ScriptedNoop()) as w, Bridge(w.client, []) as bridge:
        with pytest.raises(SessionNotFoundError, match="agent_missing"):
            await bridge.serve_agent("agent_missing")


@BOTH_BACKENDS
async def test_shutdown_lets_running_calls_finish_within_the_drain() -> None:
    """Leaving the bridge waits for running calls (up to the drain) and posts their results."""
    gate, calls = Gate(), Calls()
    async with world([gate.slow], two_slow) as w:
        session_id = await w.session()
        async with Bridge(w.client, [gate.slow], on_call=calls.listen) as bridge:
            bridge.attach(session_id)
            await w.say(session_id)
            with anyio.fail_after(10):
                await calls.wait(CallEventKind.STARTED, 2)
            gate.open.set()
        await w.api.control.wait_idle(session_id, "end_turn")
        w.api.control.invariants(session_id).assert_ok()
    assert sorted(gate.finished) == [1, 2]


async def test_shutdown_past_the_drain_cancels_and_answers_running_calls() -> None:
    """Calls still running when the drain ends are cancelled and answered (outcome unknown), never left hanging."""
    gate, calls = Gate(), Calls()
    texts: list[str] = []

    async def script(agent: AgentTurn) -> None:
        results = await agent.call_tools([("slow", {"n": 1}), ("slow", {"n": 2})])
        texts.extend(r.text for r in results)

    async with world([gate.slow], script) as w:
        session_id = await w.session()
        async with Bridge(w.client, [gate.slow], timeouts=Timeouts(drain=0.1), on_call=calls.listen) as bridge:
            bridge.attach(session_id)
            await w.say(session_id)
            with anyio.fail_after(10):
                await calls.wait(CallEventKind.STARTED, 2)
        await w.api.control.wait_idle(session_id, "end_turn")
        w.api.control.invariants(session_id).assert_ok()
    assert len(texts) == 2
    assert all("shutdown" in t and "unknown" in t for t in texts)
    assert gate.finished == []


@BOTH_BACKENDS
async def test_an_earlier_deadline_shortens_a_drain_under_way() -> None:
    """`detach` during a long drain (a second SIGINT does that) ends it at once; each running call is answered once."""
    gate, calls = Gate(), Calls()
    texts: list[str] = []

    async def script(agent: AgentTurn) -> None:
        results = await agent.call_tools([("slow", {"n": 1}), ("slow", {"n": 2})])
        texts.extend(r.text for r in results)

    async with world([gate.slow], script) as w:
        session_id = await w.session()

        async def shorten_the_drain(bridge: Bridge) -> None:
            await w.api.control.wait_streams(session_id, open=0)  # the drain has begun: the stream was closed
            bridge.detach(session_id)

        async with anyio.create_task_group() as tg:
            async with Bridge(w.client, [gate.slow], timeouts=Timeouts(drain=60), on_call=calls.listen) as bridge:
                bridge.attach(session_id)
                await w.say(session_id)
                with anyio.fail_after(5):
                    await calls.wait(CallEventKind.STARTED, 2)
                tg.start_soon(shorten_the_drain, bridge)
                left = anyio.current_time()
            drained_in = anyio.current_time() - left
        await w.api.control.wait_idle(session_id, "end_turn")
        w.api.control.invariants(session_id).assert_ok()
    assert drained_in < 3, drained_in
    assert len(texts) == 2
    assert all("shutdown" in t for t in texts)
    assert gate.finished == []


async def test_watch_sees_the_sessions_other_events() -> None:
    """`watch` yields the session's agent messages and status changes from the bridge's own stream."""
    async with world([], ScriptedNoop()) as w:
        session_id = await w.session()
        async with Bridge(w.client, []) as bridge:
            seen: list[str] = []
            async with bridge.watch(session_id) as events:
                await bridge.ask(session_id, "hi")
                with anyio.fail_after(5):
                    async for event in events:
                        seen.append(event.type)
                        if event.type == "session.status_idle":
                            break
            assert w.api.control.stream_connects(session_id) == 1  # ask and watch share the bridge's stream
    assert {"user.message", "session.status_running", "agent.message", "session.status_idle"} <= set(seen)


async def test_unknown_tools_can_be_left_for_another_client() -> None:
    """With unknown_tools="leave", a call for a tool this bridge does not serve stays pending for its owner."""

    async def script(agent: AgentTurn) -> None:
        await agent.call_tool("elsewhere", {})

    extra = [{"type": "custom", "name": "elsewhere", "description": "x", "input_schema": {"type": "object"}}]
    calls = Calls()
    async with world([], script, extra_tools=extra) as w:
        session_id = await w.session()
        async with Bridge(w.client, [], unknown_tools="leave", on_call=calls.listen) as bridge:
            bridge.attach(session_id)
            await w.say(session_id)
            await w.api.control.wait_idle(session_id, "requires_action")
            async with bridge.watch(session_id):
                pass
        report = w.api.control.invariants(session_id)
    assert len(report.unanswered) == 1
    assert calls.events == []


@BOTH_BACKENDS
async def test_subagent_calls_carry_their_thread_and_a_thread_interrupt_cancels_only_them() -> None:
    """Calls from a sub-agent thread get `ctx.thread_id`; interrupting that thread cancels and drops only its calls."""
    threads: list[str | None] = []
    gate = Gate()

    @tool
    async def where(ctx: ToolContext) -> str:
        """Say which thread asked."""
        threads.append(ctx.thread_id)
        return "here"

    results: list[str] = []

    async def script(agent: AgentTurn) -> None:
        async with agent.subagent("helper") as sub:
            results.append((await sub.call_tool("where", {})).text)
            results.append(str((await sub.call_tool("slow", {"n": 1})).interrupted))
        results.append((await agent.call_tool("where", {})).text)
        await agent.say("done")

    calls = Calls()
    async with world([where, gate.slow], script) as w:
        session_id = await w.session()
        async with Bridge(w.client, [where, gate.slow], on_call=calls.listen) as bridge:
            bridge.attach(session_id)
            await w.say(session_id)
            with anyio.fail_after(10):
                started = await calls.wait(CallEventKind.STARTED, 2)
                thread_id = started[-1].thread_id
                assert thread_id is not None
                await w.client.beta.sessions.events.send(
                    session_id, events=[{"type": "user.interrupt", "session_thread_id": thread_id}]
                )
                await serve_turn(bridge, session_id)
                await calls.wait(CallEventKind.DROPPED)
        report = w.api.control.invariants(session_id)
    assert threads == [thread_id, None]
    assert results == ["here", "True", "here"]
    assert report.duplicates == {}
    assert report.late == {}
    assert gate.finished == []


@pytest.mark.parametrize("scope", ["session", "thread"])
async def test_interrupted_calls_the_next_idle_still_lists_are_answered_once(scope: str) -> None:
    """When an interrupt leaves the calls pending (the next idle lists them), each cancelled call is answered once."""
    gate = Gate()
    texts: list[str] = []

    async def script(agent: AgentTurn) -> None:
        if scope == "session":
            results = await agent.call_tools([("slow", {"n": 1}), ("slow", {"n": 2})])
        else:
            async with agent.subagent("helper") as sub:
                results = await sub.call_tools([("slow", {"n": 1}), ("slow", {"n": 2})])
        texts.extend(r.text for r in results)
        await agent.say("done")

    calls = Calls()
    async with world([gate.slow], script, behavior=Behavior(interrupted_calls="keep")) as w:
        session_id = await w.session()
        async with Bridge(w.client, [gate.slow], on_call=calls.listen) as bridge:
            bridge.attach(session_id)
            await w.say(session_id)
            with anyio.fail_after(5):
                started = await calls.wait(CallEventKind.STARTED, 2)
                interrupt: dict[str, str] = {"type": "user.interrupt"}
                if scope == "thread":
                    interrupt["session_thread_id"] = str(started[0].thread_id)
                await w.client.beta.sessions.events.send(session_id, events=[interrupt])
                await w.api.control.wait_idle(session_id, "end_turn")
        report = w.api.control.invariants(session_id)
    report.assert_ok()
    assert [c.state for c in report.calls] == ["answered", "answered"]
    assert all(text.startswith("The call was cancelled while running (interrupted).") for text in texts), texts
    assert len(calls.of(CallEventKind.CANCELLED)) == len(calls.of(CallEventKind.POSTED)) == 2
    assert calls.of(CallEventKind.DROPPED) == []
    assert gate.finished == []


async def test_metadata_updates_reach_later_calls() -> None:
    """After `sessions.update(metadata=...)`, the next calls see the new metadata in ToolContext."""

    @tool
    def tenant(ctx: ToolContext) -> str:
        """Say the tenant."""
        return ctx.metadata.get("tenant", "-")

    async def script(agent: AgentTurn) -> None:
        await agent.say((await agent.call_tool("tenant", {})).text)

    async with world([tenant], script) as w:
        session_id = await w.session(metadata={"tenant": "a"})
        async with Bridge(w.client, [tenant]) as bridge:
            assert await bridge.ask(session_id, "1") == "a"
            async with bridge.watch(session_id) as events:
                await w.client.beta.sessions.update(session_id, metadata={"tenant": "b"})
                async for event in events:
                    if event.type == "session.updated":
                        break
            assert await bridge.ask(session_id, "2") == "b"


async def test_emulator_fixture_sanity() -> None:
    """The emulator used here runs the real SDK over HTTP (guards against a silently mocked transport)."""
    async with Emulator() as api:
        assert api.base_url.startswith("http://127.0.0.1:")
