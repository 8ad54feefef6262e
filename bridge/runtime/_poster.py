"""Posting results: batched per session, retried, never duplicated, never recomputed.

One `Poster` per served session. It takes items (`put`) and reports outcomes (`Posted`, `Rejected`) on a stream the
executor reads; before every attempt it asks the call table's `wanted(tool_use_id)` whether the session still waits
for a result, so it never calls back into anything. The poster owns the exact content to post (the journal's stored
result): a failed post is retried with the same result, never by running the tool again.

Batching: the agent resumes only once every call of its `requires_action` idle is answered, so a result that is
ready while others of the same burst still run gains nothing by leaving alone. The poster holds ready results while
the call table is not `settled()` (calls still run, or the idle closing the agent's burst has not arrived), and
sends everything ready in one `events.send` once it is, or once the oldest has waited `Timeouts.post_linger`, or
once `Limits.max_batch` are ready. So a turn of 200 calls is answered in one request, and a slow call never holds
back the others for longer than the linger. Results that become ready while a post is in flight wait and leave
together in the next one.

Never a duplicate: every post goes through `post_once` (`_retry.py`), which checks the session's history, from the
calls' own `processed_at`, after any failure that may have stored the batch. A batch the API rejects (4xx) is split so
one bad result cannot block the others; a rejected single result is replaced once by a text-only error that says
why, so the session is never left waiting; rejected again, it is reported `Rejected`.

Fenced (a fleet): when this process does not hold the session's lease, a post is refused before it leaves, by
`lease_check` right before each send (which, when the lease is held but not sure, waits for the next renewal's
verdict) or by the fleet's HTTP client at the socket. That is not a failure to retry:
the batch is reported `PostFenced`, the refusal is logged once, `on_fenced` tells the runner (which stops the whole
session at once, the lease-lost path), and from then on the poster posts nothing: whatever it holds or is given
later is counted as fenced and kept back, for the session's new owner to answer from the journal.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

import anyio
from anthropic.resources.beta.sessions.events import AsyncEvents
from anthropic.types.beta.sessions import BetaManagedAgentsUserCustomToolResultEventParams
from anyio.streams.memory import MemoryObjectSendStream

from .._errors import Fenced
from ..journal import Journal, StoredResult
from ._calls import Posted, PostFenced, Rejected
from ._events import Event, ToolResult, type_name
from ._limits import Limits, Timeouts
from ._observe import CallEvent, CallEventKind, Counter, Observer, PostEvent, PostOutcome, log_extra
from ._retry import Attempts, Retry, post_once
from ._sdk import Failure, classify, describe

__all__ = ["Outgoing", "Poster", "PosterOutcome"]

logger = logging.getLogger("bridge.poster")

PIPELINE = 4
"""Posts of one session in flight at once."""

PosterOutcome = Posted | Rejected | PostFenced


@dataclass(eq=False)
class Outgoing:
    """One result waiting to be posted."""

    tool_use_id: str
    tool: str
    thread_id: str | None
    result: StoredResult
    since: datetime | None = None  # the call's processed_at: where a history check may start reading
    fallback: bool = False  # already replaced by a text-only error after a rejection
    ready_at: float = 0.0  # when it was queued (the event loop's clock): the linger counts from here

    def event(self) -> BetaManagedAgentsUserCustomToolResultEventParams:
        return {
            "type": "user.custom_tool_result",
            "custom_tool_use_id": self.tool_use_id,
            "content": [dict(block) for block in self.result.content],  # type: ignore[misc]
            "is_error": self.result.is_error,
        }


def _result_for(event: Event) -> str | None:
    match event:
        case ToolResult(custom_tool_use_id=use_id):
            return use_id
        case _:
            return None


class Poster:
    """Posts one session's results.

    Args:
        session_id: The session.
        send_events: `events` resource of a client with `max_retries=0` (retries are ours).
        history: `events` resource of an ordinary client, for the history checks.
        journal: Where posts (and results found already stored) are recorded.
        observer: Counters and call events.
        limits: `max_batch`, `max_requests`.
        timeouts: `request`, `post_backoff_max`, `post_linger`.
        wanted: Asked before every attempt: False means the session no longer waits for that result.
        settled: Asked before sending a batch early: True when no other result of the session is about to be ready
            (`CallTable.settled`); while it is False, ready results wait up to `post_linger` for the rest.
        requests: The bridge-wide limiter of API requests in flight.
        lease_check: Awaited right before every send (a fleet: does this process surely hold the session's lease?
            it waits for the next renewal's verdict when unsure); False refuses the post as fenced.
        on_fenced: Told once, with the reason, when a post was refused by a fence (here or in the HTTP client).
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
        wanted: Callable[[str], bool],
        settled: Callable[[], bool] = lambda: True,
        requests: anyio.CapacityLimiter | None = None,
        lease_check: Callable[[str], Awaitable[bool]] | None = None,
        on_fenced: Callable[[str], None] | None = None,
    ) -> None:
        self.session_id = session_id
        self.fenced: str | None = None  # why posting stopped for good (the lease was lost)
        self._lease_check = lease_check
        self._on_fenced = on_fenced
        self._send_events = send_events
        self._history = history
        self._journal = journal
        self._observer = observer
        self._limits = limits
        self._timeouts = timeouts
        self._wanted = wanted
        self._settled = settled
        self._requests = requests or anyio.CapacityLimiter(limits.max_requests)
        self._retry = Retry(start=0.25, cap=timeouts.post_backoff_max)
        self._pending: dict[str, Outgoing] = {}
        self._unsure: set[str] = set()  # withdrawn after a post that may have stored them: check before re-posting
        self._in_flight: dict[str, Outgoing] = {}
        self._again: dict[str, Outgoing] = {}  # put again while in flight: queued once that post is over, unless posted
        self._wake = anyio.Event()
        self._empty = anyio.Event()
        self._empty.set()

    def __repr__(self) -> str:
        return f"Poster({self.session_id!r}, pending={len(self._pending)}, in_flight={len(self._in_flight)})"

    @property
    def backlog(self) -> int:
        return len(self._pending) + len(self._in_flight)

    def put(self, item: Outgoing) -> None:
        """Queue a result for posting (never blocks); once fenced, nothing is queued."""
        if self.fenced is not None:
            return
        if item.tool_use_id in self._in_flight:
            self._again[item.tool_use_id] = item
            return
        self._queue(item)
        if self._empty.is_set():
            self._empty = anyio.Event()
        self._wake.set()

    def nudge(self) -> None:
        """Something the poster's `settled()` depends on changed (an idle arrived): look again at what waits."""
        if self._pending:
            self._wake.set()

    def _queue(self, item: Outgoing) -> None:
        if item.tool_use_id not in self._pending:  # kept in the order queued, so the first one is the oldest
            item.ready_at = anyio.current_time()
        else:
            item.ready_at = self._pending[item.tool_use_id].ready_at
        self._pending[item.tool_use_id] = item

    def _due(self) -> float | None:
        """When the pending results should leave: None for now, else the time the oldest one's linger ends."""
        linger = self._timeouts.post_linger
        if linger <= 0 or len(self._pending) >= self._limits.max_batch or self._settled():
            return None
        due = next(iter(self._pending.values())).ready_at + linger
        return None if due <= anyio.current_time() else due

    def withdraw(self, tool_use_id: str) -> None:
        """Forget a result not yet being posted (one in flight is checked with `wanted` before any retry)."""
        self._pending.pop(tool_use_id, None)
        self._again.pop(tool_use_id, None)
        self._check_empty()

    def fence(self, reason: str) -> None:
        """Post nothing more, ever: forget what waits (the session's new owner answers it from the journal)."""
        if self.fenced is not None:
            return
        self.fenced = reason
        self._pending.clear()
        self._again.clear()
        self._wake.set()
        self._check_empty()

    async def wait_empty(self) -> None:
        """Return once nothing is pending or in flight."""
        await self._empty.wait()

    def _check_empty(self) -> None:
        if not self._pending and not self._in_flight:
            self._empty.set()

    async def run(self, outcomes: MemoryObjectSendStream[PosterOutcome]) -> None:
        """Post until cancelled, reporting each outcome on `outcomes`.

        Ready results first wait for the rest of their batch (see the module docstring), then up to `PIPELINE` posts
        of one session are in flight at once: a batch that becomes due while a post is on the wire leaves at once
        instead of waiting a round trip for it; once all are busy, results wait and batch.

        Raises:
            APIAccessError / SessionNotFoundError: The API refuses the session.
        """
        slots = anyio.Semaphore(PIPELINE)
        async with outcomes, anyio.create_task_group() as tg:
            while True:
                if self.fenced is not None:
                    await anyio.sleep_forever()  # the runner stops the session; in-flight posts end as fenced
                if not self._pending:
                    self._check_empty()
                    await self._wake.wait()
                    self._wake = anyio.Event()
                    continue
                if (due := self._due()) is not None:
                    with anyio.move_on_at(due):
                        await self._wake.wait()
                    self._wake = anyio.Event()
                    continue
                await slots.acquire()
                batch = list(self._pending.values())[: self._limits.max_batch]
                for item in batch:
                    del self._pending[item.tool_use_id]
                    self._in_flight[item.tool_use_id] = item
                tg.start_soon(self._post_batch, batch, slots, outcomes)

    async def _post_batch(
        self, batch: list[Outgoing], slots: anyio.Semaphore, outcomes: MemoryObjectSendStream[PosterOutcome]
    ) -> None:
        settled: set[str] = set()
        try:
            for outcome in await self.post(batch):
                settled.update((outcome.tool_use_id,) if isinstance(outcome, Rejected) else outcome.tool_use_ids)
                await outcomes.send(outcome)
        finally:
            for item in batch:
                self._in_flight.pop(item.tool_use_id, None)
                again = self._again.pop(item.tool_use_id, None)
                if again is not None and item.tool_use_id not in settled:
                    self._queue(again)  # `wanted` is asked again before it leaves
                    self._wake.set()
            slots.release()
            self._check_empty()

    async def post(self, batch: list[Outgoing]) -> list[PosterOutcome]:
        """Post `batch` (split on a rejection) and return what became of it; unwanted items are left out."""
        if self.fenced is not None:
            return [PostFenced(tuple(item.tool_use_id for item in batch), self.fenced)]
        try:
            return await self._post_once(batch)
        except Exception as exc:
            kind = classify(exc)
            if kind is Failure.FENCED:
                return [self._fenced(batch, exc)]
            if kind is not Failure.REJECTED:
                raise
            if len(batch) > 1:
                return [outcome for item in batch for outcome in await self.post([item])]
            return await self._rejected(batch[0], exc)

    async def _post_once(self, batch: list[Outgoing]) -> list[PosterOutcome]:
        attempts = Attempts(
            self._retry,
            f"session {self.session_id}",
            f"posting {len(batch)} result(s)",
            logger,
            log_extra(self.session_id),
            on_retry=lambda: self._observer.count(Counter.POST_RETRIES),
        )
        watched = self._observer.watches_posts  # without a post listener, nothing is timed or built
        started = time.monotonic() if watched else 0.0
        try:
            delivery = await post_once(
                batch,
                session_id=self.session_id,
                send=self._send_events,
                history=self._history,
                event=Outgoing.event,
                stored_as=_result_for,
                key=lambda item: item.tool_use_id,
                since=min((item.since for item in batch if item.since is not None), default=None),
                history_types=[type_name(ToolResult)],
                attempts=attempts,
                requests=self._requests,
                request_timeout=self._timeouts.request,
                keep=lambda item: self._wanted(item.tool_use_id),
                unsure=any(item.tool_use_id in self._unsure for item in batch),
                guard=self._guard,
                want_stored=False,
            )
        except Exception as exc:
            if watched:
                failure = classify(exc)
                outcome = (
                    PostOutcome.REJECTED
                    if failure is Failure.REJECTED
                    else PostOutcome.FENCED
                    if failure is Failure.FENCED
                    else PostOutcome.FAILED
                )
                self._report(batch, outcome, attempts.count, started, detail=describe(exc))
            raise
        if watched:
            found = tuple(item.tool_use_id for item, _ in delivery.landed)
            outcome = PostOutcome.POSTED if delivery.posted else PostOutcome.FOUND if found else PostOutcome.UNWANTED
            self._report(batch, outcome, attempts.count, started, found=found)
        self._unsure.difference_update(item.tool_use_id for item in batch)
        self._unsure.update(item.tool_use_id for item in delivery.unsure)
        outcomes: list[PosterOutcome] = []
        if delivery.landed:
            ids = [item.tool_use_id for item, _ in delivery.landed]
            await self._journal.mark_posted(self.session_id, ids)
            for item, echo_id in delivery.landed:
                await self._journal.mark_acked(self.session_id, item.tool_use_id, echo_id)
                self._observer.count(Counter.DUPLICATES_PREVENTED)
                self._emit(item, CallEventKind.POSTED, "found in the session history after a failed post")
            outcomes.append(Posted(tuple(ids)))
        if delivery.posted:
            ids = [item.tool_use_id for item in delivery.posted]
            await self._journal.mark_posted(self.session_id, ids)
            self._observer.count(Counter.POSTS)
            for item in delivery.posted:
                self._emit(item, CallEventKind.POSTED)
            outcomes.append(Posted(tuple(ids)))
        return outcomes

    async def _guard(self) -> None:
        if self._lease_check is not None and not await self._lease_check(self.session_id):
            raise Fenced(self.session_id)

    def _fenced(self, batch: list[Outgoing], exc: Exception) -> PostFenced:
        """A fence refused the post: log it once, stop posting, tell the runner."""
        reason = describe(exc)
        if self.fenced is None:
            self.fence(reason)
            if self._on_fenced is not None:
                self._on_fenced(reason)  # the runner logs it, once, as it stops the session
            else:
                logger.warning("not posting %d result(s): %s", len(batch), reason, extra=log_extra(self.session_id))
        return PostFenced(tuple(item.tool_use_id for item in batch), reason)

    async def _rejected(self, item: Outgoing, exc: Exception) -> list[PosterOutcome]:
        """A single result was rejected: replace it once by a text-only error and post that, else report it."""
        reason = describe(exc)
        logger.error(
            "the API rejected the result of %s: %s",
            item.tool,
            reason,
            extra=log_extra(self.session_id, item.tool_use_id, item.tool),
        )
        text_only = all(block.get("type") == "text" for block in item.result.content)
        if item.fallback or (item.result.is_error and text_only):
            return [Rejected(item.tool_use_id, reason)]
        message = (
            f"The tool {item.tool!r} ran, but the API rejected its result ({reason}). "
            "The result could not be delivered; do not assume its content."
        )
        fallback = Outgoing(
            item.tool_use_id,
            item.tool,
            item.thread_id,
            StoredResult(({"type": "text", "text": message},), is_error=True),
            since=item.since,
            fallback=True,
        )
        return await self.post([fallback])

    def _report(
        self,
        batch: list[Outgoing],
        outcome: PostOutcome,
        retries: int,
        started: float,
        *,
        found: tuple[str, ...] = (),
        detail: str | None = None,
    ) -> None:
        ids = tuple(item.tool_use_id for item in batch)
        duration = time.monotonic() - started
        self._observer.emit_post(PostEvent(self.session_id, ids, outcome, retries, duration, found, detail))

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
