"""The HTTP transport's guards: a bearer token when configured, and Origin checks as the MCP spec requires."""

from __future__ import annotations

from typing import Any

import pytest
from mcp.shared._httpx_utils import create_mcp_http_client
from serve_support import http_server, http_session, texts

from bridge.mcp import OriginAndTokenGuard, is_loopback

pytestmark = pytest.mark.anyio

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
ACCEPT = {"accept": "application/json, text/event-stream"}


async def _post(url: str, headers: dict[str, str]) -> Any:
    """POST an `initialize` request with these headers (the SDK's HTTP client: httpx for mcp 1.x, httpx2 for 2.x)."""
    async with create_mcp_http_client(headers={**ACCEPT, **headers}) as client:
        return await client.post(url, json=INITIALIZE)


async def test_bearer_token_is_required_when_set() -> None:
    """Without the token, or with a wrong one, the server answers 401; the official client with it works."""
    async with http_server(token="s3cret") as (url, _):
        missing = await _post(url, {})
        wrong = await _post(url, {"authorization": "Bearer nope"})
        async with http_session(url, {"authorization": "Bearer s3cret"}) as session:
            added = await session.call_tool("add", {"a": 1, "b": 2})
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert wrong.status_code == 401
    assert texts(added) == ["3"]


async def test_foreign_origins_are_refused() -> None:
    """A non-local Origin gets 403 (token or not); loopback and configured origins are served."""
    async with http_server(token="s3cret", allowed_origins=("https://app.example.com",)) as (url, _):
        auth = {"authorization": "Bearer s3cret"}
        foreign = await _post(url, {**auth, "origin": "http://evil.example"})
        rebinding = await _post(url, {**auth, "origin": "http://127.0.0.1.evil.example:8765"})
        local = await _post(url, {**auth, "origin": "http://localhost:3000"})
        allowed = await _post(url, {**auth, "origin": "https://app.example.com"})
        unauthenticated_foreign = await _post(url, {"origin": "http://evil.example"})
    assert foreign.status_code == 403
    assert rebinding.status_code == 403
    assert unauthenticated_foreign.status_code == 403
    assert local.status_code == 200
    assert allowed.status_code == 200


def test_origin_rules() -> None:
    """Loopback origins pass on any port and scheme http(s); `null` and other hosts do not."""
    guard = OriginAndTokenGuard(lambda scope, receive, send: None)  # type: ignore[arg-type,return-value]
    assert guard.origin_allowed("http://127.0.0.1:6274")
    assert guard.origin_allowed("https://[::1]")
    assert not guard.origin_allowed("null")
    assert not guard.origin_allowed("file://localhost")
    assert not guard.origin_allowed("http://localhost.evil.example")


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        ("::ffff:10.0.0.1", False),
        ("127.0.0.1.evil.example", False),
        ("0.0.0.0", False),
    ],
)
def test_loopback_is_decided_by_address_ipv4_mapped_included(host: str, expected: bool) -> None:
    """An IPv4 loopback client seen on a dual-stack socket (::ffff:127.0.0.1) is loopback; prefixes never are."""
    from bridge.cli._health import _is_loopback

    assert is_loopback(host) is expected
    if host not in ("localhost", "[::1]", "127.0.0.1.evil.example"):
        assert _is_loopback(host) is expected
