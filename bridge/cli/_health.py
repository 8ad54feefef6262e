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

With an `Approvals` desk and a token (`[approvals] http_token` in bridge.toml), it also decides parked calls:

- `GET /approvals` lists the calls waiting (JSON), `GET /approvals/ID` shows one;
- `POST /approvals/ID/approve` and `POST /approvals/ID/deny` (JSON body, optional: `{"by": "...", "reason": "..."}`)
  decide one: 200, or 409 when the call is not waiting (decided, withdrawn, timed out, unknown).

Every `/approvals` request needs `Authorization: Bearer <token>` (401 otherwise, compared in constant time) and must
come from a loopback address (403 otherwise), whatever interface the server listens on: deciding is not for the
network. Without a token the endpoints answer 404.
"""

from __future__ import annotations

import dataclasses
import hmac
import ipaddress
import json
import math
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import anyio
from anyio.abc import SocketAttribute, SocketStream, TaskStatus

from ..runtime import Approvals

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
        approvals: The bridge's approvals desk, to serve `/approvals` (needs `token`).
        token: The bearer token `/approvals` requests must carry.
    """

    def __init__(
        self,
        stats: Callable[[], Any],
        *,
        status: Callable[[], str] = lambda: "ok",
        host: str = "127.0.0.1",
        port: int = 0,
        approvals: Approvals | None = None,
        token: str | None = None,
    ) -> None:
        self._stats = stats
        self._approvals = approvals
        self._token = token
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
            stats = self._stats()
        except Exception as exc:  # a broken stats callback must not take the endpoint down
            return "500 Internal Server Error", "text/plain", f"stats failed: {type(exc).__name__}\n".encode()
        text = render_metrics(stats, extra={"up": 1, "uptime_seconds": time.monotonic() - self._started})
        return "200 OK", "text/plain; version=0.0.4; charset=utf-8", text.encode()

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
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _json(status: str, value: Any) -> tuple[str, str, bytes]:
    return status, "application/json", json.dumps(value).encode() + b"\n"


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
