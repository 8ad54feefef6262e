"""The session state machine as clients see it through the SDK: round trip, results, interrupts, threads, the end."""

from __future__ import annotations

from contextlib import aclosing
from typing import Any

import anthropic
import anyio
import httpx2
import pytest
from anthropic.types.beta.sessions import BetaManagedAgentsSessionThread
from emulator_support import BOTH_BACKENDS, Setup

from bridge.testing import AgentTurn, Behavior, Emulator, ScriptedAgent, validate_event, validate_model
from bridge.testing._validate import EVENT_MODELS, LISTED_EVENT_TYPES

pytestmark = pytest.mark.anyio


def strict(event: Any) -> dict[str, Any]:
    """An SDK event model back as the JSON the emulator sent, validated strictly and of a known type."""
    assert isinstance(event, EVENT_MODELS[event.type]), f"{event.type} parsed as {type(event).__name__}"
    data: dict[str, Any] = event.to_dict(mode="json")
    validate_event(data)
    return data


async def collect_until(events: Any, done: Any) -> list[dict[str, Any]]:
    """Read strictly validated events from an open iterator until `done(event)`."""
    seen: list[dict[str, Any]] = []
    while not seen or not done(seen[-1]):
        seen.append(strict(await anext(events)))
    return seen


def is_end_turn(event: dict[str, Any]) -> bool:
    return event["type"] == "session.status_idle" and event["stop_reason"]["type"] == "end_turn"


@BOTH_BACKENDS
async def test_round_trip_events_validate_strictly(make_setup: Any) -> None:
    """Streamed, echoed and listed events all validate strictly; partial results re-emit the idle with the rest."""
    async with Emulator(script=ScriptedAgent.calls([("add", {"a": 1, "b": 2}), ("mul", {"a": 2, "b": 3})])) as api:
        setup: Setup = await make_setup(api)
        sid = await setup.session()
        async with await setup.client.beta.sessions.events.stream(sid) as stream, aclosing(aiter(stream)) as events:
            await setup.say(sid)
            seen = await collect_until(events, lambda e: e["type"] == "session.status_idle")
            uses = [e for e in seen if e["type"] == "agent.custom_tool_use"]
            assert seen[-1]["stop_reason"]["event_ids"] == [u["id"] for u in uses]
            sent = await setup.client.beta.sessions.events.send(
                sid, events=[{"type": "user.custom_tool_result", "custom_tool_use_id": uses[0]["id"], "content": []}]
            )
            assert sent.data is not None
            echo = strict(sent.data[0])
            assert echo["custom_tool_use_id"] == uses[0]["id"]
            assert echo["processed_at"]
            seen = await collect_until(events, lambda e: e["type"] == "session.status_idle")
            assert [e["type"] for e in seen] == ["user.custom_tool_result", "session.status_idle"]
            assert seen[-1]["stop_reason"]["event_ids"] == [uses[1]["id"]]
            await setup.answer(sid, uses[1]["id"], "6")
            seen = await collect_until(events, is_end_turn)
        assert [e["type"] for e in seen] == [
            "user.custom_tool_result",
            "session.status_running",
            "span.model_request_start",
            "span.model_request_end",
            "agent.message",
            "session.status_idle",
        ]
        assert seen[-2]["content"] == [{"type": "text", "text": "\n6"}]
        listed = [strict(e) async for e in setup.client.beta.sessions.events.list(sid)]
        assert {e["type"] for e in listed} <= LISTED_EVENT_TYPES
        assert listed[0]["type"] == "user.message"
        assert listed[1]["type"] == "session.status_running"
        api.control.invariants(sid).assert_ok()


async def test_events_list_filters_order_limit_and_pages(setup: Setup) -> None:
    """`GET /events` filters by types and time, orders both ways, pages with `page`, accepts limit 1000, not 1001."""
    events = setup.client.beta.sessions.events
    sid = await setup.session()
    await setup.say(sid)
    (use,) = [e async for e in events.list(sid, types=["agent.custom_tool_use"])]
    await setup.answer(sid, use.id, "3")
    await setup.api.control.wait_idle(sid)
    everything = [e async for e in events.list(sid, limit=1000)]
    assert [e.id async for e in events.list(sid, limit=2)] == [e.id for e in everything]
    assert [e.id async for e in events.list(sid, order="desc", limit=3)] == [e.id for e in reversed(everything)]
    idles = [e async for e in events.list(sid, types=["session.status_idle", "user.message"], limit=1)]
    assert [e.type for e in idles] == ["user.message", "session.status_idle", "session.status_idle"]
    middle = everything[3].processed_at
    assert [e.id async for e in events.list(sid, created_at_gte=middle)] == [e.id for e in everything[3:]]
    assert [e.id async for e in events.list(sid, created_at_lt=middle)] == [e.id for e in everything[:3]]
    with pytest.raises(anthropic.BadRequestError):
        await events.list(sid, limit=1001)


