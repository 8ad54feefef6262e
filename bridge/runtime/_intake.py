"""Intake: one session's events, from its stream and its history, each delivered once, in order.

The consolidation pattern (`reliability.md` §4.4): open the stream first, then read the history, then read the
stream, dropping every event already seen (by event id). Opening the stream first means an event emitted while the
history is being read arrives live instead of falling in the gap.

The stream is lossy, so it is watched:

- a drop (the body ends, a transport error), an in-stream `event: error`, or a frame that is not JSON ends the
  connection; the intake reconnects with capped exponential backoff;
- a stall (the socket stays open but nothing arrives, keep-alives included) is caught by a read-idle watchdog on the
  raw SSE frames: the SDK's typed iterator hides `ping` frames, so it cannot tell a quiet session from a dead socket;
- after a reconnect only what was missed is read: `created_at[gte]` the newest event seen, in ascending order. `gte`
  rather than `gt` because several events can share one timestamp; the overlap is deduplicated. The whole history
  is read only when nothing was seen yet.

The stream can also skip an event without dropping at all; the intake hands every `session.status_idle` to its
reconciler (`_reconcile.py`), which compares what the session waits on with what was seen, and `deliver`s what it
reads from the history through the same deduplication.

401/403 and 404 are raised as `APIAccessError` / `SessionNotFoundError`, other 4xx as they are; every transient
failure is retried under the one retry policy (`_retry.py`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections import OrderedDict
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from datetime import datetime
from typing import Any, NamedTuple, NoReturn, TypeVar

import anyio
import httpx2
from anthropic import AsyncStream
from anthropic.resources.beta.sessions.events import AsyncEvents
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._events import Event, Idle, parse_event
from ._limits import Timeouts
from ._observe import Counter, Observer, log_extra
from ._reconcile import Reconciler
from ._retry import Attempts, Retry

__all__ = ["Frame", "Intake", "sse_batches", "sse_frames"]

logger = logging.getLogger("bridge.intake")

T = TypeVar("T")

Handler = Callable[[list[Event], bool], Awaitable[None]]


class Frame(NamedTuple):
    """One server-sent event: its `event:` name (None if absent) and its `data:` lines joined."""

    event: str | None
    data: str


_EOL = re.compile(rb"\r\n|\r|\n")


async def sse_batches(response: httpx2.Response) -> AsyncGenerator[list[Frame], None]:
    """Decode a response body into SSE frames, a list per chunk read (never empty); a comment line (a keep-alive)
    comes out as a `ping` frame.

    The read-idle watchdog must see keep-alives, which the SDK's typed iterator swallows, and every generator in the
    chain must be closed when a stream is abandoned (trio warns about one left to the garbage collector), so this
    small decoder replaces the SDK's. Framing follows the SSE spec: `field: value` lines, a blank line ends a frame.
    Frames come in lists so that a burst (a turn of 200 tool calls arrives in a few chunks) is handled as one batch.
    """
    buffer = bytearray()
    event: str | None = None
    data: list[str] = []
    async with aclosing(response.aiter_bytes()) as chunks:
        async for chunk in chunks:
            buffer += chunk
            start = 0
            frames: list[Frame] = []
            while (match := _EOL.search(buffer, start)) is not None:
                if match.group() == b"\r" and match.end() == len(buffer):
                    break  # maybe the first half of a CRLF split across chunks
                line = buffer[start : match.start()].decode("utf-8", errors="replace")
                start = match.end()
                if not line:
                    if event is not None or data:
                        frames.append(Frame(event, "\n".join(data)))
                    event, data = None, []
                elif line.startswith(":"):
                    frames.append(Frame("ping", ""))
                else:
                    field, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if field == "event":
                        event = value
                    elif field == "data":
                        data.append(value)
            del buffer[:start]
            if frames:
                yield frames


async def sse_frames(response: httpx2.Response) -> AsyncGenerator[Frame, None]:
    """Decode a response body into SSE frames, one at a time (see `sse_batches`)."""
    async with aclosing(sse_batches(response)) as batches:
        async for batch in batches:
            for frame in batch:
                yield frame


_READ_AHEAD = 1000
"""Chunks of events the stream reader may be ahead of their handling (then it waits)."""


async def _send(send: MemoryObjectSendStream[T], item: T) -> None:
    """Send without yielding to the event loop when there is room, so events already received are read on at once
    and reach the handler together."""
    try:
        send.send_nowait(item)
    except anyio.WouldBlock:
        await send.send(item)


class _StreamEnded(Exception):
    """The stream ended or went bad; reconnect."""


class Intake:
    """Reads one session's events and hands them, deduplicated and in order, to `handler(events, live)`.

    `live` is False only for the first history read, which is a backfill: the events happened before serving began.
    Batches are handed over one at a time, whichever task delivers them (the stream reader or the sweep).

    Args:
        session_id: The session.
        events: `client.beta.sessions.events` (with the SDK's ordinary retries), for the history.
        stream_events: The same on the client that opens event streams (its own connection pool), if different.
        handler: Awaited for every batch: the first history read, each reconnect's catch-up, each live event.
        timeouts: `stream_idle`, `request`, `reconnect_max`.
        observer: Counts reconnects.
        requests: The bridge-wide limiter of API requests in flight (history reads take one).
        remember: How many event ids to remember for deduplication.
    """

    def __init__(
        self,
        session_id: str,
        *,
        events: AsyncEvents,
        stream_events: AsyncEvents | None = None,
        handler: Handler,
        timeouts: Timeouts,
        observer: Observer,
        requests: anyio.CapacityLimiter | None = None,
        remember: int = 50_000,
    ) -> None:
        self.session_id = session_id
        self._events = events
        self.stream_events = stream_events or events
        self._handler = handler
        self._timeouts = timeouts
        self._observer = observer
        self._remember = remember
        self._requests = requests or anyio.CapacityLimiter(1)
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._watermark: datetime | None = None
        self._stopped = False
        self._scope: anyio.CancelScope | None = None
        self._handling = anyio.Lock(fast_acquire=True)
        self.connected = anyio.Event()  # set once the stream is open and the history was read
        self.backfilled_to: datetime | None = None  # the newest event of the first (complete) history read
        self.activity = 0  # events delivered by the stream and its catch-up reads: a quiet session's count stays put
        self._waiting_since: float | None = None  # when the stream reader began waiting for bytes, while it waits
        self.reconciler = Reconciler(
            session_id, events=events, intake=self, timeouts=timeouts, observer=observer, requests=self._requests
        )

    @property
    def stopped(self) -> bool:
        """Whether `stop()` was called."""
        return self._stopped

    def seen(self, event_id: str) -> bool:
        """Whether this event was already delivered (among the most recent `remember` ids)."""
        return event_id in self._seen

    async def deliver(self, events: list[Event]) -> list[Event]:
        """Hand events read elsewhere (the reconciliation sweep) to the handler as live, skipping any already seen.

        Returns the events that were new. Nothing is delivered once the intake is stopped.
        """
        batch = [event for event in events if self._is_new(event)]
        if not batch or self._stopped:
            return []
        for event in batch:
            self._note(event)
        await self._handle(batch, True)
        return batch

    async def _handle(self, batch: list[Event], live: bool) -> None:
        with anyio.CancelScope(shield=True):  # `stop()` never cuts a batch's handling in half
            async with self._handling:
                await self._handler(batch, live)

    async def _idled(self, batch: list[Event]) -> None:
        """Hand the batch's latest idle to the reconciler (outside the handler's lock: it may deliver events)."""
        idle = next((event for event in reversed(batch) if isinstance(event, Idle)), None)
        if idle is not None:
            await self.reconciler.check(idle)

    def stop(self) -> None:
        """End `run()` (the session ended, or the bridge is shutting down)."""
        self._stopped = True
        if self._scope is not None:
            self._scope.cancel()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Read until `stop()`; `task_status.started()` once the stream is open and the history read.

        Raises `APIAccessError` / `SessionNotFoundError` (and a rejection as it is); retries everything else.
        """
        attempts = Attempts(
            Retry(start=0.05, cap=self._timeouts.reconnect_max),
            f"session {self.session_id}",
            "reading the event stream",
            logger,
            log_extra(self.session_id),
            on_retry=lambda: self._observer.count(Counter.RECONNECTS),
            transient=(_StreamEnded,),
            level=logging.INFO,
        )
        first = True
        with anyio.CancelScope() as self._scope:
            while not self._stopped:
                try:
                    stream = await self.stream_events.stream(self.session_id)
                    async with stream:
                        await self._catch_up(backfill=first)
                        attempts.reset()
                        if first:
                            first = False
                            self.connected.set()
                            task_status.started()
                        await self._pump(stream)
                    raise _StreamEnded("the stream ended")
                except Exception as exc:
                    if self._stopped:
                        break
                    await attempts.failed(exc)

    async def _catch_up(self, *, backfill: bool) -> None:
        """Read the history the stream did not deliver: everything once, then from the newest event seen."""
        params: dict[str, Any] = {"limit": 1000, "order": "asc", "timeout": self._timeouts.request}
        if self._watermark is not None:
            params["created_at_gte"] = self._watermark
        async with self._requests:
            batch = [event async for event in self._events.list(self.session_id, **params) if self._is_new(event)]
        for event in batch:
            self._note(event)
        self.activity += len(batch)
        if backfill:
            self.backfilled_to = self._watermark
        if batch or backfill:
            await self._handle(batch, not backfill)
        if not backfill:
            await self._idled(batch)

    async def _pump(self, stream: AsyncStream[Any]) -> None:
        """Read the stream in one task and handle what it read in this one, a batch at a time.

        The reader never waits for the handling: whatever arrived while a batch was being handled (a turn's burst of
        tool calls comes faster than one event at a time can be handled) is handed over next as one batch, so the
        per-batch costs (the call table, the poster's wake-ups, journal acks) are paid once per burst, not per event.
        """
        send, receive = anyio.create_memory_object_stream[list[Event] | Exception](max_buffer_size=_READ_AHEAD)
        failure: Exception | None = None
        async with anyio.create_task_group() as tg:
            stall = anyio.CancelScope()
            tg.start_soon(self._read, stream, send, stall)
            tg.start_soon(self._watch, stall)
            try:  # raised outside the task group, so the caller sees the failure itself, not an exception group
                await self._consume(receive)
            except Exception as exc:
                failure = exc
            tg.cancel_scope.cancel()
        if failure is not None:
            raise failure

    async def _consume(self, receive: MemoryObjectReceiveStream[list[Event] | Exception]) -> None:
        """Hand what the reader sent to the handler, everything waiting at once; raise what it failed with."""
        with receive:
            while not self._stopped:
                try:
                    items = [await receive.receive()]
                except anyio.EndOfStream:
                    return
                with contextlib.suppress(anyio.WouldBlock, anyio.EndOfStream):
                    while len(items) < _READ_AHEAD:
                        items.append(receive.receive_nowait())
                failure: Exception | None = None
                batch: list[Event] = []
                for item in items:
                    if isinstance(item, Exception):
                        failure = item
                        break
                    for event in item:
                        if self._is_new(event):
                            self._note(event)
                            batch.append(event)
                if batch:
                    self.activity += len(batch)
                    await self._handle(batch, True)
                    if failure is None:
                        await self._idled(batch)
                if failure is not None:
                    raise failure

    async def _read(
        self,
        stream: AsyncStream[Any],
        send: MemoryObjectSendStream[list[Event] | Exception],
        stall: anyio.CancelScope,
    ) -> None:
        """Decode the stream's frames into events, chunk by chunk, until it ends or fails (sent as the last item).

        `stall` is cancelled by the read-idle watchdog (`_watch`) when one read waits `stream_idle` for bytes.
        """
        batches = sse_batches(stream.response)
        with send:
            try:
                with stall:
                    while True:
                        self._waiting_since = anyio.current_time()
                        try:
                            frames = await batches.__anext__()
                        except StopAsyncIteration:
                            return
                        self._waiting_since = None
                        events: list[Event] = []
                        try:
                            for sse in frames:
                                if (event := self._decode(sse)) is not None:
                                    events.append(event)
                        except Exception:
                            if events:  # what came before a bad frame is still handed over
                                await _send(send, events)
                            raise
                        if events:
                            await _send(send, events)
                if stall.cancelled_caught:
                    raise _StreamEnded(f"no data for {self._timeouts.stream_idle:g}s (stalled)")
            except Exception as exc:
                with contextlib.suppress(anyio.BrokenResourceError):  # the consumer is gone: nobody to tell
                    await _send(send, exc)
            finally:
                self._waiting_since = None
                with anyio.CancelScope(shield=True):
                    await batches.aclose()

    async def _watch(self, stall: anyio.CancelScope) -> None:
        """The read-idle watchdog: cancel `stall` once a read has waited `stream_idle` with no bytes at all.

        One timer per idle period rather than a deadline scope around every read: the reader only notes when it
        starts waiting, which matters when a burst of events arrives one small chunk at a time.
        """
        limit = self._timeouts.stream_idle
        while True:
            since, now = self._waiting_since, anyio.current_time()
            if since is not None and now - since >= limit:
                stall.cancel()
                return
            await anyio.sleep(limit if since is None else since + limit - now)

    def _decode(self, sse: Frame) -> Event | None:
        """The event of one frame (None for a keep-alive or a type the SDK does not model); raises on a bad frame."""
        if sse.event == "error":
            self._raise_stream_error(sse.data)
        if sse.event == "ping" or not sse.data:
            return None
        try:
            data = json.loads(sse.data)
        except ValueError:
            raise _StreamEnded("a frame was not JSON (malformed); reading the history instead") from None
        event = parse_event(data)
        if event is None:
            logger.debug("skipping an event the SDK does not model: %.200s", sse.data)
        return event

    def _raise_stream_error(self, data: str) -> NoReturn:
        try:
            error = json.loads(data).get("error", {})
        except (ValueError, AttributeError):
            error = {}
        kind = error.get("type") if isinstance(error, dict) else None
        message = f"in-stream error {kind or ''}: {str(error.get('message', data))[:200]}"
        if kind in ("authentication_error", "permission_error"):
            from .._errors import APIAccessError

            raise APIAccessError(f"the API refused access to session {self.session_id}: {message}")
        if kind == "not_found_error":
            from .._errors import SessionNotFoundError

            raise SessionNotFoundError(f"session {self.session_id} was not found: {message}")
        raise _StreamEnded(message)

    @property
    def watermark(self) -> datetime | None:
        """The newest `processed_at` seen (the session's clock): history from here on holds everything newer."""
        return self._watermark

    def _is_new(self, event: Event) -> bool:
        return event.id not in self._seen

    def _note(self, event: Event) -> None:
        self._seen[event.id] = None
        if len(self._seen) > self._remember:
            self._seen.popitem(last=False)
        at = event.processed_at
        if at is not None and (self._watermark is None or at > self._watermark):
            self._watermark = at
