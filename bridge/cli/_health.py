"""`--health-port`: `/healthz` and `/metrics` for the daemon, with no web framework.

Orchestrators probe liveness and scrape metrics over plain HTTP/1.1. Two read-only endpoints do not justify pulling
a server into the daemon's dependencies, so this is a small responder on anyio's TCP listener: one request per
connection, `Connection: close`, bounded reads with a deadline so a slow or hostile client cannot pin a task.

- `GET /healthz` answers `200 {"status": "ok"}` while the bridge serves, `503 {"status": "draining"}` (or whatever
  the status callback says) otherwise.
- `GET /metrics` serves whatever the metrics callback renders: for the daemon, `bridge.telemetry.PrometheusMetrics`
  (prometheus-client's exposition, with real histograms).

It listens on 127.0.0.1 unless told otherwise: metrics name tools and sessions, which are not for the whole network.

With an `Approvals` desk and a token (`[approvals] http_token` in bridge.toml), it also decides parked calls:

- `GET /approvals` lists the calls waiting (JSON), `GET /approvals/ID` shows one;
- `POST /approvals/ID/approve` and `POST /approvals/ID/deny` (JSON body, optional: `{"by": "...", "reason": "..."}`)
  decide one: 200, or 409 when the call is not waiting (decided, withdrawn, timed out, unknown).

Every `/approvals` request needs `Authorization: Bearer <token>` (401 otherwise, compared in constant time) and must
come from a loopback address (403 otherwise), whatever interface the server listens on: deciding is not for the
network. Without a token the endpoints answer 404.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Callable
from typing import Any

import anyio
from anyio.abc import SocketAttribute, SocketStream, TaskStatus

from ..runtime import Approvals

__all__ = ["HealthServer"]

_MAX_REQUEST = 8192
_READ_DEADLINE = 5.0

Metrics = Callable[[], tuple[bytes, str]]


class HealthServer:
    """Serve `/healthz` and `/metrics` until cancelled.

    Args:
        metrics: Returns the `/metrics` body and its content type; called on every scrape.
        status: Returns `"ok"` while healthy; any other string is reported with a 503.
        host: Interface to bind; 127.0.0.1 by default.
        port: TCP port; 0 picks a free one (read it from `port` once started).
        approvals: The bridge's approvals desk, to serve `/approvals` (needs `token`).
        token: The bearer token `/approvals` requests must carry.
    """

    def __init__(
        self,
        metrics: Metrics,
        *,
        status: Callable[[], str] = lambda: "ok",
        host: str = "127.0.0.1",
        port: int = 0,
        approvals: Approvals | None = None,
        token: str | None = None,
    ) -> None:
        self._metrics = metrics
        self._approvals = approvals
        self._token = token
        self._status = status
        self.host = host
        self.port = port

    def __repr__(self) -> str:
        return f"HealthServer(host={self.host!r}, port={self.port})"

    async def serve(self, *, task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
        """Listen, report the bound port through `task_status`, and answer requests until cancelled."""
        listener = await anyio.create_tcp_listener(local_host=self.host, local_port=self.port)
        async with listener:
            self.port = int(listener.extra(SocketAttribute.local_port))
            task_status.started(self.port)
            await listener.serve(self._handle)

    async def _handle(self, stream: SocketStream) -> None:
        async with stream:
            request = b""
            with anyio.move_on_after(_READ_DEADLINE):
                try:
                    while b"\r\n\r\n" not in request and len(request) < _MAX_REQUEST:
                        request += await stream.receive(4096)
                    wanted = min(_MAX_REQUEST, request.find(b"\r\n\r\n") + 4 + _content_length(request))
                    while len(request) < wanted:
                        request += await stream.receive(4096)
                except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                    return
            try:
                peer = str(stream.extra(SocketAttribute.remote_address)[0])
            except (TypeError, IndexError, anyio.TypedAttributeLookupError):
                peer = ""
            status, content_type, body = self.respond(request, peer=peer)
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
                "Cache-Control: no-store\r\nConnection: close\r\n\r\n"
            )
            method = request.split(b" ", 1)[0]
            try:
                await stream.send(head.encode() + (b"" if method == b"HEAD" else body))
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                return

    def respond(self, request: bytes, *, peer: str = "127.0.0.1") -> tuple[str, str, bytes]:
        """Status line, content type and body for one raw request from `peer` (pure, so it is easy to test)."""
        try:
            method, target, _ = request.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        except ValueError:
            return "400 Bad Request", "text/plain", b"bad request\n"
        path = target.split("?", 1)[0]
        if path == "/approvals" or path.startswith("/approvals/"):
            return self._approvals_respond(method, path, request, peer)
        if path not in ("/healthz", "/metrics"):
            return "404 Not Found", "text/plain", b"not found: try /healthz or /metrics\n"
        if method not in ("GET", "HEAD"):
            return "405 Method Not Allowed", "text/plain", b"method not allowed\n"
        if path == "/healthz":
            status = self._safe_status()
            code = "200 OK" if status == "ok" else "503 Service Unavailable"
            return code, "application/json", json.dumps({"status": status}).encode() + b"\n"
        try:
            body, content_type = self._metrics()
        except Exception as exc:  # a broken metrics callback must not take the endpoint down
            return "500 Internal Server Error", "text/plain", f"metrics failed: {type(exc).__name__}\n".encode()
        return "200 OK", content_type, body

    def _approvals_respond(self, method: str, path: str, request: bytes, peer: str) -> tuple[str, str, bytes]:
        approvals = self._approvals
        if approvals is None or not self._token:
            return "404 Not Found", "text/plain", b"approvals endpoint disabled: set [approvals] http_token\n"
        if not _is_loopback(peer):
            return "403 Forbidden", "text/plain", b"approvals are decided from this host only\n"
        head, _, raw_body = request.partition(b"\r\n\r\n")
        if not hmac.compare_digest(_bearer(head).encode(), self._token.encode()):
            return "401 Unauthorized", "text/plain", b"missing or wrong bearer token\n"
        parts = path.strip("/").split("/")
        if method == "GET" and len(parts) == 1:
            return _json("200 OK", [p.to_json() for p in approvals.pending()])
        if method == "GET" and len(parts) == 2:
            pending = approvals.get(parts[1])
            return _json("200 OK", pending.to_json()) if pending else _json("404 Not Found", {"error": "not waiting"})
        if method != "POST" or len(parts) != 3 or parts[2] not in ("approve", "deny"):
            usage = b"use GET /approvals[/ID] or POST /approvals/ID/approve|deny\n"
            return "405 Method Not Allowed", "text/plain", usage
        try:
            body = json.loads(raw_body or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _json("400 Bad Request", {"error": "the body must be a JSON object"})
        by, reason = str(body.get("by") or "http"), body.get("reason")
        call_id = parts[1]
        if parts[2] == "approve":
            done = approvals.approve(call_id, by=by)
        else:
            done = approvals.deny(call_id, str(reason) if reason is not None else None, by=by)
        if not done:
            return _json("409 Conflict", {"error": f"call {call_id} is not waiting for approval"})
        return _json("200 OK", {"call_id": call_id, "decision": parts[2], "by": by})

    def _safe_status(self) -> str:
        try:
            return self._status()
        except Exception as exc:
            return f"error: {type(exc).__name__}"


def _content_length(request: bytes) -> int:
    head = request.partition(b"\r\n\r\n")[0].decode("latin-1")
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            try:
                return max(0, int(value.strip()))
            except ValueError:
                return 0
    return 0


def _bearer(head: bytes) -> str:
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "authorization":
            scheme, _, token = value.strip().partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return ""


def _is_loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 on a dual-stack socket
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def _json(status: str, value: Any) -> tuple[str, str, bytes]:
    return status, "application/json", json.dumps(value).encode() + b"\n"
