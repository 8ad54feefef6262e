"""Each fault knob, shown working through the real SDK: its retries, its reconnects, its exceptions."""

from __future__ import annotations

import json
from contextlib import aclosing
from typing import Any

import anthropic
import anyio
import httpx2
import pytest
from anthropic import beta_async_tool
from emulator_support import Setup

from bridge.testing import Behavior, Emulator, ScriptedAgent

pytestmark = pytest.mark.anyio
EVENTS = "POST /v1/sessions/{session_id}/events"


async def test_fail_next_503s_are_retried(setup: Setup) -> None:
    """Two injected 503s: the SDK retries and the third attempt stores the message once."""
    sid = await setup.session()
    setup.api.control.fail_next(EVENTS, [503, 503])
    await setup.say(sid)
    assert [r.retry_count for r in setup.api.control.requests(EVENTS)] == [0, 1, 2]
    assert [r.status for r in setup.api.control.requests(EVENTS)] == [503, 503, 200]
    assert [e["type"] for e in setup.api.control.events(sid)].count("user.message") == 1


async def test_429_retry_after_headers_are_obeyed(setup: Setup) -> None:
    """429 with `retry-after-ms` and then with `retry-after`: the SDK waits as told and succeeds."""
    sid = await setup.session()
    setup.api.control.fail_next(EVENTS, 429, headers={"retry-after-ms": "20"})
    setup.api.control.fail_next(EVENTS, 429, headers={"retry-after": "0.02"})
    start = anyio.current_time()
    await setup.say(sid)
    assert anyio.current_time() - start >= 0.04
    assert [r.status for r in setup.api.control.requests(EVENTS)] == [429, 429, 200]


async def test_x_should_retry_overrides_the_status(setup: Setup) -> None:
    """`x-should-retry: false` makes a 500 final; `x-should-retry: true` makes a 400 retried."""
    sid = await setup.session()
    setup.api.control.fail_next(EVENTS, 500, headers={"x-should-retry": "false"})
    with pytest.raises(anthropic.InternalServerError) as info:
        await setup.say(sid)
    assert info.value.request_id is not None
    assert len(setup.api.control.requests(EVENTS)) == 1
    setup.api.control.fail_next(EVENTS, 400, headers={"x-should-retry": "true", "retry-after-ms": "1"})
    await setup.say(sid)
    assert [r.status for r in setup.api.control.requests(EVENTS)] == [500, 400, 200]


async def test_dropped_response_is_stored_and_the_retry_duplicates_it(setup: Setup) -> None:
    """A result POST is stored but its response dropped: the SDK retries the same body, the emulator counts 2."""
    sid = await setup.session()
    await setup.say(sid)
    (call_id,) = (await setup.api.control.wait_idle(sid, "requires_action"))["stop_reason"]["event_ids"]
    setup.api.control.drop_responses(EVENTS)
    await setup.answer(sid, call_id, "3")
    assert [r.dropped for r in setup.api.control.requests(EVENTS)][-2:] == [True, False]
    assert setup.api.control.invariants(sid).duplicates == {call_id: 2}


async def test_latency_per_route(setup: Setup) -> None:
    """Latency set on one route delays it and leaves the others alone."""
    setup.api.control.latency("GET /v1/agents/{agent_id}", 0.05)
    start = anyio.current_time()
    await setup.client.beta.agents.retrieve(setup.agent_id)
    assert anyio.current_time() - start >= 0.05
    setup.api.control.latency("GET /v1/agents/{agent_id}", None)
    assert setup.api.control.requests("GET /v1/agents/*")[-1].status == 200
    setup.api.control.latency("GET **", 0.05)
    start = anyio.current_time()
    await setup.client.beta.environments.retrieve(setup.environment_id)
    assert anyio.current_time() - start >= 0.05
    assert len(setup.api.control.requests("GET /v1/**")) == 2


async def test_drop_streams_cuts_the_connection(setup: Setup) -> None:
    """Dropping a stream cuts it mid-body: the SDK's iteration fails with a transport error."""
    sid = await setup.session()
    async with await setup.client.beta.sessions.events.stream(sid) as stream, aclosing(aiter(stream)) as events:
        await setup.api.control.wait_streams(sid, open=1)
        assert setup.api.control.drop_streams(sid, after_events=1) == 1
        await setup.say(sid)
        assert (await anext(events)).type == "user.message"
        with pytest.raises(httpx2.HTTPError):
            await anext(events)
    await setup.api.control.wait_streams(sid, open=0)


async def test_duplicate_event_is_delivered_twice(setup: Setup) -> None:
    """`duplicate_next_event` sends one event twice on the stream (same id); history keeps it once."""
    sid = await setup.session()
    setup.api.control.duplicate_next_event(sid, "agent.custom_tool_use")
    async with await setup.client.beta.sessions.events.stream(sid) as stream, aclosing(aiter(stream)) as events:
        await setup.say(sid)
        seen = []
        while not seen or seen[-1].type != "session.status_idle":
            seen.append(await anext(events))
    uses = [e.id for e in seen if e.type == "agent.custom_tool_use"]
    assert len(uses) == 2
    assert uses[0] == uses[1]
    assert [e["type"] for e in setup.api.control.events(sid)].count("agent.custom_tool_use") == 1