async def test_unknown_and_duplicate_results(setup: Setup) -> None:
    """A result for an unknown id is a 400 that stores nothing; a duplicate is accepted and counted."""
    sid = await setup.session()
    await setup.say(sid)
    idle = await setup.api.control.wait_idle(sid, "requires_action")
    (call_id,) = idle["stop_reason"]["event_ids"]
    batch: Any = [
        {"type": "user.custom_tool_result", "custom_tool_use_id": call_id, "content": []},
        {"type": "user.custom_tool_result", "custom_tool_use_id": "sevt_nope"},
    ]
    with pytest.raises(anthropic.BadRequestError):
        await setup.client.beta.sessions.events.send(sid, events=batch)
    assert setup.api.control.invariants(sid).results_of(call_id) == 0
    await setup.answer(sid, call_id, "3")
    await setup.api.control.wait_idle(sid)
    await setup.answer(sid, call_id, "3 again")
    report = setup.api.control.invariants(sid)
    assert report.duplicates == {call_id: 2}
    assert report.unknown_result_ids == ("sevt_nope",)
    assert not report.ok
    assert report.unanswered == ()


async def test_duplicate_results_can_be_rejected(make_setup: Any) -> None:
    """With `duplicate_results="reject"` a second result is a 400, still counted as a duplicate."""
    async with Emulator(
        script=ScriptedAgent.calls([("add", {"a": 1, "b": 2})]), behavior=Behavior(duplicate_results="reject")
    ) as api:
        setup: Setup = await make_setup(api)
        sid = await setup.session()
        await setup.say(sid)
        (call_id,) = (await api.control.wait_idle(sid, "requires_action"))["stop_reason"]["event_ids"]
        await setup.answer(sid, call_id, "3")
        with pytest.raises(anthropic.BadRequestError):
            await setup.answer(sid, call_id, "3")
        assert api.control.invariants(sid).duplicates == {call_id: 2}
        assert len([e for e in api.control.events(sid) if e["type"] == "user.custom_tool_result"]) == 1


async def test_interrupt_abandons_calls_and_late_results_count(setup: Setup) -> None:
    """`user.interrupt` idles the session with end_turn; a result posted afterwards is stored but counted late."""
    sid = await setup.session()
    await setup.say(sid)
    (call_id,) = (await setup.api.control.wait_idle(sid, "requires_action"))["stop_reason"]["event_ids"]
    await setup.client.beta.sessions.events.send(sid, events=[{"type": "user.interrupt"}])
    await setup.api.control.wait_idle(sid, "end_turn")
    assert setup.api.control.invariants(sid).abandoned == (call_id,)
    await setup.answer(sid, call_id, "late")
    report = setup.api.control.invariants(sid)
    assert report.late == {call_id: 1}
    assert report.unanswered == ()
    await setup.say(sid, "again")
    assert (await setup.api.control.wait_idle(sid, "requires_action"))["stop_reason"]["event_ids"] != [call_id]


async def test_interrupt_can_keep_the_calls_it_blocks_on_pending(make_setup: Any) -> None:
    """With `interrupted_calls="keep"`, an interrupt re-emits the idle listing the calls, and answering them resumes."""
    script = ScriptedAgent.calls([("add", {"a": 1, "b": 2})], reply="done")
    async with Emulator(script=script, behavior=Behavior(interrupted_calls="keep")) as api:
        setup: Setup = await make_setup(api)
        sid = await setup.session()
        await setup.say(sid)
        (call_id,) = (await api.control.wait_idle(sid, "requires_action"))["stop_reason"]["event_ids"]
        await setup.client.beta.sessions.events.send(sid, events=[{"type": "user.interrupt"}])
        idle = await api.control.wait_event(sid, "session.status_idle", count=2)
        assert idle["stop_reason"] == {"type": "requires_action", "event_ids": [call_id]}
        await setup.answer(sid, call_id, "3")
        await api.control.wait_idle(sid, "end_turn")
        report = api.control.invariants(sid)
    report.assert_ok()
    assert report.abandoned == ()


