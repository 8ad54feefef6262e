"""Streamable HTTP: the SDK's session manager behind an Origin check and an optional bearer token, on uvicorn.

The MCP spec (basic/transports, "Security Warning") says a server MUST validate the `Origin` header of every
incoming connection and answer 403 when it is present and not allowed: a web page the user visits could otherwise
reach a server on localhost through DNS rebinding. Loopback origins (`http://localhost:*`, `http://127.0.0.1:*`,
`http://[::1]:*`, and https) are allowed, plus the ones the operator lists; requests without `Origin` (every
non-browser client) pass. The check runs before authentication so a hostile page learns nothing, not even whether a
token is needed. The token is compared in constant time and never logged.

The listening socket is bound and listening before `task_status.started(port)`, so a client may connect as soon as
the port is known: connections wait in the backlog until uvicorn accepts them, with no polling.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.abc

from .._errors import ConfigError

__all__ = ["OriginAndTokenGuard", "serve_http"]

log = logging.getLogger("bridge.mcp")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MCP_PATH = "/mcp"


def is_loopback(host: str) -> bool:
    """True for an interface only this machine can reach (`localhost`, 127.0.0.0/8, ::1); never a mere prefix."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 (Python 3.11 does not call it loopback)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


class OriginAndTokenGuard:
    """ASGI middleware: 403 for a foreign `Origin`, 401 without the bearer token, 404 off the MCP path.

    Args:
        app: The MCP endpoint.
        token: The bearer token every request must carry; None accepts any request with an allowed origin.
        allowed_origins: Origins accepted besides loopback ones, as `scheme://host[:port]`.
    """

    def __init__(self, app: ASGIApp, *, token: str | None = None, allowed_origins: tuple[str, ...] = ()) -> None:
        self.app = app
        self._token = token.encode("utf-8") if token else None
        self._origins = frozenset(origin.rstrip("/").lower() for origin in allowed_origins)

    def origin_allowed(self, origin: str) -> bool:
        """Whether a request carrying this `Origin` header may proceed."""
        if origin.rstrip("/").lower() in self._origins:
            return True
        try:
            parts = urlsplit(origin)
        except ValueError:
            return False
        return parts.scheme in ("http", "https") and parts.hostname is not None and is_loopback(parts.hostname)

    def _token_ok(self, authorization: str | None) -> bool:
        if self._token is None:
            return True
        scheme, _, value = (authorization or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode("utf-8"), self._token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}
        origin = headers.get("origin")
        if origin is not None and not self.origin_allowed(origin):
            log.warning("refused an MCP request from Origin %r (not a local or allowed origin)", origin)
            await _respond(send, 403, "Forbidden: this Origin may not use the server")
            return
        if not self._token_ok(headers.get("authorization")):
            challenge = [("www-authenticate", "Bearer")]
            await _respond(send, 401, "Unauthorized: a valid bearer token is required", challenge)
            return
        if scope.get("path", "").rstrip("/") != MCP_PATH:
            await _respond(send, 404, f"Not found: the MCP endpoint is {MCP_PATH}")
            return
        await self.app(scope, receive, send)


async def _respond(send: Send, status: int, text: str, extra: list[tuple[str, str]] | None = None) -> None:
    body = text.encode("utf-8")
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in extra or ()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


async def serve_http(
    sdk_server: Any,
    host: str,
    port: int,
    *,
    token: str | None,
    allowed_origins: tuple[str, ...],
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `sdk_server` over streamable HTTP until cancelled; see `MCPServer.serve_http`."""
    import uvicorn
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        raise ConfigError("the MCP streamable HTTP transport runs on uvicorn, which needs asyncio (not trio)") from None

    manager = StreamableHTTPSessionManager(app=sdk_server, json_response=False, stateless=False)
    app = OriginAndTokenGuard(manager.handle_request, token=token, allowed_origins=allowed_origins)
    config = uvicorn.Config(
        app, lifespan="off", log_config=None, access_log=False, log_level="warning", timeout_graceful_shutdown=5
    )
    server = uvicorn.Server(config)
    sock = _listen(host, port)
    stopped = anyio.Event()

    async def run_uvicorn() -> None:
        # Shielded so that cancelling us becomes uvicorn's own graceful shutdown (`should_exit`), which closes its
        # connections, instead of a cancellation that would leave them open.
        with anyio.CancelScope(shield=True):
            try:
                await server.serve(sockets=[sock])
            finally:
                stopped.set()

    try:
        async with manager.run(), anyio.create_task_group() as tg:
            tg.start_soon(run_uvicorn)
            bound = sock.getsockname()[1]
            log.info("serving MCP over streamable HTTP at http://%s:%d%s", host, bound, MCP_PATH)
            task_status.started(bound)
            try:
                await stopped.wait()  # uvicorn stops on its own at SIGINT/SIGTERM
            finally:
                server.should_exit = True
    finally:
        sock.close()
