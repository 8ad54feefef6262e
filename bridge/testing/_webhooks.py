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
import httpx2

from ._util import rfc3339

__all__ = ["WebhookDelivery", "WebhookSender", "sign"]

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


class WebhookSender:
    """Queues webhook payloads as state changes and POSTs them, in order, from one task."""

    def __init__(self, url: str, key: str, deliveries: list[WebhookDelivery]) -> None:
        self.url = url
        self.key = key
        self.deliveries = deliveries
        self._send, self._receive = anyio.create_memory_object_stream[Json](max_buffer_size=10_000)

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
        try:
            self._send.send_nowait(event)
        except (anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self.deliveries.append(WebhookDelivery(json.dumps(event), {}, None))

    async def run(self) -> None:
        """Deliver queued webhooks until cancelled."""
        async with httpx2.AsyncClient(timeout=10) as client, self._send, self._receive:
            async for event in self._receive:
                body = json.dumps(event, separators=(",", ":"))
                message_id = "msg_" + secrets.token_hex(12)
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
                self.deliveries.append(WebhookDelivery(body, headers, status))
