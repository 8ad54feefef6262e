"""What the runtime tells the outside world: per-call events, per-POST events, `stats()`, and structured log records.

Call events and post events are plain frozen records handed to listeners synchronously, on the event loop: a
listener must be quick and must not raise (an exception is logged and swallowed, so observability can never break
serving). Log records carry `session_id`, `tool_use_id` and `tool` as `extra` fields so a JSON log formatter picks them
up; tool inputs are never logged unless the bridge is built with `log_inputs=True`.
"""

from __future__ import annotations

import enum
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BridgeStats",
    "CallEvent",
    "CallEventKind",
    "CallListener",
    "Counter",
    "Latency",
    "PostEvent",
    "PostListener",
    "PostOutcome",
]

logger = logging.getLogger("bridge")


class CallEventKind(enum.StrEnum):
    """The moments of a call an app can watch."""

    RECEIVED = "received"  # seen on the stream or in history, journaled
    STARTED = "started"  # got its slots; the tool is running
    FINISHED = "finished"  # the tool returned a result
    FAILED = "failed"  # the tool returned or raised an error (answered with is_error)
    TIMED_OUT = "timed_out"  # the deadline fired; answered with is_error
    CANCELLED = "cancelled"  # interrupted, terminated or shut down before it finished
    POSTED = "posted"  # its result was accepted by the API
    DROPPED = "dropped"  # its result will never be posted: the session or thread no longer waits
    RELEASED = "released"  # a timed-out or cancelled sync tool's thread finally ended and gave back its slots
    AWAITING_APPROVAL = "awaiting_approval"  # parked until someone approves or denies it (journaled)
    APPROVED = "approved"  # allowed to run by a decision (detail: who), or by a timeout configured to allow
    DENIED = "denied"  # denied by the policy, a person or a timeout; answered with is_error, the tool did not run


@dataclass(frozen=True)
class CallEvent:
    """One moment in the life of one call.

    Attributes:
        kind: What happened.
        session_id: The session the call belongs to.
        tool_use_id: The `agent.custom_tool_use` event id.
        tool: The tool name the agent asked for.
        thread_id: The sub-agent thread, when the call came from one.
        duration: Seconds the tool ran (for FINISHED, FAILED, TIMED_OUT, CANCELLED after it started).
        is_error: Whether the answer is an error result (when there is an answer).
        detail: A short human-readable reason (why it was cancelled or dropped, the error text).
    """

    kind: CallEventKind
    session_id: str
    tool_use_id: str
    tool: str
    thread_id: str | None = None
    duration: float | None = None
    is_error: bool | None = None
    detail: str | None = None


CallListener = Callable[[CallEvent], None]


class PostOutcome(enum.StrEnum):
    """What became of one result POST (all its attempts)."""

    POSTED = "posted"  # the API stored the results (some may have been found stored by a failed attempt instead)
    FOUND = "found"  # a failed attempt had stored them after all: found in the session history, not sent again
    UNWANTED = "unwanted"  # nothing left to send: the session no longer waits for these results
    REJECTED = "rejected"  # the API refused the request (4xx): the poster splits the batch or replaces the result
    FAILED = "failed"  # a fatal error (access refused, session gone) ended it
    FENCED = "fenced"  # this process no longer holds the session's lease (a fleet): nothing was sent


@dataclass(frozen=True)
class PostEvent:
    """One result POST of a session: one batch of results, every attempt it took, and what became of it.

    Attributes:
        session_id: The session posted to.
        tool_use_ids: The calls whose results the batch carried.
        outcome: What became of it.
        retries: Attempts after the first (transient failures waited out).
        duration: Seconds from the first attempt to the outcome, history checks and backoff included.
        found: Of `tool_use_ids`, those found already stored in the session history (not sent again).
        detail: The error, for `REJECTED` and `FAILED`.
    """

    session_id: str
    tool_use_ids: tuple[str, ...]
    outcome: PostOutcome
    retries: int
    duration: float
    found: tuple[str, ...] = ()
    detail: str | None = None


PostListener = Callable[[PostEvent], None]


@dataclass(frozen=True)
class Latency:
    """Percentiles, in seconds, over the most recent calls (a bounded window, not all time)."""

    count: int = 0
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None

    @classmethod
    def of(cls, samples: Iterable[float]) -> Latency:
        ordered = sorted(samples)
        if not ordered:
            return cls()

        def pick(q: float) -> float:
            return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

        return cls(count=len(ordered), p50=pick(0.50), p95=pick(0.95), p99=pick(0.99), max=ordered[-1])


