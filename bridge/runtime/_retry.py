"""The one retry policy at the SDK boundary, and the one way to post session events exactly once.

`Attempts` owns everything about retrying an API request: which failures are fatal (401/403 and 404 raised as the
operator's `APIAccessError` / `SessionNotFoundError`; other 4xx but 408/429, and a fleet's `Fenced` refusal,
re-raised as they are), which are
transient (408, 429, 5xx, dropped connections, timeouts), the wait (the server's `Retry-After` when it sends one,
else capped exponential backoff with jitter), an optional attempt limit, and the warning logged before each wait.
`retrying(fn, ...)` runs one request under it; long-lived loops (the stream's reconnects) hold an `Attempts` and call
`failed(exc)` / `reset()`.

`post_once` posts events to a session so that none is stored twice, although the API has no idempotency key: the
client it posts with has the SDK's own retries off (the SDK would blindly re-send a POST whose response was lost),
and after a failure that may have been applied (5xx, 408, a timeout, a dropped connection) it reads the session's
history from a point taken *before the first attempt* and re-posts only what did not land. The result poster and
`Bridge.ask` both use it.

Why not `stamina` or `tenacity`: both retry a callable (or a block) on exception types, but posting exactly once
needs work *between* attempts that depends on the failure's kind (the history check after an ambiguous one, the
poster's "is it still wanted"), `Retry-After` must replace the backoff rather than cap it, and the classification
is by HTTP status through our own exception mapping. What remains of such a library here is the backoff formula;
a dependency for ten lines was not worth it.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

import anyio
from anthropic.resources.beta.sessions.events import AsyncEvents
from anthropic.types.beta.sessions import BetaManagedAgentsEventParams

from ._events import Event
from ._sdk import Failure, classify, describe, recoverable, retry_after

__all__ = ["Attempts", "Delivery", "Retry", "post_once", "retrying"]

T = TypeVar("T")
K = TypeVar("K")

logger = logging.getLogger("bridge.retry")


@dataclass(frozen=True)
class Retry:
    """How to wait between attempts: `start * 2**(n-1)` seconds, capped, jittered; `attempts=None` never gives up."""

    start: float = 0.25
    cap: float = 8.0
    attempts: int | None = None

    def delay(self, attempt: int, exc: BaseException | None = None) -> float:
        """Seconds to wait before retry number `attempt` (1-based): the server's `Retry-After` wins."""
        if exc is not None and (hinted := retry_after(exc)) is not None:
            return hinted
        nominal: float = min(self.cap, self.start * 2.0 ** (attempt - 1))
        return nominal * random.uniform(0.5, 1.0)


@dataclass
class Attempts:
    """The running count of one retried operation.

    Args:
        policy: The waits and the attempt limit.
        what: What is being reached, for error messages (`"session sesn_1"`).
        doing: What failed, for the log (`"posting 3 result(s)"`).
        log: Where the warning goes; `extra` is attached to it.
        on_retry: Called before each wait (a counter).
        transient: Exception types of the caller's own that mean "try again" (a stream that went bad).
        level: The log level of the message before each wait.
    """

    policy: Retry
    what: str
    doing: str
    log: logging.Logger = logger
    extra: dict[str, Any] = field(default_factory=dict)
    on_retry: Callable[[], None] | None = None
    transient: tuple[type[Exception], ...] = ()
    level: int = logging.WARNING
    count: int = 0

    def reset(self) -> None:
        """The operation made progress: the next failure starts the backoff from the beginning."""
        self.count = 0

    async def failed(self, exc: Exception) -> Failure:
        """Classify `exc`; raise it (mapped) if fatal, else log and wait before the next attempt.

        Returns the failure's kind (`UNKNOWN`: the request may have been applied).

        Raises:
            APIAccessError / SessionNotFoundError: 401/403 / 404 about `what`.
            Exception: `exc` itself when it is a rejection (other 4xx), a fence's refusal (this process lost the
                session's lease: retrying cannot help), not an API failure (a bug), or the last allowed attempt.
        """
        kind = Failure.UNKNOWN if isinstance(exc, self.transient) else recoverable(exc, self.what)
        if kind in (Failure.REJECTED, Failure.FENCED):
            raise exc
        self.count += 1
        if self.policy.attempts is not None and self.count >= self.policy.attempts:
            raise exc
        delay = self.policy.delay(self.count, exc)
        if self.on_retry is not None:
            self.on_retry()
        self.log.log(
            self.level,
            "%s failed (%s); retrying in %.2fs",
            self.doing,
            describe(exc),
            delay,
            extra={**self.extra, "attempt": self.count},
        )
        await anyio.sleep(delay)
        return kind


