"""The poster on its own, against the emulator over HTTP: outcomes reported, `wanted` asked, nothing posted twice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from anthropic import AsyncAnthropic

from bridge import Limits, Timeouts
from bridge.journal import MemoryJournal, StoredResult
from bridge.runtime._calls import Posted, Rejected
from bridge.runtime._events import Idle, ToolUse, blocked_on
from bridge.runtime._observe import Counter, Observer, PostEvent, PostOutcome
from bridge.runtime._poster import Outgoing, Poster
from bridge.testing import Emulator, ScriptedAgent

pytestmark = pytest.mark.anyio

EVENTS_ROUTE = "POST /v1/sessions/*/events"
TOOL = {"type": "custom", "name": "add", "description": "Add.", "input_schema": {"type": "object", "properties": {}}}


@pytest.fixture
def anyio_backend() -> str:
    """asyncio only: the SDK leaves its stream's generator to the GC, which trio reports (e2e covers trio)."""
    return "asyncio"


@dataclass
class Pending:
    api: Emulator
    client: AsyncAnthropic
    session_id: str
    uses: list[ToolUse]

    def poster(self, wanted: Any = lambda use_id: True) -> tuple[Poster, Observer]:
        observer = Observer()
        poster = Poster(
            self.session_id,
            send_events=self.client.with_options(max_retries=0).beta.sessions.events,
            history=self.client.beta.sessions.events,
            journal=MemoryJournal(),
            observer=observer,
            limits=Limits(),
            timeouts=Timeouts(post_backoff_max=0.05),
            wanted=wanted,
        )
        return poster, observer

    def item(self, use: ToolUse, content: tuple[dict[str, Any], ...] | None = None) -> Outgoing:
        blocks = content or ({"type": "text", "text": "3"},)
        return Outgoing(use.id, use.name, None, StoredResult(blocks, False), since=use.processed_at)

    def results(self) -> list[dict[str, Any]]:
        return [e for e in self.api.control.events(self.session_id) if e["type"] == "user.custom_tool_result"]


@asynccontextmanager
async def pending_calls(n: int = 2) -> AsyncIterator[Pending]:
    """A session whose agent called `add` n times and waits for the results."""
    async with Emulator(script=ScriptedAgent.calls([("add", {})] * n, reply="done")) as api:
        client = api.client()
        agent = await client.beta.agents.create(name="a", model="claude-opus-5", tools=[TOOL])  # type: ignore[list-item]
        env = await client.beta.environments.create(name="env")
        session = await client.beta.sessions.create(agent=agent.id, environment_id=env.id)
        uses: list[ToolUse] = []
        async with await client.beta.sessions.events.stream(session.id) as stream:
            await client.beta.sessions.events.send(
                session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "go"}]}]
            )
            async for event in stream:
                if isinstance(event, ToolUse):
                    uses.append(event)
                if isinstance(event, Idle) and blocked_on(event):
                    break
        yield Pending(api, client, session.id, uses)


async def test_a_batch_is_posted_in_one_request_and_reported() -> None:
    """Two results leave in one POST; the outcome names both."""
    async with pending_calls(2) as p:
        poster, observer = p.poster()
        outcomes = await poster.post([p.item(use) for use in p.uses])
        assert outcomes == [Posted(tuple(use.id for use in p.uses))]
        assert len(p.results()) == 2
        assert observer.counters[Counter.POSTS] == 1


async def test_a_lost_response_is_found_in_the_history_not_posted_again() -> None:
    """A POST stored by the API whose response is lost is found by the history check: one result, reported posted."""
    async with pending_calls(1) as p:
        poster, observer = p.poster()
        p.api.control.drop_responses(EVENTS_ROUTE, 1)
        outcomes = await poster.post([p.item(p.uses[0])])
        assert outcomes == [Posted((p.uses[0].id,))]
        assert len(p.results()) == 1
        assert observer.counters[Counter.DUPLICATES_PREVENTED] == 1


async def test_an_unwanted_result_is_not_posted() -> None:
    """The poster asks `wanted` before sending: a result the table no longer wants is left out, not posted."""
    async with pending_calls(2) as p:
        first, second = p.uses
        poster, _ = p.poster(wanted=lambda use_id: use_id == first.id)
        outcomes = await poster.post([p.item(first), p.item(second)])
        assert outcomes == [Posted((first.id,))]
        assert [r["custom_tool_use_id"] for r in p.results()] == [first.id]


async def test_a_rejected_result_is_replaced_once_then_reported_rejected() -> None:
    """A 400 on one result splits the batch; the rejected one is replaced by a text error; rejected again, reported."""
    async with pending_calls(1) as p:
        poster, _ = p.poster()
        p.api.control.fail_next(EVENTS_ROUTE, [400, 400])
        outcomes = await poster.post([p.item(p.uses[0])])
        assert len(outcomes) == 1
        assert isinstance(outcomes[0], Rejected)
        assert p.results() == []


async def test_each_post_is_reported_once_with_its_outcome_and_retries() -> None:
    """A post listener gets one PostEvent per POST: a lost response is one retry, found in the history, not re-sent."""
    async with pending_calls(2) as p:
        poster, observer = p.poster()
        events: list[PostEvent] = []
        observer.add_post_listener(events.append)
        first, second = p.uses
        p.api.control.drop_responses(EVENTS_ROUTE, 1)
        await poster.post([p.item(first)])
        await poster.post([p.item(second)])
        found, posted = events
        assert (found.outcome, found.tool_use_ids, found.found, found.retries) == (
            PostOutcome.FOUND,
            (first.id,),
            (first.id,),
            1,
        )
        assert (posted.outcome, posted.tool_use_ids, posted.found, posted.retries) == (
            PostOutcome.POSTED,
            (second.id,),
            (),
            0,
        )
        assert found.session_id == posted.session_id == p.session_id
        assert found.duration >= 0
        assert posted.detail is None


async def test_a_rejected_post_is_reported_rejected_with_the_reason() -> None:
    """Each rejected attempt (the result, then its text-only replacement) is a REJECTED PostEvent naming the error."""
    async with pending_calls(1) as p:
        poster, observer = p.poster()
        events: list[PostEvent] = []
        observer.add_post_listener(events.append)
        p.api.control.fail_next(EVENTS_ROUTE, [400, 400])
        await poster.post([p.item(p.uses[0])])
        assert [e.outcome for e in events] == [PostOutcome.REJECTED, PostOutcome.REJECTED]
        assert all(e.detail and "400" in e.detail for e in events)


async def test_without_a_post_listener_nothing_is_built() -> None:
    """No post listener: the poster does not build PostEvents (the no-telemetry path costs nothing)."""
    async with pending_calls(1) as p:
        poster, observer = p.poster()
        assert not observer.watches_posts
        built: list[Any] = []
        poster._report = lambda *args, **kwargs: built.append(args)  # type: ignore[method-assign]
        await poster.post([p.item(p.uses[0])])
        assert built == []
        assert len(p.results()) == 1
