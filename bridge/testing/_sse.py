"""The SSE event stream, framed exactly as the SDK's decoder wants it, and the faults aimed at open streams.

Framing (`managed-agents-wire.md` §6): `event: <type>\\ndata: <one-line JSON>\\n\\n` per event, `event: ping`
keep-alives while idle, `event: error` + an error envelope for an in-stream failure. There is no replay: a stream
starts with the events emitted after it connected, and a client fills the gap with `GET /events`. The body ends after
`session.status_terminated` or `session.deleted`. A dropped stream returns without finishing the chunked body, so the
client sees the connection cut mid-response, not a clean end.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import unquote

import anyio
from starlette.types import Receive, Scope, Send

from ._http import error_response_parts
from ._session import TERMINAL_EVENTS, Session
from ._store import Store
from ._util import APIError, invalid, not_found

__all__ = ["StreamEndpoint", "StreamTap", "frame"]

Json = dict[str, Any]
PING = b"event: ping\ndata: {}\n\n"
MALFORMED = b"event: message\ndata: {not json\n\n"


def frame(event: Json) -> bytes:
    """One SSE frame for `event`."""
    return f"event: {event['type']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n".encode()


class StreamTap:
    """One open stream: its read position in the session log, and the faults set on it."""

    def __init__(self, session: Session, thread_id: str | None) -> None:
        self.session = session
        self.thread_id = thread_id
        self.cursor = len(session.log)
        self.sent = 0
        self.drop_after: int | None = None
        self.stalled = False
        self.frames: list[tuple[bytes, bool]] = []

    def drop(self, after_events: int = 0) -> None:
        """Cut this stream once it has sent `after_events` more events (0: now)."""
        self.drop_after = self.sent + after_events
        self.session.poke()

    def inject(self, data: bytes, *, close: bool) -> None:
        """Send a raw frame next (an error frame closes the stream after it)."""
        self.frames.append((data, close))
        self.session.poke()


def error_frame(error_type: str, message: str) -> bytes:
    """An in-stream `event: error` with the API's error envelope."""
    body = {"type": "error", "error": {"type": error_type, "message": message}}
    return f"event: error\ndata: {json.dumps(body)}\n\n".encode()


class StreamEndpoint:
    """ASGI endpoint for `GET /v1/sessions/{id}/events/stream` and `.../threads/{tid}/stream`."""

    def __init__(self, store: Store, stream_rules: list[tuple[str | None, int]]) -> None:
        self.store = store
        self.stream_rules = stream_rules

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = scope["state"]["request_id"]
        params = scope["path_params"]
        thread_id = params.get("thread_id")
        try:
            query = {k.decode().split("=")[0] for k in scope.get("query_string", b"").split(b"&") if k}
            unknown = {unquote(k).removesuffix("[]") for k in query} - {"event_deltas"}
            if unknown and self.store.behavior.strict_query:
                raise invalid(f"unknown query parameter(s): {', '.join(sorted(unknown))}")
            session = self.store.session(params["session_id"])
            if thread_id is not None and thread_id not in session.threads:
                raise not_found("session thread", thread_id)
        except APIError as error:
            status, headers, body = error_response_parts(error, request_id)
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        tap = StreamTap(session, thread_id)
        for rule in list(self.stream_rules):
            if rule[0] in (None, session.id):
                self.stream_rules.remove(rule)
                tap.drop_after = rule[1]
                break
        session.streams.add(tap)
        session.stream_connects += 1
        self.store.poke()
        headers = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        complete = True
        try:
            async with anyio.create_task_group() as tg:

                async def watch_disconnect() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    tg.cancel_scope.cancel()

                tg.start_soon(watch_disconnect)
                complete = await self._pump(tap, send)
                tg.cancel_scope.cancel()
        finally:
            session.streams.discard(tap)
            self.store.poke()
        if complete:
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _pump(self, tap: StreamTap, send: Send) -> bool:
        """Send events until the session ends (True: finish the body) or a fault cuts the stream (False)."""
        session, behavior = tap.session, self.store.behavior
        if session.status == "terminated" and behavior.terminated_stream == "close":
            return True
        next_ping = time.monotonic() + behavior.ping_interval
        while True:
            changed = session.changed
            if self.store.closing:
                return True
            if tap.drop_after is not None and tap.sent >= tap.drop_after:
                return False
            if tap.stalled:
                await changed.wait()
                next_ping = time.monotonic() + behavior.ping_interval
                continue
            if tap.frames:
                data, close = tap.frames.pop(0)
                await self._write(send, data)
                if close:
                    return True
                continue
            if tap.cursor < len(session.log):
                entry = session.log[tap.cursor]
                tap.cursor += 1
                view = entry.view(tap.thread_id)
                if view is None or entry.skipped:
                    continue
                data = frame(view)
                await self._write(send, data + data if entry.duplicate else data)
                tap.sent += 1
                next_ping = time.monotonic() + behavior.ping_interval
                if view["type"] in TERMINAL_EVENTS:
                    return True
                continue
            with anyio.move_on_after(max(next_ping - time.monotonic(), 0)):
                await changed.wait()
                continue
            await self._write(send, PING)
            next_ping = time.monotonic() + behavior.ping_interval

    @staticmethod
    async def _write(send: Send, data: bytes) -> None:
        await send({"type": "http.response.body", "body": data, "more_body": True})
