"""The webhook receiver over real HTTP: the emulator's signed deliveries, retries, replays, forgeries and disorder."""

from __future__ import annotations

import base64
import json
import random
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
import pytest

from bridge.fleet import WebhookEvent, WebhookReceiver
from bridge.testing import Emulator, sign_webhook

pytestmark = pytest.mark.anyio

KEY = "whsec_" + base64.b64encode(b"k" * 24).decode()


class Inbox:
    """What reached `on_event`, with a wait for a condition on it (no sleeping)."""

    def __init__(self) -> None:
        self.events: list[WebhookEvent] = []
        self.fail: Callable[[WebhookEvent], bool] = lambda event: False
        self._changed = anyio.Event()

    async def __call__(self, event: WebhookEvent) -> None:
        self._changed.set()
        self._changed = anyio.Event()
        if self.fail(event):
            raise RuntimeError("database unavailable")
        self.events.append(event)

    async def until(self, check: Callable[[list[WebhookEvent]], bool]) -> None:
        with anyio.fail_after(10):
            while not check(self.events):
                await self._changed.wait()


@asynccontextmanager
async def receiving(inbox: Inbox, key: str = KEY) -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver(key, inbox)
    async with anyio.create_task_group() as tg:
        await tg.start(receiver.serve)
        yield receiver
        tg.cancel_scope.cancel()


def signed(body: str, *, key: str = KEY, message_id: str | None = None, at: float | None = None) -> dict[str, str]:
    message_id = message_id or "msg_" + secrets.token_hex(8)
    timestamp = int(time.time() if at is None else at)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign_webhook(key, message_id, timestamp, body),
    }


def event_body(kind: str, session_id: str) -> str:
    data = {"type": kind, "id": session_id, "organization_id": "o", "workspace_id": "w"}
    return json.dumps(
        {"type": "event", "id": "wevt_" + secrets.token_hex(6), "created_at": "2026-01-01T00:00:00Z", "data": data}
    )


async def post(
    receiver: WebhookReceiver,
    body: str,
    headers: dict[str, str],
    path: str = "/webhooks",
    client: httpx2.AsyncClient | None = None,
) -> int:
    if client is None:
        async with httpx2.AsyncClient() as client:
            return await post(receiver, body, headers, path, client)
    response = await client.post(f"http://127.0.0.1:{receiver.port}{path}", content=body, headers=headers)
    return response.status_code


async def test_emulator_webhooks_reach_the_receiver_verified() -> None:
    """Every session state change the emulator signs arrives verified, typed, and passed on once."""
    inbox = Inbox()
    async with (
        receiving(inbox) as receiver,
        Emulator(webhook_url=f"http://127.0.0.1:{receiver.port}/webhooks", webhook_key=KEY) as api,
    ):
        client = api.client()
        agent = await client.beta.agents.create(name="a", model="claude-opus-5")
        env = await client.beta.environments.create(name="e")
        sessions = [(await client.beta.sessions.create(agent=agent.id, environment_id=env.id)).id for _ in range(3)]
        await inbox.until(lambda events: sum(e.kind == "session.created" for e in events) == 3)
    created = [e for e in inbox.events if e.kind == "session.created"]
    assert [e.resource_id for e in created] == sessions
    assert all(e.is_session and not e.wakes for e in created)
    assert receiver.stats.rejected_signature_total == 0
    assert all(d.ok and d.attempt == 1 for d in api.webhook_deliveries)


async def test_failed_deliveries_are_retried_with_the_same_id() -> None:
    """A message the receiver could not handle (500) comes again, same `webhook-id`, until it is handled."""
    inbox = Inbox()
    failed: set[str] = set()

    def fail_first(event: WebhookEvent) -> bool:
        if event.kind != "session.created" or event.message_id in failed:
            return False
        failed.add(event.message_id)
        return True

    inbox.fail = fail_first
    async with receiving(inbox) as receiver:
        url = f"http://127.0.0.1:{receiver.port}/webhooks"
        async with Emulator(webhook_url=url, webhook_key=KEY, webhook_retry_delays=(0.01, 0.01)) as api:
            client = api.client()
            agent = await client.beta.agents.create(name="a", model="claude-opus-5")
            env = await client.beta.environments.create(name="e")
            session = await client.beta.sessions.create(agent=agent.id, environment_id=env.id)
            await inbox.until(lambda events: any(e.resource_id == session.id for e in events))
    attempts = [(d.attempt, d.status) for d in api.webhook_deliveries if session.id in d.body]
    assert attempts == [(1, 500), (2, 204)]
    assert len({d.message_id for d in api.webhook_deliveries if session.id in d.body}) == 1
    assert receiver.stats.handler_failures_total == 1