async def subagent_script(agent: AgentTurn) -> None:
    """The primary thread delegates two calls to a sub-agent, then one of its own."""
    async with agent.subagent("researcher") as sub:
        first = await sub.call_tool("add", {"a": 1, "b": 1})
        second = await sub.call_tool("add", {"a": 2, "b": 2})
        await sub.say("sub done")
    own = await agent.call_tool("mul", {"a": 3, "b": 3})
    await agent.say(f"{first.text} {second.interrupted} {own.text}")


async def test_subagent_calls_carry_thread_id_and_thread_endpoints(make_setup: Any) -> None:
    """Sub-agent calls carry `session_thread_id` on the primary stream; thread interrupt; thread endpoints work."""
    async with Emulator(script=subagent_script) as api:
        setup: Setup = await make_setup(api)
        sid = await setup.session()
        threads = setup.client.beta.sessions.threads
        async with await setup.client.beta.sessions.events.stream(sid) as stream, aclosing(aiter(stream)) as events:
            await setup.say(sid)
            seen = await collect_until(events, lambda e: e["type"] == "session.status_idle")
            (use,) = [e for e in seen if e["type"] == "agent.custom_tool_use"]
            thread_id = use["session_thread_id"]
            assert [e["type"] for e in seen if e["type"].startswith("session.thread")] == [
                "session.thread_created",
                "session.thread_status_running",
                "session.thread_status_idle",
            ]
            own = [strict(e) async for e in threads.events.list(thread_id, session_id=sid)]
            assert "session_thread_id" not in next(e for e in own if e["type"] == "agent.custom_tool_use")
            await setup.answer(sid, use["id"], "2")
            seen = await collect_until(events, lambda e: e["type"] == "session.status_idle")
            echo = next(e for e in seen if e["type"] == "user.custom_tool_result")
            assert echo["session_thread_id"] == thread_id
            await setup.client.beta.sessions.events.send(
                sid, events=[{"type": "user.interrupt", "session_thread_id": thread_id}]
            )
            seen = await collect_until(events, lambda e: e["type"] == "session.status_idle")
            mul = next(e for e in seen if e["type"] == "agent.custom_tool_use")
            assert "session_thread_id" not in mul
            await setup.answer(sid, mul["id"], "9")
            seen = await collect_until(events, is_end_turn)
        assert seen[-2]["content"][0]["text"] == "2 True 9"
        listed = [t async for t in threads.list(sid)]
        assert [t.id for t in listed] == [thread_id]
        raw = await threads.with_raw_response.retrieve(thread_id, session_id=sid)
        assert validate_model(BetaManagedAgentsSessionThread, raw.http_response.json()).status == "terminated"
        assert (await threads.archive(thread_id, session_id=sid)).archived_at is not None
        report = api.control.invariants(sid)
        assert len(report.abandoned) == 1
        assert report.ok


async def test_thread_stream_carries_the_threads_own_events(make_setup: Any) -> None:
    """`GET .../threads/{tid}/stream` delivers the sub-agent's events without `session_thread_id` on tool uses."""

    async def script(agent: AgentTurn) -> None:
        async with agent.subagent("worker") as sub:
            await agent.say("started")
            await sub.call_tool("add", {"a": 1, "b": 1})

    async with Emulator(script=script) as api:
        setup: Setup = await make_setup(api)
        sid = await setup.session()
        await setup.say(sid)
        idle = await api.control.wait_idle(sid, "requires_action")
        thread_id = next(
            e["session_thread_id"] for e in api.control.events(sid) if e["type"] == "session.thread_created"
        )
        stream = await setup.client.beta.sessions.threads.events.stream(thread_id, session_id=sid)
        async with stream, aclosing(aiter(stream)) as events:
            await setup.answer(sid, idle["stop_reason"]["event_ids"][0], "2")
            seen = await collect_until(events, lambda e: e["type"] == "session.thread_status_terminated")
        assert "session.thread_status_running" in [e["type"] for e in seen]