async def retrying(fn: Callable[[], Awaitable[T]], attempts: Attempts) -> T:
    """Await `fn()` until it succeeds, under `attempts` (only for requests that are safe to repeat)."""
    while True:
        try:
            return await fn()
        except Exception as exc:
            await attempts.failed(exc)


@dataclass
class Delivery(Generic[T]):
    """What `post_once` did.

    Attributes:
        posted: The items the last request stored.
        stored: The stored events the API returned for them (ids and `processed_at` filled in), when asked for.
        landed: Items a failed attempt stored after all, found in the history, with the stored event's id.
        unsure: Items `keep` dropped after a failure that may have stored them: check the history before posting
            them again (`post_once(..., unsure=True)`).
    """

    posted: list[T] = field(default_factory=list)
    stored: list[Event] = field(default_factory=list)
    landed: list[tuple[T, str]] = field(default_factory=list)
    unsure: list[T] = field(default_factory=list)


async def post_once(
    items: Sequence[T],
    *,
    session_id: str,
    send: AsyncEvents,
    history: AsyncEvents,
    event: Callable[[T], BetaManagedAgentsEventParams],
    stored_as: Callable[[Event], K | None],
    key: Callable[[T], K],
    since: datetime | None,
    history_types: list[str],
    attempts: Attempts,
    requests: anyio.CapacityLimiter,
    request_timeout: float,
    keep: Callable[[T], bool] = lambda item: True,
    unsure: bool = False,
    guard: Callable[[], Awaitable[None]] | None = None,
    want_stored: bool = True,
) -> Delivery[T]:
    """Post `items` as one request, retried until stored, never storing one twice.

    Args:
        items: What to post, in order.
        session_id: The session.
        send: `events` of a client with `max_retries=0`.
        history: `events` of an ordinary client, for the history check.
        event: The event params of an item.
        stored_as: The key of the item a stored history event is, or None if it is none of ours.
        key: An item's key.
        since: A point of the session's history (its clock) taken before the first attempt; the history check
            reads from there (None: from the beginning).
        history_types: The event types the history check reads.
        attempts: The retry policy and log context.
        requests: The bridge-wide limiter of requests in flight.
        request_timeout: Deadline of one request.
        keep: Asked before every attempt: False drops an item (the caller no longer wants it sent).
        unsure: Whether an earlier failure may have stored some of `items` already (check the history first).
        guard: Awaited right before every send; raises (`Fenced`) when nothing may be posted to the session any more.
        want_stored: Whether the caller needs `Delivery.stored`. Without it the response body is not turned into SDK
            models, which for a batch of 200 results costs more than the rest of the request.

    Raises:
        Exception: A rejection (4xx other than 408/429) of the request as it stands (the caller may split the batch
            or replace an item), or a fence's refusal (`classify(exc) is FENCED`: post nothing more to this
            session); `Attempts.failed` raises the fatal ones.
    """
    done: Delivery[T] = Delivery()
    pending = list(items)
    while True:
        kept = [item for item in pending if keep(item)]
        if unsure and len(kept) < len(pending):
            done.unsure.extend(item for item in pending if not keep(item))
        pending = kept
        if not pending:
            return done
        try:
            if unsure:
                wanted = {key(item): item for item in pending}
                found: dict[K, str] = {}
                params: dict[str, Any] = {"types": history_types, "limit": 1000, "timeout": request_timeout}
                if since is not None:
                    params["created_at_gte"] = since
                async with requests:
                    async for stored in history.list(session_id, **params):
                        if (k := stored_as(stored)) is not None and k in wanted:
                            found[k] = stored.id
                done.landed.extend((wanted[k], event_id) for k, event_id in found.items())
                pending = [item for item in pending if key(item) not in found]
                unsure = False
                if not pending:
                    return done
            if guard is not None:
                await guard()
            async with requests:
                events = [event(item) for item in pending]
                if want_stored:
                    response = await send.send(session_id, events=events, timeout=request_timeout)
                    done.stored = list(response.data or [])
                else:
                    await send.with_raw_response.send(session_id, events=events, timeout=request_timeout)
            done.posted = pending
            return done
        except Exception as exc:
            if classify(exc) in (Failure.REJECTED, Failure.FENCED):
                raise
            if await attempts.failed(exc) is Failure.UNKNOWN:
                unsure = True
