"""`--health-port`: `/healthz` and `/metrics` for the daemon, with no web framework.

Orchestrators probe liveness and scrape metrics over plain HTTP/1.1. Two read-only endpoints do not justify pulling
a server into the daemon's dependencies, so this is a small responder on anyio's TCP listener: one request per
connection, `Connection: close`, bounded reads with a deadline so a slow or hostile client cannot pin a task.

- `GET /healthz` answers `200 {"status": "ok"}` while the bridge serves, `503 {"status": "draining"}` (or whatever
  the status callback says) otherwise.
- `GET /metrics` renders the bridge's `stats()` in the Prometheus text exposition format (0.0.4): numbers become
  `bridge_<path>` gauges (counters when the name ends in `_total`); a table of numbers keyed by name (per state)
  becomes one metric with a label, and a table of records (per tool) one labelled metric per field.

It listens on 127.0.0.1 unless told otherwise: metrics name tools and sessions, which are not for the whole network.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import anyio
from anyio.abc import SocketAttribute, SocketStream, TaskStatus

__all__ = ["HealthServer", "render_metrics"]

_MAX_REQUEST = 8192
_READ_DEADLINE = 5.0
_NAME_BAD = re.compile(r"[^a-zA-Z0-9_]")
_LABEL_NAMES = {
    "by_state": "state",
    "by_tool": "tool",
    "tools": "tool",
    "by_session": "session",
    "states": "state",
    "call_latency_seconds": "quantile",
    "answer_latency_seconds": "quantile",
}


class HealthServer:
    """Serve `/healthz` and `/metrics` until cancelled.

    Args:
        stats: Returns the current statistics (a mapping or a dataclass, nested freely); called on every scrape.
        status: Returns `"ok"` while healthy; any other string is reported with a 503.
        host: Interface to bind; 127.0.0.1 by default.
        port: TCP port; 0 picks a free one (read it from `port` once started).
    """

    def __init__(
        self,
        stats: Callable[[], Any],
        *,
        status: Callable[[], str] = lambda: "ok",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._stats = stats
        self._status = status
        self.host = host
        self.port = port
        self._started = time.monotonic()

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
            stats = self._stats()
        except Exception as exc:  # a broken stats callback must not take the endpoint down
            return "500 Internal Server Error", "text/plain", f"stats failed: {type(exc).__name__}\n".encode()
        text = render_metrics(stats, extra={"up": 1, "uptime_seconds": time.monotonic() - self._started})
        return "200 OK", "text/plain; version=0.0.4; charset=utf-8", text.encode()

    def _safe_status(self) -> str:
        try:
            return self._status()
        except Exception as exc:
            return f"error: {type(exc).__name__}"


def render_metrics(stats: Any, *, prefix: str = "bridge", extra: Mapping[str, float] | None = None) -> str:
    """Render nested statistics in the Prometheus text format, one `# TYPE` line per metric."""
    samples: dict[str, list[tuple[str, float]]] = {}
    for key, value in (extra or {}).items():
        samples.setdefault(f"{prefix}_{_name(key)}", []).append(("", float(value)))
    _collect(_as_mapping(stats), prefix, samples)
    lines: list[str] = []
    for name in sorted(samples):
        kind = "counter" if name.endswith("_total") else "gauge"
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples[name]:
            lines.append(f"{name}{labels} {_number(value)}")
    return "\n".join(lines) + "\n"


def _collect(data: Mapping[str, Any], path: str, out: dict[str, list[tuple[str, float]]]) -> None:
    for key, value in data.items():
        name = f"{path}_{_name(str(key))}"
        number = _as_number(value)
        if number is not None:
            out.setdefault(name, []).append(("", number))
        elif _is_struct(value):  # fixed fields (a dataclass): always flattened, so the metric names never change
            _collect(_as_mapping(value), name, out)
        elif (
            isinstance(value, Mapping) and value and all(_as_number(v) is not None or v is None for v in value.values())
        ):
            label = _LABEL_NAMES.get(str(key), "key")  # a table of numbers keyed by name, e.g. per state
            for sub, v in value.items():
                if (number := _as_number(v)) is not None:
                    out.setdefault(name, []).append((f'{{{label}="{_escape(str(sub))}"}}', number))
        elif (
            isinstance(value, Mapping)
            and value
            and all(_is_struct(v) or isinstance(v, Mapping) for v in value.values())
        ):
            label = _LABEL_NAMES.get(str(key), "key")  # a table of records keyed by name, e.g. per tool
            for sub, record in value.items():
                for field, v in _as_mapping(record).items():
                    if (number := _as_number(v)) is not None:
                        tag = f'{{{label}="{_escape(str(sub))}"}}'
                        out.setdefault(f"{name}_{_name(str(field))}", []).append((tag, number))
        elif isinstance(value, Mapping):
            _collect(value, name, out)


def _is_struct(value: Any) -> bool:
    return (dataclasses.is_dataclass(value) and not isinstance(value, type)) or hasattr(value, "_asdict")


def _as_mapping(stats: Any) -> Mapping[str, Any]:
    if isinstance(stats, Mapping):
        return stats
    if dataclasses.is_dataclass(stats) and not isinstance(stats, type):
        return {f.name: getattr(stats, f.name) for f in dataclasses.fields(stats)}
    if hasattr(stats, "_asdict"):
        return dict(stats._asdict())
    return {}


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    return None


def _name(key: str) -> str:
    name = _NAME_BAD.sub("_", key).strip("_").lower()
    return name or "value"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
