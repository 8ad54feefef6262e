"""The HTTP edge: request ids, auth, the beta header, the rate limit, injected faults and the request log.

A raw ASGI middleware, so that it can also do what a framework response cannot: cut a connection after the request
was processed (the SDK sees a transport error and retries, which is how a stored-but-unacknowledged POST happens).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._faults import Faults, RateLimit
from ._util import APIError

__all__ = ["EdgeMiddleware", "RequestRecord", "error_response_parts"]

BETA = "managed-agents-2026-04-01"


@dataclass(frozen=True)
class RequestRecord:
    """One request as the emulator saw it (for tests: retries carry `x-stainless-retry-count`; a bridge in a fleet
    names itself in `x-bridge-instance`, kept as `instance`, so a test can tell which process sent what)."""

    method: str
    path: str
    query: str
    status: int
    retry_count: int
    request_id: str
    at: float
    dropped: bool
    instance: str | None = None


def error_response_parts(error: APIError, request_id: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, headers and body of the error envelope, with the `request-id` header the SDK reads."""
    body = json.dumps(error.envelope(request_id)).encode()
    headers = [(b"content-type", b"application/json"), (b"request-id", request_id.encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
    return error.status, headers, body


async def _send_error(send: Send, error: APIError, request_id: str) -> None:
    status, headers, body = error_response_parts(error, request_id)
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class EdgeMiddleware:
    """Wraps the app: assigns the request id, applies faults and auth, logs the request."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        api_keys: frozenset[str],
        faults: Faults,
        require_beta: bool,
        log: list[RequestRecord],
        on_logged: Callable[[], None] | None = None,
        rate_limit: RateLimit | None = None,
    ) -> None:
        self.app = app
        self.api_keys = api_keys
        self.faults = faults
        self.require_beta = require_beta
        self.log = log
        self.on_logged = on_logged  # wakes `Control.wait_requests`
        self.rate_limit = rate_limit

    def _auth_error(self, headers: dict[str, str]) -> APIError | None:
        bearer = headers.get("authorization", "")
        key = bearer[7:] if bearer.lower().startswith("bearer ") else headers.get("x-api-key")
        if not key:
            return APIError(401, "authentication_error", "missing credentials: send `Authorization: Bearer <key>`")
        if key not in self.api_keys:
            return APIError(401, "authentication_error", "invalid x-api-key")
        if self.require_beta and BETA not in [b.strip() for b in headers.get("anthropic-beta", "").split(",")]:
            return APIError(400, "invalid_request_error", f"this endpoint requires the `anthropic-beta: {BETA}` header")
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = "req_" + secrets.token_hex(12)
        scope.setdefault("state", {})["request_id"] = request_id
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        method, path = scope["method"], scope["path"]
        status = 0
        dropped = False

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"request-id", request_id.encode())]
            await send(message)

        try:
            delay = self.faults.latency(method, path)
            if delay:
                await anyio.sleep(delay)
            failure = self.faults.take_failure(method, path)
            error = self._auth_error(headers)
            limit = self.rate_limit
            if failure is None and error is None and limit is not None and limit.applies(method, path):
                wait = limit.take()
                failure = None if wait is None else limit.failure(wait)
            if failure is not None:
                status = failure.status
                await _send_error(
                    send,
                    APIError(
                        failure.status,
                        failure.error_type,
                        failure.message,
                        headers=failure.headers,
                        error_code=failure.error_code,
                    ),
                    request_id,
                )
            elif error is not None:
                status = error.status
                await _send_error(send, error, request_id)
            elif self.faults.take_drop(method, path):
                dropped = True
                await self._drop(scope, receive, send)
            else:
                await self.app(scope, receive, send_with_id)
        finally:
            retries = headers.get("x-stainless-retry-count", "0")
            record = RequestRecord(
                method,
                path,
                scope.get("query_string", b"").decode("latin-1"),
                status,
                int(retries) if retries.isdigit() else 0,
                request_id,
                time.monotonic(),
                dropped,
                headers.get("x-bridge-instance"),
            )
            self.log.append(record)
            if self.on_logged is not None:
                self.on_logged()

    async def _drop(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request to completion, throw its response away, then cut the connection mid-response."""

        async def swallow(message: Message) -> None:
            return None

        await self.app(scope, receive, swallow)
        # Promise a body and return without sending it: the server closes the connection, the client sees an
        # incomplete response (a transport error), exactly as if the network dropped the answer.
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"64")]})


def parse_json(body: bytes) -> Any:
    """Decode a request body; an empty body is `{}` (the SDK sends none on archive and delete)."""
    if not body.strip():
        return {}
    try:
        return json.loads(body)
    except ValueError:
        raise APIError(400, "invalid_request_error", "request body is not valid JSON") from None