@dataclass(frozen=True)
class BridgeStats:
    """A snapshot of the runtime, cheap enough to take on every scrape.

    Attributes:
        sessions: Sessions being served now.
        running: Calls whose tool is running (abandoned threads not included).
        queued: Calls waiting for a slot.
        awaiting_approval: Calls parked until someone approves or denies them.
        abandoned_threads: Sync tools that timed out or were cancelled but whose thread still runs; each still holds
            its slots until it ends.
        received: Calls taken in since start.
        finished / failed / timed_out / cancelled: How calls ended.
        posted: Results the API accepted.
        dropped: Results not posted because the session or thread no longer waited for them.
        posts: `events.send` requests that succeeded (each may carry several results).
        post_retries: Result posts retried after a transient failure.
        duplicates_prevented: Results not re-posted because the history already had them.
        reconnects: Stream reconnections (drops, stalls, in-stream errors).
        reconciled: Tool calls the stream skipped and the reconciliation sweep found in the history.
        fenced: Calls this process left unanswered because it lost their session's lease (a fleet): running ones
            cancelled, results kept back; the session's new owner answers them.
        sessions_fenced: Sessions stopped at once because their lease was lost (or a post was refused by the fence).
        handed_over: Sessions given up at an idle point to rebalance a fleet.
        leases_held / leases_claimed / leases_lost / leases_released: A fleet member's session leases: held now,
            and claimed, lost (taken over or expired) and released (handed over) since start; 0 outside a fleet.
        call_latency: Tool run time of recent calls.
        answer_latency: Time from receiving a call to its result being accepted, for recent calls.
    """

    sessions: int = 0
    running: int = 0
    queued: int = 0
    awaiting_approval: int = 0
    abandoned_threads: int = 0
    received: int = 0
    finished: int = 0
    failed: int = 0
    timed_out: int = 0
    cancelled: int = 0
    posted: int = 0
    dropped: int = 0
    posts: int = 0
    post_retries: int = 0
    duplicates_prevented: int = 0
    reconnects: int = 0
    reconciled: int = 0
    fenced: int = 0
    sessions_fenced: int = 0
    handed_over: int = 0
    leases_held: int = 0
    leases_claimed: int = 0
    leases_lost: int = 0
    leases_released: int = 0
    call_latency: Latency = field(default_factory=Latency)
    answer_latency: Latency = field(default_factory=Latency)


class Counter(enum.Enum):
    """The runtime's counters (each a `BridgeStats` field of the same name)."""

    RECEIVED = "received"
    FINISHED = "finished"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    POSTED = "posted"
    DROPPED = "dropped"
    POSTS = "posts"
    POST_RETRIES = "post_retries"
    DUPLICATES_PREVENTED = "duplicates_prevented"
    RECONNECTS = "reconnects"
    RECONCILED = "reconciled"
    FENCED = "fenced"
    SESSIONS_FENCED = "sessions_fenced"
    HANDED_OVER = "handed_over"


_COUNTED = {
    CallEventKind.RECEIVED: Counter.RECEIVED,
    CallEventKind.FINISHED: Counter.FINISHED,
    CallEventKind.FAILED: Counter.FAILED,
    CallEventKind.TIMED_OUT: Counter.TIMED_OUT,
    CallEventKind.CANCELLED: Counter.CANCELLED,
    CallEventKind.POSTED: Counter.POSTED,
    CallEventKind.DROPPED: Counter.DROPPED,
}


class Observer:
    """Counts, latency windows and listener fan-out, shared by every part of one bridge."""

    def __init__(self, *, window: int = 2048) -> None:
        self.counters: dict[Counter, int] = dict.fromkeys(Counter, 0)
        self.call_durations: deque[float] = deque(maxlen=window)
        self.answer_durations: deque[float] = deque(maxlen=window)
        self._received_at: dict[tuple[str, str], float] = {}
        self._listeners: list[CallListener] = []
        self._post_listeners: list[PostListener] = []

    def add_listener(self, listener: CallListener) -> Callable[[], None]:
        """Subscribe to call events; returns a function that unsubscribes."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    def add_post_listener(self, listener: PostListener) -> Callable[[], None]:
        """Subscribe to post events; returns a function that unsubscribes."""
        self._post_listeners.append(listener)

        def remove() -> None:
            if listener in self._post_listeners:
                self._post_listeners.remove(listener)

        return remove

    @property
    def watches_posts(self) -> bool:
        """Whether anyone listens to post events (without a listener the poster does not even time its posts)."""
        return bool(self._post_listeners)

    def emit_post(self, event: PostEvent) -> None:
        """Hand `event` to every post listener (one that raises is logged and ignored)."""
        for listener in list(self._post_listeners):
            try:
                listener(event)
            except Exception:
                logger.exception("post listener %r raised; ignored", listener)

    def count(self, counter: Counter, n: int = 1) -> None:
        self.counters[counter] += n

    def emit(self, event: CallEvent) -> None:
        """Record `event` in the counters and hand it to every listener."""
        if (counter := _COUNTED.get(event.kind)) is not None:
            self.counters[counter] += 1
        key = (event.session_id, event.tool_use_id)
        if event.kind is CallEventKind.RECEIVED:
            self._received_at[key] = time.monotonic()
        elif event.kind is CallEventKind.POSTED:
            if (since := self._received_at.pop(key, None)) is not None:
                self.answer_durations.append(time.monotonic() - since)
        elif event.kind is CallEventKind.DROPPED:
            self._received_at.pop(key, None)
        if event.duration is not None and event.kind in (
            CallEventKind.FINISHED,
            CallEventKind.FAILED,
            CallEventKind.TIMED_OUT,
        ):
            self.call_durations.append(event.duration)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                logger.exception("call listener %r raised; ignored", listener)

    def forget_session(self, session_id: str) -> None:
        """Drop per-call bookkeeping of a session that is no longer served."""
        for key in [k for k in self._received_at if k[0] == session_id]:
            del self._received_at[key]


def log_extra(session_id: str, tool_use_id: str | None = None, tool: str | None = None, **more: Any) -> dict[str, Any]:
    """The `extra=` mapping of a structured log record about a session or one of its calls."""
    extra: dict[str, Any] = {"session_id": session_id}
    if tool_use_id is not None:
        extra["tool_use_id"] = tool_use_id
    if tool is not None:
        extra["tool"] = tool
    extra.update(more)
    return extra
