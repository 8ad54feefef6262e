"""The health server: /healthz and /metrics over real TCP."""

from __future__ import annotations

import anyio
import pytest

from bridge.cli._health import HealthServer

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
    server = HealthServer(
        lambda: (f"in_flight {state['in_flight']}\n".encode(), "text/plain; version=0.0.4"),
        status=lambda: str(state["status"]),
    )
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
        assert body == "in_flight 5\n"  # rendered at scrape time
        status, _, body = await fetch(port, b"HEAD /healthz HTTP/1.1\r\n\r\n")
        assert (status, body) == ("HTTP/1.1 503 Service Unavailable", "")
        tg.cancel_scope.cancel()


async def test_bad_requests_get_http_errors_not_crashes() -> None:
    """Unknown paths, other methods, garbage and a client that hangs up all get an answer or are dropped quietly."""
    server = HealthServer(lambda: (b"", "text/plain"))
    async with anyio.create_task_group() as tg:
        port = await tg.start(server.serve)
        assert (await fetch(port, b"GET /nope HTTP/1.1\r\n\r\n"))[0] == "HTTP/1.1 404 Not Found"
        assert (await fetch(port, b"POST /metrics HTTP/1.1\r\n\r\n"))[0] == "HTTP/1.1 405 Method Not Allowed"
        assert (await fetch(port, b"garbage\r\n\r\n"))[0] == "HTTP/1.1 400 Bad Request"
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(b"GET /hea")
        assert (await fetch(port, b"GET /healthz HTTP/1.1\r\n\r\n"))[0] == "HTTP/1.1 200 OK"
        tg.cancel_scope.cancel()


def test_a_failing_metrics_callback_gives_500() -> None:
    """A broken metrics callback is reported as a 500 on /metrics, without the exception text."""

    def broken() -> tuple[bytes, str]:
        raise RuntimeError("secret detail")

    status, _, body = HealthServer(broken).respond(b"GET /metrics HTTP/1.1\r\n\r\n")
    assert status == "500 Internal Server Error"
    assert b"secret" not in body