async def test_redelivered_messages_are_acknowledged_not_repeated() -> None:
    """Duplicates of messages already handled get 204 (so the sender stops) and never reach `on_event` again."""
    inbox = Inbox()
    async with (
        receiving(inbox) as receiver,
        Emulator(webhook_url=f"http://127.0.0.1:{receiver.port}/webhooks", webhook_key=KEY) as api,
    ):
        client = api.client()
        agent = await client.beta.agents.create(name="a", model="claude-opus-5")
        env = await client.beta.environments.create(name="e")
        await client.beta.sessions.create(agent=agent.id, environment_id=env.id)
        await inbox.until(lambda events: any(e.kind == "session.created" for e in events))
        handled = len(inbox.events)
        assert await anyio.to_thread.run_sync(api.redeliver_webhooks) == handled
        last = await client.beta.sessions.create(agent=agent.id, environment_id=env.id)  # delivered after them
        await inbox.until(lambda events: any(e.resource_id == last.id for e in events))
    assert len(inbox.events) == handled + 1
    assert receiver.stats.duplicates_total == handled
    assert len({e.message_id for e in inbox.events}) == len(inbox.events)


async def test_forged_stale_and_malformed_requests_are_refused() -> None:
    """Bad or missing signatures, timestamps outside five minutes, non-events, wrong paths and methods never pass."""
    inbox = Inbox()
    body = event_body("session.requires_action", "sesn_1")
    other_key = "whsec_" + base64.b64encode(b"x" * 24).decode()
    async with receiving(inbox) as receiver:
        assert await post(receiver, body, signed(body, key=other_key)) == 401
        assert await post(receiver, body.replace("sesn_1", "sesn_2"), signed(body)) == 401
        assert await post(receiver, body, signed(body, at=time.time() - 600)) == 401
        assert await post(receiver, body, signed(body, at=time.time() + 600)) == 401
        assert await post(receiver, body, {"webhook-id": "msg_x"}) == 401
        assert await post(receiver, body, {**signed(body), "webhook-signature": "v1"}) == 401
        assert await post(receiver, "not json", signed("not json")) == 400
        assert await post(receiver, '{"type": "other"}', signed('{"type": "other"}')) == 400
        assert await post(receiver, body, signed(body), path="/elsewhere") == 404
        async with httpx2.AsyncClient() as client:
            assert (await client.get(f"http://127.0.0.1:{receiver.port}/webhooks")).status_code == 405
        assert inbox.events == []
        rotated = signed(body, key=other_key)
        rotated["webhook-signature"] += (
            " "
            + signed(body, message_id=rotated["webhook-id"], at=float(rotated["webhook-timestamp"]))[
                "webhook-signature"
            ]
        )
        assert await post(receiver, body, rotated) == 204, "any one valid signature of several (key rotation)"
    assert [e.resource_id for e in inbox.events] == ["sesn_1"]
    assert receiver.stats.rejected_signature_total == 6
    assert receiver.stats.rejected_malformed_total == 2


async def test_concurrent_shuffled_duplicates_pass_each_message_once() -> None:
    """Deliveries in any order, each twice and at the same time, reach `on_event` exactly once per message."""
    inbox = Inbox()
    messages = [(f"msg_{i}", event_body("session.requires_action", f"sesn_{i % 10}")) for i in range(50)]
    deliveries = [m for m in messages for _ in range(2)]
    random.Random(7).shuffle(deliveries)
    statuses: list[int] = []
    async with receiving(inbox) as receiver, httpx2.AsyncClient() as client:

        async def deliver(message_id: str, body: str) -> None:
            statuses.append(await post(receiver, body, signed(body, message_id=message_id), client=client))

        async with anyio.create_task_group() as tg:
            for message_id, body in deliveries:
                tg.start_soon(deliver, message_id, body)
    assert statuses == [204] * 100
    assert sorted(e.message_id for e in inbox.events) == sorted(m for m, _ in messages)
    assert receiver.stats.duplicates_total == 50


def test_a_key_that_is_not_a_secret_is_a_config_error() -> None:
    """A signing key that is not base64 fails at construction, naming what is expected."""
    from bridge import ConfigError

    async def ignore(event: Any) -> None:
        return None

    with pytest.raises(ConfigError, match="whsec_"):
        WebhookReceiver("whsec_!!!not-base64!!!", ignore)
