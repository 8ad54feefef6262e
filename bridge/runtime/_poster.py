"""Posting results: batched per session, retried with backoff, never duplicated, never recomputed.

One `Poster` per served session. Results that become ready while a post is in flight wait and leave together in the
next `events.send`, so a burst of 200 answers costs a handful of requests, not 200. The poster owns the exact
content to post (the journal's stored result): a failed post is retried with the same result, never by running the
tool again.

Never a duplicate: the client used for posting has the SDK's own retries turned off, because the SDK would re-send a
POST whose response was lost, and the API has no idempotency key. Instead, after any failure whose outcome is unknown
(5xx, timeout, dropped connection) the poster reads the session's recent `user.custom_tool_result` events and posts
only the results that did not land. A 429 or another 4xx means nothing was stored. A batch the API rejects (400) is
split so one bad result cannot block the others; a rejected single result is replaced once by a text-only error that
says why, so the session is never left waiting.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio
from anthropic.resources.beta.sessions.events import AsyncEvents
from anthropic.types.beta.sessions import BetaManagedAgentsUserCustomToolResultEventParams

from ..journal import Journal, StoredResult
from ._limits import Limits, Timeouts
from ._observe import CallEvent, CallEventKind, Observer, log_extra
from ._sdk import Failure, backoff, describe, recoverable, retry_after

__all__ = ["Outgoing", "Poster"]

logger = logging.getLogger("bridge.poster")

PIPELINE = 4
"""Posts of one session in flight at once."""


@dataclass(eq=False)
class Outgoing:
    """One result waiting to be posted."""

    tool_use_id: str
    tool: str
    thread_id: str | None
    result: StoredResult
    since: datetime | None = None  # the call's processed_at: where a history check may start reading
    unsure: bool = False  # a post carrying it failed in a way that may have stored it
    fallback: bool = False  # already replaced by a text-only error after a rejection
    done: bool = False

    def event(self) -> BetaManagedAgentsUserCustomToolResultEventParams:
        return {
            "type": "user.custom_tool_result",
            "custom_tool_use_id": self.tool_use_id,
            "content": [dict(block) for block in self.result.content],  # type: ignore[misc]
            "is_error": self.result.is_error,
        }


class Poster:
    """Posts one session's results.

    Args:
        session_id: The session.
        requests: The bridge-wide limiter of API requests in flight.
        send_events: `events` resource of a client with `max_retries=0` (retries are ours).
        history: `events` resource of an ordinary client, for the history checks.
        journal: Where posts and acks are recorded.
        observer: Counters and call events.
        wanted: Asked just before posting; False means the session or thread no longer waits for the result.
        on_drop: Called (awaited) for a result that will never be posted, with the reason.
    """

    def __init__(
        self,
        session_id: str,
        *,
        send_events: AsyncEvents,
        history: AsyncEvents,
        journal: Journal,
        observer: Observer,
        limits: Limits,
        timeouts: Timeouts,
        wanted: Callable[[Outgoing], bool],
        on_drop: Callable[[Outgoing, str], Awaitable[None]],
        requests: anyio.CapacityLimiter | None = None,
    ) -> None:
        self.session_id = session_id
        self._send_events = send_events
        self._history = history
        self._journal = journal
        self._observer = observer
        self._limits = limits
        self._timeouts = timeouts
        self._wanted = wanted
        self._on_drop = on_drop
        self._requests = requests or anyio.CapacityLimiter(limits.max_requests)
        self._pending: dict[str, Outgoing] = {}
        self._in_flight: dict[str, Outgoing] = {}
        self._wake = anyio.Event()
        self._empty = anyio.Event()
        self._empty.set()

    def __repr__(self) -> str:
        return f"Poster({self.session_id!r}, pending={len(self._pending)}, in_flight={len(self._in_flight)})"

    @property
    def backlog(self) -> int:
        return len(self._pending) + len(self._in_flight)

    def put(self, item: Outgoing) -> None:
        """Queue a result for posting (never blocks)."""
        if item.tool_use_id in self._in_flight:
            return
        self._pending[item.tool_use_id] = item
        if self._empty.is_set():
            self._empty = anyio.Event()
        self._wake.set()

    def withdraw(self, tool_use_id: str) -> Outgoing | None:
        """Take back a result not yet being posted (None if it is in flight or unknown)."""
        item = self._pending.pop(tool_use_id, None)
        self._check_empty()
        return item

    def settle(self, tool_use_id: str) -> None:
        """The result is in the session already (its echo was seen): stop trying to post it."""
        for table in (self._pending, self._in_flight):
            if (item := table.get(tool_use_id)) is not None:
                item.done = True
        self._pending.pop(tool_use_id, None)
        self._check_empty()

    async def wait_empty(self) -> None:
        """Return once nothing is pending or in flight."""
        await self._empty.wait()

    def _check_empty(self) -> None:
        if not self._pending and not self._in_flight:
            self._empty.set()

    async def run(self) -> None:
        """Post until cancelled. Raises `APIAccessError` / `SessionNotFoundError` when the API refuses the session.

        Up to `PIPELINE` posts of one session are in flight at once: a result that becomes ready while a post is on
        the wire leaves at once instead of waiting a round trip for it; once all are busy, results wait and batch.
        """
        slots = anyio.Semaphore(PIPELINE)
        async with anyio.create_task_group() as tg:
            while True:
                if not self._pending:
                    self._check_empty()
                    await self._wake.wait()
                    self._wake = anyio.Event()
                    continue
                await slots.acquire()
                batch = list(self._pending.values())[: self._limits.max_batch]
                for item in batch:
                    del self._pending[item.tool_use_id]
                    self._in_flight[item.tool_use_id] = item
                tg.start_soon(self._post_batch, batch, slots)

    async def _post_batch(self, batch: list[Outgoing], slots: anyio.Semaphore) -> None:
        try:
            await self._post(batch, split=len(batch) > 1)
        finally:
            for item in batch:
                self._in_flight.pop(item.tool_use_id, None)
            slots.release()
            self._check_empty()

    async def _post(self, batch: list[Outgoing], *, split: bool) -> None:
        attempt = 0
        while True:
            live = []
            for item in batch:
                if item.done:
                    continue
                if not self._wanted(item):
                    item.done = True
                    await self._on_drop(item, "the session no longer waits for it")
                    continue
                live.append(item)
            batch = live
            if not batch:
                return
            try:
                if any(item.unsure for item in batch):
                    batch = await self._skip_landed(batch)
                    if not batch:
                        return
                async with self._requests:
                    await self._send_events.send(
                        self.session_id, events=[item.event() for item in batch], timeout=self._timeouts.request
                    )
            except Exception as exc:
                kind = recoverable(exc, f"session {self.session_id}")
                if kind is Failure.REJECTED:
                    if split:
                        for item in batch:
                            await self._post([item], split=False)
                        return
                    if await self._rejected(batch[0], exc):
                        continue
                    return
                if kind is Failure.UNKNOWN:
                    for item in batch:
                        item.unsure = True
                attempt += 1
                self._observer.count("post_retries")
                delay = retry_after(exc)
                if delay is None:
                    delay = backoff(attempt, start=0.25, cap=self._timeouts.post_backoff_max)
                logger.warning(
                    "posting %d result(s) failed (%s); retrying in %.2fs",
                    len(batch),
                    describe(exc),
                    delay,
                    extra=log_extra(self.session_id, attempt=attempt),
                )
                await anyio.sleep(delay)
                continue
            await self._journal.mark_posted(self.session_id, [item.tool_use_id for item in batch])
            self._observer.count("posts")
            for item in batch:
                item.done = True
                self._emit(item, CallEventKind.POSTED)
            return

    async def _skip_landed(self, batch: list[Outgoing]) -> list[Outgoing]:
        """Check the history for results of `batch` that a failed post stored after all; return the rest."""
        ids = {item.tool_use_id for item in batch}
        since = min((item.since for item in batch if item.since is not None), default=None)
        landed: dict[str, str] = {}
        params: dict[str, Any] = {
            "types": ["user.custom_tool_result"],
            "limit": 1000,
            "timeout": self._timeouts.request,
        }
        if since is not None:
            params["created_at_gte"] = since
        async with self._requests:
            async for event in self._history.list(self.session_id, **params):
                use_id = getattr(event, "custom_tool_use_id", None)
                if use_id in ids:
                    landed[use_id] = event.id
        rest = []
        for item in batch:
            if item.tool_use_id in landed:
                item.done = True
                await self._journal.mark_posted(self.session_id, [item.tool_use_id])
                await self._journal.mark_acked(self.session_id, item.tool_use_id, landed[item.tool_use_id])
                self._observer.count("duplicates_prevented")
                self._emit(item, CallEventKind.POSTED, "found in the session history after a failed post")
            else:
                item.unsure = False
                rest.append(item)
        return rest

    async def _rejected(self, item: Outgoing, exc: BaseException) -> bool:
        """A single result was rejected. Replace it once by a text-only error (True: post that), else drop it."""
        reason = describe(exc)
        logger.error(
            "the API rejected the result of %s: %s",
            item.tool,
            reason,
            extra=log_extra(self.session_id, item.tool_use_id, item.tool),
        )
        text_only = all(block.get("type") == "text" for block in item.result.content)
        if item.fallback or (item.result.is_error and text_only):
            item.done = True
            await self._on_drop(item, f"rejected by the API: {reason}")
            return False
        item.fallback = True
        message = (
            f"The tool {item.tool!r} ran, but the API rejected its result ({reason}). "
            "The result could not be delivered; do not assume its content."
        )
        item.result = StoredResult(({"type": "text", "text": message},), is_error=True)
        return True

    def _emit(self, item: Outgoing, kind: CallEventKind, detail: str | None = None) -> None:
        self._observer.emit(
            CallEvent(
                kind,
                self.session_id,
                item.tool_use_id,
                item.tool,
                thread_id=item.thread_id,
                is_error=item.result.is_error,
                detail=detail,
            )
        )