async def test_termination_and_deletion_close_streams(setup: Setup) -> None:
    """The stream ends after `session.status_terminated` / `session.deleted`; posts to a terminated session are 400."""
    first, second = await setup.session(), await setup.session()
    async with await setup.client.beta.sessions.events.stream(first) as stream:
        await setup.api.control.wait_streams(first, open=1)
        setup.api.control.terminate(first)
        assert [strict(e)["type"] async for e in stream] == ["session.status_terminated"]
    with pytest.raises(anthropic.BadRequestError):
        await setup.say(first)
    assert (await setup.client.beta.sessions.retrieve(first)).status == "terminated"
    async with await setup.client.beta.sessions.events.stream(first) as stream:
        assert [e async for e in stream] == []
    async with await setup.client.beta.sessions.events.stream(second) as stream:
        await setup.api.control.wait_streams(second, open=1)
        await setup.client.beta.sessions.delete(second)
        assert [strict(e)["type"] async for e in stream] == ["session.deleted"]


async def test_initial_events_start_a_turn(setup: Setup) -> None:
    """`initial_events` on create run the script as a user message would."""
    session = await setup.client.beta.sessions.create(
        agent=setup.agent_id,
        environment_id=setup.environment_id,
        initial_events=[{"type": "user.message", "content": [{"type": "text", "text": "hi"}]}],
    )
    assert session.status == "running"
    await setup.api.control.wait_idle(session.id, "requires_action")


async def test_script_errors_end_the_turn_and_surface_on_exit(make_setup: Any) -> None:
    """A failing script emits `session.error` + `retries_exhausted`, and the emulator re-raises it on exit."""

    async def broken(agent: AgentTurn) -> None:
        raise RuntimeError("script bug")

    api = Emulator(script=broken)
    await api.__aenter__()
    try:
        setup: Setup = await make_setup(api)
        sid = await setup.session()
        await setup.say(sid)
        await api.control.wait_idle(sid, "retries_exhausted")
        assert [e["type"] for e in api.control.events(sid)][-2] == "session.error"
    finally:
        with pytest.raises(ExceptionGroup) as info:
            await api.__aexit__(None, None, None)
    assert isinstance(info.value.exceptions[0], RuntimeError)


async def test_pings_keep_an_idle_stream_alive(make_setup: Any) -> None:
    """An idle stream carries `event: ping` frames at the configured interval (the SDK skips them)."""
    async with Emulator(behavior=Behavior(ping_interval=0.02)) as api:
        setup: Setup = await make_setup(api)
        sid = await setup.session()
        headers = {"authorization": f"Bearer {api.api_key}", "anthropic-beta": "managed-agents-2026-04-01"}
        async with (
            httpx2.AsyncClient(base_url=api.base_url, headers=headers) as http,
            http.stream("GET", f"/v1/sessions/{sid}/events/stream") as response,
        ):
            assert response.headers["content-type"].startswith("text/event-stream")
            with anyio.fail_after(5):
                chunks = response.aiter_bytes()
                assert await anext(chunks) == b"event: ping\ndata: {}\n\n"
                await chunks.aclose()


async def test_per_agent_scripts_and_posted_batches(make_setup: Any) -> None:
    """`scripts=` picks a script by agent name; `posted_batches` shows how results were grouped per POST."""
    two = ScriptedAgent.calls([("add", {"a": 1, "b": 1}), ("add", {"a": 2, "b": 2})])
    async with Emulator(script=ScriptedAgent.reply("default"), scripts={"calc": two}) as api:
        setup: Setup = await make_setup(api)
        sid = await setup.session()
        await setup.say(sid)
        ids = (await api.control.wait_idle(sid, "requires_action"))["stop_reason"]["event_ids"]
        results: Any = [
            {"type": "user.custom_tool_result", "custom_tool_use_id": i, "content": [{"type": "text", "text": "x"}]}
            for i in ids
        ]
        await setup.client.beta.sessions.events.send(sid, events=results)
        await api.control.wait_idle(sid)
        batches = api.control.posted_batches(sid)
        assert [[e["type"] for e in batch] for batch in batches] == [["user.message"], ["user.custom_tool_result"] * 2]
        other = await setup.client.beta.agents.create(name="other", model="claude-opus-5")
        plain = await setup.client.beta.sessions.create(agent=other.id, environment_id=setup.environment_id)
        await setup.say(plain.id)
        await api.control.wait_idle(plain.id)
        assert api.control.events(plain.id)[-2]["content"] == [{"type": "text", "text": "default"}]


