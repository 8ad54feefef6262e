"""The fleet's HTTP client: a fenced process's posts never leave it; everything else goes through untouched."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from bridge.fleet import Fenced, fleet_http_client
from bridge.testing import Emulator

pytestmark = pytest.mark.anyio


async def test_posts_for_sessions_not_held_are_never_sent() -> None:
    """A result post for a session `may_post` refuses fails before the socket; reads and other sessions go through."""
    held = {"yes"}
    fenced: list[str] = []
    async with Emulator() as api:
        setup = api.client()
        agent = await setup.beta.agents.create(name="a", model="claude-opus-5")
        env = await setup.beta.environments.create(name="e")
        ours = await setup.beta.sessions.create(agent=agent.id, environment_id=env.id)
        theirs = await setup.beta.sessions.create(agent=agent.id, environment_id=env.id)
        held.add(ours.id)
        client = api.client(
            http_client=fleet_http_client(may_post=lambda s: s in held, on_fenced=fenced.append), max_retries=1
        )
        message: Any = [{"type": "user.message", "content": [{"type": "text", "text": "hi"}]}]
        await client.beta.sessions.events.send(ours.id, events=message)
        with pytest.raises(anthropic.APIConnectionError) as caught:
            await client.beta.sessions.events.send(theirs.id, events=message)
        assert isinstance(caught.value.__cause__, Fenced)
        await client.beta.sessions.retrieve(theirs.id)
        posts = api.control.requests(f"POST /v1/sessions/{theirs.id}/events")
    assert posts == [], "nothing reached the API, retries included"
    assert fenced == [theirs.id, theirs.id]


async def test_a_post_is_checked_again_just_before_its_body_is_written() -> None:
    """A lease lost between handing a post to the transport and writing its body cuts the request: nothing stored."""
    answers = iter([True, False])
    async with Emulator() as api:
        setup = api.client()
        agent = await setup.beta.agents.create(name="a", model="claude-opus-5")
        env = await setup.beta.environments.create(name="e")
        session = await setup.beta.sessions.create(agent=agent.id, environment_id=env.id)
        client = api.client(http_client=fleet_http_client(may_post=lambda s: next(answers)), max_retries=0)
        message: Any = [{"type": "user.message", "content": [{"type": "text", "text": "hi"}]}]
        with pytest.raises(anthropic.APIConnectionError) as caught:
            await client.beta.sessions.events.send(session.id, events=message)
        assert isinstance(caught.value.__cause__, Fenced)
        stored = api.control.events(session.id)
        ok = [r for r in api.control.requests(f"POST /v1/sessions/{session.id}/events") if r.status == 200]
    assert [e for e in stored if e["type"] == "user.message"] == []
    assert ok == []
