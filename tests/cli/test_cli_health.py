"""The health server: /healthz and /metrics over real TCP, Prometheus text rendering."""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio
import pytest

from bridge.cli._health import HealthServer, render_metrics

pytestmark = pytest.mark.anyio


async def fetch(port: int, request: bytes) -> tuple[str, dict[str, str], str]:
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(request)
        data = b""
        try:
            while True:
                data += await stream.receive()
        except anyio.EndOfStream:
            pass
    head, _, body = data.decode().partition("\r\n\r\n")
    status, *header_lines = head.split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return status, headers, body


async def test_healthz_and_metrics_over_tcp() -> None:
    """/healthz says ok, turns 503 when the status changes, and /metrics renders the live stats."""
    state = {"status": "ok", "in_flight": 2}
    server = HealthServer(lambda: {"in_flight": state["in_flight"]}, status=lambda: str(state["status"]))
    async with anyio.create_task_group() as tg:
        port = await tg.start(server.serve)
        assert port == server.port > 0
        status, headers, body = await fetch(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (status, body) == ("HTTP/1.1 200 OK", '{"status": "ok"}\n')
        assert headers["Connection"] == "close"
        state.update(status="draining", in_flight=5)
        status, _, body = await fetch(port, b"GET /healthz HTTP/1.1\r\n\r\n")
        assert (status, body) == ("HTTP/1.1 503 Service Unavailable", '{"status": "draining"}\n')
        status, headers, body = await fetch(port, b"GET /metrics HTTP/1.1\r\n\r\n")
        assert status == "HTTP/1.1 200 OK"
        assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert "bridge_in_flight 5\n" in body
        assert "bridge_up 1\n" in body
        status, _, body = await fetch(port, b"HEAD /healthz HTTP/1.1\r\n\r\n")
        assert (status, body) == ("HTTP/1.1 503 Service Unavailable", "")
        tg.cancel_scope.cancel()


async def test_bad_requests_get_http_errors_not_crashes() -> None:
    """Unknown paths, other methods, garbage and a client that hangs up all get an answer or are dropped quietly."""
    server = HealthServer(dict)
    async with anyio.create_task_group() as tg:
        port = await tg.start(server.serve)
        assert (await fetch(port, b"GET /nope HTTP/1.1\r\n\r\n"))[0] == "HTTP/1.1 404 Not Found"
        assert (await fetch(port, b"POST /metrics HTTP/1.1\r\n\r\n"))[0] == "HTTP/1.1 405 Method Not Allowed"
        assert (await fetch(port, b"garbage\r\n\r\n"))[0] == "HTTP/1.1 400 Bad Request"
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(b"GET /hea")
        assert (await fetch(port, b"GET /healthz HTTP/1.1\r\n\r\n"))[0] == "HTTP/1.1 200 OK"
        tg.cancel_scope.cancel()


def test_a_failing_stats_callback_gives_500() -> None:
    """A broken stats callback is reported as a 500 on /metrics, without the exception text."""

    def broken() -> dict[str, int]:
        raise RuntimeError("secret detail")

    status, _, body = HealthServer(broken).respond(b"GET /metrics HTTP/1.1\r\n\r\n")
    assert status == "500 Internal Server Error"
    assert b"secret" not in body


@dataclass
class Stats:
    sessions: int = 3
    draining: bool = False
    calls_total: int = 12
    journal: dict[str, object] = field(default_factory=lambda: {"by_state": {"acked": 10, "started": 2}, "path": "x"})
    tools: dict[str, dict[str, float]] = field(default_factory=lambda: {"query": {"calls": 4, "p99_ms": 12.5}})


def test_render_metrics_flattens_nested_stats_into_labelled_metrics() -> None:
    """Numbers become gauges (counters for *_total), tables become labelled metrics, strings are skipped."""
    text = render_metrics(Stats())
    assert text.endswith("\n")
    lines = text.splitlines()
    assert "# TYPE bridge_calls_total counter" in lines
    assert "bridge_calls_total 12" in lines
    assert "# TYPE bridge_sessions gauge" in lines
    assert "bridge_draining 0" in lines
    assert 'bridge_journal_by_state{state="acked"} 10' in lines
    assert 'bridge_journal_by_state{state="started"} 2' in lines
    assert 'bridge_tools_calls{tool="query"} 4' in lines
    assert 'bridge_tools_p99_ms{tool="query"} 12.5' in lines
    assert not any("path" in line for line in lines)


def test_label_values_are_escaped() -> None:
    """Quotes, backslashes and newlines in label values are escaped as the exposition format requires."""
    text = render_metrics({"by_tool": {'we"ird\\name\n': 1}})
    assert 'bridge_by_tool{tool="we\\"ird\\\\name\\n"} 1' in text


@dataclass
class Latency:
    count: int = 0
    p50: float | None = None


@dataclass
class Runtime:
    running: int = 1
    call_latency: Latency = field(default_factory=Latency)


def test_dataclass_fields_keep_stable_metric_names() -> None:
    """A nested dataclass is always flattened by field, so its metric names do not change once values appear."""
    assert "bridge_call_latency_count 0" in render_metrics(Runtime()).splitlines()
    lines = render_metrics(Runtime(call_latency=Latency(3, 0.25))).splitlines()
    assert "bridge_call_latency_count 3" in lines
    assert "bridge_call_latency_p50 0.25" in lines
