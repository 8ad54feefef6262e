"""Signed webhooks (Standard Webhooks v1) POSTed on state changes, as `client.beta.webhooks.unwrap` verifies them.

The payload is thin, like the real API's: `{"type":"event","id","created_at","data":{"type","id",...}}` with ids only;
a receiver reads `GET /events` to learn more. The signature is `v1,` + base64(HMAC-SHA256(key, "{id}.{ts}.{body}"))
with the key base64-decoded from `whsec_...` (`managed-agents-wire.md` §8).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
import anyio.abc
import httpx2

from ._util import rfc3339

__all__ = ["RETRY_DELAYS", "WebhookDelivery", "WebhookSender", "sign"]

Json = dict[str, Any]


def sign(key: str, message_id: str, timestamp: int, body: str) -> str:
    """The `webhook-signature` header value for `body`."""
    secret = base64.b64decode(key.removeprefix("whsec_"))
    digest = hmac.new(secret, f"{message_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


@dataclass(frozen=True)
class WebhookDelivery:
    """One attempted delivery: the raw body and headers sent, and the receiver's status (None if unreachable)."""

    body: str
    headers: dict[str, str]
    status: int | None
    message_id: str = ""
    attempt: int = 1

    @property
    def ok(self) -> bool:
        """The receiver answered 2xx: the sender is done with this message."""
        return self.status is not None and 200 <= self.status < 300


RETRY_DELAYS = (0.05, 0.2, 1.0, 5.0)
"""Seconds before each retry of a message not answered 2xx (Standard Webhooks senders use minutes to hours; an
emulator keeps tests fast)."""


class WebhookSender:
    """Queues webhook payloads as state changes and POSTs them, first attempts in order (`concurrency=1`) or up to
    `concurrency` at once (faster, and out of order as real senders are).

    A message not answered 2xx (or unreachable) is retried after each of `retry_delays`, with the same
    `webhook-id` and a fresh timestamp and signature, as Standard Webhooks senders do; retries run concurrently
    with later messages, so a receiver sees deliveries out of order exactly when it failed one. `redeliver()`
    sends every message delivered so far once more (duplicates, as a sender whose acknowledgement was lost would).
    """

    def __init__(
        self,
        url: str,
        key: str,
        deliveries: list[WebhookDelivery],
        *,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
        concurrency: int = 1,
    ) -> None:
        self.url = url
        self.concurrency = concurrency
        self.key = key
        self.deliveries = deliveries
        self.retry_delays = retry_delays
        self._sent: list[tuple[str, str]] = []  # (message id, body) of every message, in order
        self._send, self._receive = anyio.create_memory_object_stream[tuple[str, str]](max_buffer_size=100_000)

    def notify(self, kind: str, resource_id: str, thread_id: str | None) -> None:
        """Queue the webhook for `kind` (a `BetaWebhookEventData` type) about `resource_id`."""
        data: Json = {
            "type": kind,
            "id": resource_id,
            "organization_id": "org_emulator",
            "workspace_id": "wrkspc_emulator",
        }
        if thread_id is not None:
            data["session_thread_id"] = thread_id
        event = {
            "type": "event",
            "id": "wevt_" + secrets.token_hex(12),
            "created_at": rfc3339(datetime.now(UTC)),
            "data": data,
        }
        message = ("msg_" + secrets.token_hex(12), json.dumps(event, separators=(",", ":")))
        self._sent.append(message)
        self._queue(message)

    def redeliver(self) -> int:
        """Queue every message sent so far once more, same id; returns how many."""
        for message in list(self._sent):
            self._queue(message)
        return len(self._sent)

    def _queue(self, message: tuple[str, str]) -> None:
        try:
            self._send.send_nowait(message)
        except (anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self.deliveries.append(WebhookDelivery(message[1], {}, None, message[0]))

    async def run(self) -> None:
        """Deliver queued webhooks until cancelled."""
        limits = httpx2.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        async with (
            httpx2.AsyncClient(timeout=10, limits=limits) as client,
            self._send,
            self._receive,
            anyio.create_task_group() as tg,
        ):
            slots = anyio.Semaphore(self.concurrency)
            async for message in self._receive:
                await slots.acquire()
                tg.start_soon(self._first, client, message, slots, tg)

    async def _first(
        self, client: httpx2.AsyncClient, message: tuple[str, str], slots: anyio.Semaphore, tg: anyio.abc.TaskGroup
    ) -> None:
        try:
            delivered = await self._attempt(client, message, 1)
        finally:
            slots.release()
        if not delivered:
            tg.start_soon(self._retry, client, message)

    async def _retry(self, client: httpx2.AsyncClient, message: tuple[str, str]) -> None:
        for attempt, delay in enumerate(self.retry_delays, start=2):
            await anyio.sleep(delay)
            if await self._attempt(client, message, attempt):
                return

    async def _attempt(self, client: httpx2.AsyncClient, message: tuple[str, str], attempt: int) -> bool:
        message_id, body = message
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self.key, message_id, timestamp, body),
        }
        status: int | None
        try:
            status = (await client.post(self.url, content=body, headers=headers)).status_code
        except httpx2.HTTPError:
            status = None
        delivery = WebhookDelivery(body, headers, status, message_id, attempt)
        self.deliveries.append(delivery)
        return delivery.ok
