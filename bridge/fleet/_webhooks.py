"""`--webhook-port`: receive the platform's signed webhooks and turn them into "look at this session now".

The Managed Agents API can POST a thin, signed notification when a session changes state (`managed-agents-wire.md`
§8): `{"type":"event","id","created_at","data":{"type":"session.requires_action","id":<session>,...}}`, signed the
Standard Webhooks way (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>`). With them a
bridge need not hold a stream open on every idle session: it serves a session when told it needs action.

What this receiver guarantees, and what it leaves to its consumer:

- **Authentic and fresh.** The signature is verified with the `standardwebhooks` package (the SDK's own `unwrap` uses
  it) over the exact body bytes; a bad or missing signature is refused (401), and so is a timestamp more than five
  minutes from now (the package's tolerance), which bounds how long a captured request can be replayed.
- **Once per message.** Within that window a replay, or the sender's retry of a message we already acted on, has a
  `webhook-id` seen before: it is acknowledged (204, so the sender stops) and not passed on again.
- **Acknowledged only once handled.** The consumer's `on_event` runs before the answer; if it raises (the database
  is down), the answer is 500 and the sender retries later. At least once from the sender, at most once to us.
- **Order is not promised, and not needed.** Deliveries run concurrently and retries arrive late, so a
  `session.requires_action` may come after the `session.status_idled` that followed it. The payload carries only
  ids, so the consumer must read the session's current state anyway (`GET /events`), and a wake-up for a session
  with nothing to do costs one read. Treat every event as "look at this session now", never as the state itself.

The HTTP side is deliberately small, like the health endpoint: anyio's TCP listener, one request per connection,
bounded reads under a deadline, so a slow or hostile client cannot pin a task.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.abc import SocketAttribute, SocketStream, TaskStatus

from .._errors import ConfigError

__all__ = ["SESSION_WAKE", "WebhookEvent", "WebhookReceiver", "WebhookStats"]

_MAX_HEAD = 16 * 1024
_MAX_BODY = 256 * 1024
_READ_DEADLINE = 5.0
_TOLERANCE = 5 * 60.0  # standardwebhooks' fixed timestamp tolerance

SESSION_WAKE: frozenset[str] = frozenset({"session.requires_action"})
"""Kinds after which a session has a tool call waiting for a client: serve it. (A new session has nothing to do
until a message arrives, and an idle one nothing at all: waking on those would hold a stream per idle session.)"""


@dataclass(frozen=True)
class WebhookEvent:
    """One verified webhook: its message id (stable across the sender's retries) and what it is about."""

    message_id: str
    event_id: str
    kind: str
    resource_id: str
    thread_id: str | None = None
    created_at: str | None = None

    @property
    def is_session(self) -> bool:
        """True when `resource_id` is a session id (every `session.*` kind)."""
        return self.kind.startswith("session.")

    @property
    def wakes(self) -> bool:
        """True when the session may need a tool result from us (see `SESSION_WAKE`)."""
        return self.kind in SESSION_WAKE


@dataclass
class WebhookStats:
    """Counts since start, for `stats()` and `/metrics`."""

    received_total: int = 0
    accepted_total: int = 0
    duplicates_total: int = 0
    rejected_signature_total: int = 0
    rejected_malformed_total: int = 0
    handler_failures_total: int = 0


class WebhookReceiver:
    """Serve a webhook endpoint until cancelled; each new, verified message is passed to `on_event`.

    Args:
        key: The `whsec_...` signing secret the platform signs with.
        on_event: Awaited for each new verified message before it is acknowledged; raising makes the answer a 500
            (the sender retries).
        host: Interface to bind (127.0.0.1 by default; put a TLS-terminating proxy in front for the internet).
        port: TCP port; 0 picks a free one (read it from `port`, or `serve`'s start value).
        path: The URL path webhooks are POSTed to.
        remember: Message ids kept for duplicate detection (they are kept for the tolerance window at most).

    Raises:
        ConfigError: The key is not a Standard Webhooks secret, or the `standardwebhooks` package is missing.
    """

    def __init__(
        self,
        key: str,
        on_event: Callable[[WebhookEvent], Awaitable[None]],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = "/webhooks",
        remember: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        try:
            from standardwebhooks import Webhook
        except ImportError:
            raise ConfigError(
                "webhooks need the standardwebhooks package: pip install 'tool-bridge[webhooks]'"
            ) from None
        try:
            self._webhook = Webhook(key)
        except Exception as exc:
            raise ConfigError(f"the webhook signing key is not a Standard Webhooks secret (whsec_...): {exc}") from None
        self._on_event = on_event
        self.host = host
        self.port = port
        self.path = path
        self.remember = remember
        self._clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()  # message id -> when first handled
        self._handling: set[str] = set()
        self.stats = WebhookStats()

    def __repr__(self) -> str:
        return f"WebhookReceiver(host={self.host!r}, port={self.port}, path={self.path!r})"

    async def serve(self, *, task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
        """Listen, report the bound port through `task_status`, and answer requests until cancelled."""
        listener = await anyio.create_tcp_listener(local_host=self.host, local_port=self.port)
        async with listener:
            self.port = int(listener.extra(SocketAttribute.local_port))
            task_status.started(self.port)
            await listener.serve(self._handle)

    async def _handle(self, stream: SocketStream) -> None:
        async with stream:
            with anyio.move_on_after(_READ_DEADLINE) as scope:
                request = await _read_request(stream)
            if scope.cancelled_caught or request is None:
                return
            status, body = await self.respond(*request)
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n"
            )
            try:
                await stream.send(head.encode() + body)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                return

    async def respond(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[str, bytes]:
        """Status line and body for one request (headers lower-cased); runs `on_event` for a new message."""
        if path.split("?", 1)[0] != self.path:
            return "404 Not Found", b"not found\n"
        if method != "POST":
            return "405 Method Not Allowed", b"POST only\n"
        self.stats.received_total += 1
        event = self._verify(headers, body)
        if isinstance(event, tuple):
            return event
        if event.message_id in self._seen or event.message_id in self._handling:
            self.stats.duplicates_total += 1
            return "204 No Content", b""
        self._handling.add(event.message_id)
        try:
            await self._on_event(event)
        except Exception as exc:
            self.stats.handler_failures_total += 1
            return "500 Internal Server Error", f"not handled: {type(exc).__name__}\n".encode()
        finally:
            self._handling.discard(event.message_id)
        self._remember(event.message_id)
        self.stats.accepted_total += 1
        return "204 No Content", b""

    def _verify(self, headers: dict[str, str], body: bytes) -> WebhookEvent | tuple[str, bytes]:
        from standardwebhooks import WebhookVerificationError

        try:
            text = body.decode()
            payload: Any = self._webhook.verify(text, headers)
        except (WebhookVerificationError, ValueError) as exc:  # ValueError: bad base64, bad header shape, bad JSON
            if isinstance(exc, json.JSONDecodeError):
                self.stats.rejected_malformed_total += 1
                return "400 Bad Request", b"body is not JSON\n"
            self.stats.rejected_signature_total += 1
            return "401 Unauthorized", f"verification failed: {exc}\n".encode()
        event = _parse(headers["webhook-id"], payload)
        if event is None:
            self.stats.rejected_malformed_total += 1
            return "400 Bad Request", b"not a webhook event\n"
        return event

    def _remember(self, message_id: str) -> None:
        now = self._clock()
        self._seen[message_id] = now
        while self._seen and (
            len(self._seen) > self.remember or next(iter(self._seen.values())) < now - 2 * _TOLERANCE
        ):
            self._seen.popitem(last=False)


def _parse(message_id: str, payload: Any) -> WebhookEvent | None:
    """The fields we use from a `BetaWebhookEvent` body; None when it does not have them."""
    if not isinstance(payload, dict) or payload.get("type") != "event":
        return None
    data = payload.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("type"), str) or not isinstance(data.get("id"), str):
        return None
    thread = data.get("session_thread_id")
    return WebhookEvent(
        message_id=message_id,
        event_id=str(payload.get("id", "")),
        kind=data["type"],
        resource_id=data["id"],
        thread_id=thread if isinstance(thread, str) else None,
        created_at=payload.get("created_at") if isinstance(payload.get("created_at"), str) else None,
    )


async def _read_request(stream: SocketStream) -> tuple[str, str, dict[str, str], bytes] | None:
    """Method, path, lower-cased headers and body of one HTTP/1.1 request; None when it is not one we accept."""
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            if len(data) > _MAX_HEAD:
                return None
            data += await stream.receive(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        if length < 0 or length > _MAX_BODY or "chunked" in headers.get("transfer-encoding", ""):
            return None
        while len(body) < length:
            body += await stream.receive(65536)
    except (anyio.EndOfStream, anyio.BrokenResourceError, OSError, ValueError):
        return None
    return method, target, headers, body[:length]
