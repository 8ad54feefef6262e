"""`--health-port`: `/healthz` and `/metrics` for the daemon, with no web framework.

Orchestrators probe liveness and scrape metrics over plain HTTP/1.1. Two read-only endpoints do not justify pulling
a server into the daemon's dependencies, so this is a small responder on anyio's TCP listener: one request per
connection, `Connection: close`, bounded reads with a deadline so a slow or hostile client cannot pin a task.

- `GET /healthz` answers `200 {"status": "ok"}` while the bridge serves, `503 {"status": "draining"}` (or whatever
  the status callback says) otherwise.
- `GET /metrics` serves whatever the metrics callback renders: for the daemon, `bridge.telemetry.PrometheusMetrics`
  (prometheus-client's exposition, with real histograms).

It listens on 127.0.0.1 unless told otherwise: metrics name tools and sessions, which are not for the whole network.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import anyio
from anyio.abc import SocketAttribute, SocketStream, TaskStatus

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
    """

    def __init__(
        self,
        metrics: Metrics,
        *,
        status: Callable[[], str] = lambda: "ok",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._metrics = metrics
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
                except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                    return
            status, content_type, body = self.respond(request)
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
                "Cache-Control: no-store\r\nConnection: close\r\n\r\n"
            )
            method = request.split(b" ", 1)[0]
            try:
                await stream.send(head.encode() + (b"" if method == b"HEAD" else body))
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                return

    def respond(self, request: bytes) -> tuple[str, str, bytes]:
        """Status line, content type and body for one raw request (pure, so it is easy to test)."""
        try:
            method, target, _ = request.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        except ValueError:
            return "400 Bad Request", "text/plain", b"bad request\n"
        path = target.split("?", 1)[0]
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

    def _safe_status(self) -> str:
        try:
            return self._status()
        except Exception as exc:
            return f"error: {type(exc).__name__}"