async def test_stream_on_terminated_session_can_hang(make_setup: Any) -> None:
    """With `terminated_stream="hang"` a stream opened on a terminated session stays open (pings only)."""
    async with Emulator(behavior=Behavior(terminated_stream="hang")) as api:
        setup: Setup = await make_setup(api)
        sid = await setup.session()
        api.control.terminate(sid)
        async with await setup.client.beta.sessions.events.stream(sid) as stream, aclosing(aiter(stream)) as events:
            await api.control.wait_streams(sid, open=1)
            api.control.drop_streams(sid)
            with pytest.raises(httpx2.HTTPError):
                await anext(events)


async def test_interrupt_in_the_same_batch_as_the_message(setup: Setup) -> None:
    """A message and an interrupt in one POST: the turn never runs, the session is idle with end_turn."""
    sid = await setup.session()
    batch: Any = [{"type": "user.message", "content": [{"type": "text", "text": "go"}]}, {"type": "user.interrupt"}]
    await setup.client.beta.sessions.events.send(sid, events=batch)
    await setup.api.control.wait_idle(sid, "end_turn")
    types = [e["type"] for e in setup.api.control.events(sid)]
    assert types == ["user.message", "session.status_running", "user.interrupt", "session.status_idle"]


async def every_kind(agent: AgentTurn) -> None:
    """Emit every kind of event a script can cause."""
    await agent.think()
    await agent.error()
    async with agent.subagent("helper") as sub:
        await sub.say("working")
        await sub.call_tool("add", {"a": 1, "b": 1})
    await agent.say("refusing the rest")
    agent.stop_reason = "refusal"


async def test_every_emitted_event_validates_strictly(make_setup: Any) -> None:
    """Every event type a script, an update, an interrupt or a termination produces validates strictly."""
    async with Emulator(script=every_kind) as api:
        setup: Setup = await make_setup(api)
        sid = await setup.session()
        async with await setup.client.beta.sessions.events.stream(sid) as stream, aclosing(aiter(stream)) as events:
            await setup.say(sid)
            idle = (await collect_until(events, lambda e: e["type"] == "session.status_idle"))[-1]
            await setup.answer(sid, idle["stop_reason"]["event_ids"][0], "2")
            await collect_until(events, lambda e: e["type"] == "session.status_idle")
            await setup.client.beta.sessions.update(sid, title="renamed")
            await setup.client.beta.sessions.events.send(sid, events=[{"type": "user.interrupt"}])
            api.control.terminate(sid)
            streamed = await collect_until(events, lambda e: e["type"] == "session.status_terminated")
        listed = [strict(e) async for e in setup.client.beta.sessions.events.list(sid)]
        thread_id = next(e["session_thread_id"] for e in listed if e["type"] == "session.thread_created")
        listed += [strict(e) async for e in setup.client.beta.sessions.threads.events.list(thread_id, session_id=sid)]
        kinds = {e["type"] for e in listed}
        assert kinds <= LISTED_EVENT_TYPES
        assert {e["type"] for e in streamed} <= kinds
        assert {"agent.thinking", "session.error", "session.thread_status_terminated", "session.updated"} <= kinds
        assert any(e["type"] == "session.status_idle" and e["stop_reason"]["type"] == "refusal" for e in listed)


async def test_levers_and_waits(make_setup: Any) -> None:
    """`control.interrupt`, `wait_status`, `wait_requests`, rescheduling, and rejecting late results."""

    async def script(agent: AgentTurn) -> None:
        await agent.reschedule()
        await agent.call_tool("add", {"a": 1, "b": 2})

    async with Emulator(script=script, behavior=Behavior(late_results="reject")) as api:
        setup: Setup = await make_setup(api)
        sid = await setup.session()
        await setup.say(sid)
        (call_id,) = (await api.control.wait_idle(sid, "requires_action"))["stop_reason"]["event_ids"]
        assert [e["type"] for e in api.control.events(sid)][2:4] == [
            "session.status_rescheduled",
            "session.status_running",
        ]
        api.control.interrupt(sid)
        await api.control.wait_status(sid, "idle")
        with pytest.raises(anthropic.BadRequestError, match="no longer awaited"):
            await setup.answer(sid, call_id, "late")
        records = await api.control.wait_requests("POST /v1/sessions/*/events", 2)
        assert [r.status for r in records] == [200, 400]
        report = api.control.invariants(sid)
        assert report.abandoned == (call_id,)
        assert report.late == {call_id: 1}
        assert report.calls[0].rejected_results == 1