async def test_skipped_event_is_in_the_history_but_not_on_the_stream(setup: Setup) -> None:
    """`skip_next_event` keeps one event off every stream (which stays open and goes on); history still lists it."""
    sid = await setup.session()
    setup.api.control.skip_next_event(sid, "agent.custom_tool_use")
    async with await setup.client.beta.sessions.events.stream(sid) as stream, aclosing(aiter(stream)) as events:
        await setup.say(sid)
        seen = []
        while not seen or seen[-1].type != "session.status_idle":
            seen.append(await anext(events))
    history = setup.api.control.events(sid)
    (use,) = [e for e in history if e["type"] == "agent.custom_tool_use"]
    assert use["id"] not in [e.id for e in seen]
    assert seen[-1].stop_reason.event_ids == [use["id"]]
    assert setup.api.control.stream_connects(sid) == 1


async def test_in_stream_error_frame_raises_api_status_error(setup: Setup) -> None:
    """An `event: error` frame raises `APIStatusError` (status 200) with the envelope, and the stream ends."""
    sid = await setup.session()
    async with await setup.client.beta.sessions.events.stream(sid) as stream, aclosing(aiter(stream)) as events:
        await setup.api.control.wait_streams(sid, open=1)
        setup.api.control.stream_error(sid, error_type="overloaded_error", message="Overloaded")
        with pytest.raises(anthropic.APIStatusError) as info:
            await anext(events)
    assert info.value.status_code == 200
    assert info.value.body == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}


async def test_malformed_frame_raises_json_error(setup: Setup) -> None:
    """A frame whose data is not JSON makes the SDK raise `JSONDecodeError` (not an `APIError`)."""
    sid = await setup.session()
    async with await setup.client.beta.sessions.events.stream(sid) as stream, aclosing(aiter(stream)) as events:
        await setup.api.control.wait_streams(sid, open=1)
        setup.api.control.malformed_frame(sid)
        with pytest.raises(json.JSONDecodeError):
            await anext(events)


@beta_async_tool
async def add(a: int, b: int) -> str:
    """Add two integers."""
    return str(a + b)


async def run_runner_through(api: Emulator, setup: Setup, sid: str, fault: Any) -> list[Any]:
    """Run the SDK runner on `sid`, apply `fault` once its stream is open, send a message; it stops at end_turn."""
    runner = setup.client.beta.sessions.events.tool_runner(sid, tools=[add], max_idle=0)
    calls: list[Any] = []
    async with anyio.create_task_group() as tg:

        async def consume() -> None:
            async for call in runner:
                calls.append(call)

        tg.start_soon(consume)
        await api.control.wait_streams(sid, open=1)
        fault(sid)
        await setup.say(sid)
        await api.control.wait_idle(sid, "end_turn")
    return calls


async def test_runner_reconnects_after_a_stall(make_setup: Any) -> None:
    """A stalled stream (socket open, no bytes) hits the SDK's read timeout; the runner reconnects and answers."""
    behavior = Behavior(ping_interval=0.05)  # healthy streams stay inside the read timeout, stalled ones do not
    async with Emulator(script=ScriptedAgent.calls([("add", {"a": 1, "b": 2})]), behavior=behavior) as api:
        setup: Setup = await make_setup(api, timeout=httpx2.Timeout(5.0, read=0.3))
        sid = await setup.session()
        calls = await run_runner_through(api, setup, sid, api.control.stall_streams)
        assert [c.posted for c in calls] == [True]
        assert api.control.stream_connects(sid) >= 2
        api.control.invariants(sid).assert_ok()


async def test_runner_reconnects_after_an_error_frame(make_setup: Any) -> None:
    """An in-stream error counts as transient for the SDK runner: it reconnects and still answers once."""
    async with Emulator(script=ScriptedAgent.calls([("add", {"a": 1, "b": 2})])) as api:
        setup: Setup = await make_setup(api)
        sid = await setup.session()
        calls = await run_runner_through(api, setup, sid, lambda s: api.control.stream_error(s))
        assert [c.posted for c in calls] == [True]
        assert api.control.stream_connects(sid) >= 2
        api.control.invariants(sid).assert_ok()


async def test_stalled_stream_resumes_with_what_it_held(setup: Setup) -> None:
    """`resume_streams` lets a stalled stream deliver the events it held back."""
    sid = await setup.session()
    async with await setup.client.beta.sessions.events.stream(sid) as stream, aclosing(aiter(stream)) as events:
        await setup.api.control.wait_streams(sid, open=1)
        assert setup.api.control.stall_streams(sid) == 1
        await setup.say(sid)
        await setup.api.control.wait_idle(sid, "requires_action")
        setup.api.control.resume_streams(sid)
        assert (await anext(events)).type == "user.message"


async def test_injected_error_code_picks_the_sdk_exception(setup: Setup) -> None:
    """`fail_next(..., error_code=)` fills `error.details.error_code`, which the SDK maps to its typed exception."""
    setup.api.control.fail_next("GET /v1/environments/*", 404, error_code="environment_not_found", message="gone")
    with pytest.raises(anthropic.NotFoundError) as info:
        await setup.client.beta.environments.retrieve(setup.environment_id)
    assert (info.value.error_code, info.value.api_message) == ("environment_not_found", "gone")
    assert type(info.value).__name__ == "BetaEnvironmentNotFoundError"
