"""The `Journal` seam: where every tool call's lifecycle is recorded.

A call moves through these states, each transition a compare-and-set on the current state:

```
received ──start()──> started ──complete()──> completed ──mark_posted()──> posted ──mark_acked()──> acked
 │   ▲                   │                        ▲
 │   │                   └──(recovery: crashed, not idempotent)──> in_doubt (a completed call whose result
 │   └─decide()─┐                                                    says "outcome unknown")
 │              │
 └─await_approval()──> awaiting_approval      (a call parked until someone approves or denies it)
 └──────────────── abandon() from any state before acked ──> abandoned (session or thread gone)
```

Approvals: `await_approval()` parks a received call (it cannot `start()` from there); `decide()` records the
decision (approved, denied, timed out, withdrawn; by whom, when, why) on the call and moves it back to `received`,
from where an approved call starts and any other is completed with its error result. A decision about a call that
another process holds is not written to the call: it goes to an inbox (`submit_decision()`), which the owning bridge
reads (`decisions()`) and applies itself.

The at-most-once line is `start()`: a backend must make the `started` state durable before it returns, because the
tool runs right after. `complete()` is durable before it returns too: the journal is the outbox, and a result is
posted only once it cannot be lost. Everything after `completed` is about delivering the stored result exactly once;
a result is never recomputed because its post failed.

The other transitions (`receive`, `requeue`, `mark_posted`, `mark_acked`, `abandon`) must be visible to every later
call and never reordered, but they need not be durable when they return: a crash may undo the most recent of them.
That is safe because each is re-derived after a restart: a lost `received` call is read again from the session's
history, a lost `posted` or `acked` leads to the history check before any re-post, a lost requeue or abandon is
redone by recovery. A durable backend may use this to write them later (the SQLite journal does; the next durable
transition makes every earlier one durable too).

What a backend must keep, and what it may forget:

- an **unfinished** call (any state but `acked` and `abandoned`), whole, until it finishes, however old: recovery and
  the outbox read it, and forgetting one would lose a result or run a call twice;
- a **finished** call's state, for a window the backend documents (a count, an age, or both): inside it, `get()`
  finds the call finished and `receive()` of the same call returns False, which is how a re-delivered call is
  recognised as done. Within that window a backend may drop a finished call's input, result and other details
  before its state (`get()` then returns the record with an empty input, no result and only ids, state and
  `updated_at` kept);
- past its window, nothing: `get()` returns None and `receive()` takes the call as new. The runtime therefore never
  relies on the journal alone to recognise an old call: a history read that re-delivers an answered call also
  holds its result (a result always follows its call), and the runtime drops the event ids and calls it saw
  recently; the journal is the backstop behind those (`_memory.py` says how its window was sized).

`MemoryJournal` remembers the last 100,000 finished calls (the last 1,000 whole); the SQLite journal keeps every
finished call whole for its `retention` age (a week by default). `prune()` forgets finished calls by age in both.

Backends: `MemoryJournal` (tests, embedded use), the SQLite journal (the daemon's default), and later PostgreSQL for
a fleet (owner ids and fences live behind this same interface). One conformance suite runs against every backend.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "MAY_LEAVE",
    "ApprovalOutcome",
    "ApprovalRecord",
    "CallRecord",
    "CallState",
    "InboxDecision",
    "Journal",
    "JournalStats",
    "StoredResult",
]


class CallState(enum.StrEnum):
    """Where a call is in its lifecycle."""

    RECEIVED = "received"
    AWAITING_APPROVAL = "awaiting_approval"
    STARTED = "started"
    COMPLETED = "completed"
    IN_DOUBT = "in_doubt"
    POSTED = "posted"
    ACKED = "acked"
    ABANDONED = "abandoned"

    @property
    def has_result(self) -> bool:
        """True when a result is stored and must be (or was) delivered."""
        return self in (CallState.COMPLETED, CallState.IN_DOUBT, CallState.POSTED, CallState.ACKED)

    @property
    def finished(self) -> bool:
        """True when nothing is left to do for the call."""
        return self in (CallState.ACKED, CallState.ABANDONED)


MAY_LEAVE: Mapping[str, frozenset[CallState]] = {
    "start": frozenset({CallState.RECEIVED}),
    "await_approval": frozenset({CallState.RECEIVED}),
    "decide": frozenset({CallState.RECEIVED, CallState.AWAITING_APPROVAL}),
    "complete": frozenset({CallState.RECEIVED, CallState.AWAITING_APPROVAL, CallState.STARTED}),
    "requeue": frozenset({CallState.STARTED}),
    "mark_posted": frozenset({CallState.COMPLETED, CallState.IN_DOUBT}),
    "mark_acked": frozenset({CallState.COMPLETED, CallState.IN_DOUBT, CallState.POSTED}),
    "abandon": frozenset(s for s in CallState if not s.finished),
}
"""The states each transition may leave: the compare in every backend's compare-and-set."""


@dataclass(frozen=True)
class StoredResult:
    """The exact result event body to post: content blocks and the error flag."""

    content: tuple[Mapping[str, Any], ...]
    is_error: bool
    in_doubt: bool = False


class ApprovalOutcome(enum.StrEnum):
    """Where a call's approval stands."""

    PENDING = "pending"  # parked: waiting for a decision
    APPROVED = "approved"
    DENIED = "denied"  # by a person or by the policy
    TIMED_OUT = "timed_out"  # nobody decided in time (the call was then run or denied, as configured)
    WITHDRAWN = "withdrawn"  # the session stopped waiting (an interrupt, the session or thread ended)


@dataclass(frozen=True)
class ApprovalRecord:
    """A call's approval: when it was asked for, until when, and the decision with who made it, when and why."""

    outcome: ApprovalOutcome
    requested_at: float | None = None
    deadline: float | None = None
    by: str | None = None
    reason: str | None = None
    decided_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ApprovalRecord:
        return cls(**{**data, "outcome": ApprovalOutcome(data["outcome"])})


@dataclass(frozen=True)
class InboxDecision:
    """A decision made outside the bridge that parked the call (`bridge approvals approve`), waiting to be applied."""

    seq: int
    tool_use_id: str
    approve: bool
    by: str
    reason: str | None = None
    session_id: str | None = None
    made_at: float = 0.0


@dataclass(frozen=True)
class CallRecord:
    """One `agent.custom_tool_use` as the journal knows it."""

    session_id: str
    tool_use_id: str
    tool_name: str
    input: Mapping[str, Any]
    state: CallState
    thread_id: str | None = None
    attempt: int = 0
    result: StoredResult | None = None
    acked_event_id: str | None = None
    posted_at: float | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    approval: ApprovalRecord | None = None


@dataclass(frozen=True)
class JournalStats:
    """Size and age of a journal, for `Bridge.stats()`."""

    calls: int
    by_state: Mapping[str, int] = field(default_factory=dict)
    oldest_unfinished_age: float | None = None
    size_bytes: int | None = None


@runtime_checkable
class Journal(Protocol):
    """The call lifecycle store. All methods are safe to call concurrently from one event loop.

    Transition methods return False (and change nothing) when the call is not in the state they expect; the
    caller treats that as "someone else already did it" and moves on. They never raise for that case. A transition
    whose caller is cancelled is either applied in full or not at all.
    """

    async def open(self) -> None:
        """Acquire resources (files, locks, pools). Called once by the owner before any other method."""

    async def close(self) -> None:
        """Flush and release everything. Safe to call twice."""

    async def receive(
        self,
        session_id: str,
        tool_use_id: str,
        tool_name: str,
        input: Mapping[str, Any],
        *,
        thread_id: str | None = None,
    ) -> bool:
        """Record a call as `received` unless it is already known. Returns True when it was new.

        "Known" covers every unfinished call and every finished call inside the backend's window.
        """

    async def start(self, session_id: str, tool_use_id: str) -> bool:
        """`received` -> `started`, durable before returning (the tool runs next); increments `attempt`."""

    async def complete(self, session_id: str, tool_use_id: str, result: StoredResult) -> bool:
        """`started` (or `received` / `awaiting_approval`, for answers given without running) -> `completed`, or
        `in_doubt` when `result.in_doubt` is set. Durable before returning: the result is posted next."""

    async def await_approval(self, session_id: str, tool_use_id: str, approval: ApprovalRecord) -> bool:
        """`received` -> `awaiting_approval` with `approval` (pending, its deadline), durable before returning."""

    async def decide(self, session_id: str, tool_use_id: str, approval: ApprovalRecord) -> bool:
        """`awaiting_approval` (or `received`, for a policy's denial) -> `received`, with the decision recorded;
        durable before returning: a person's decision is never lost once the bridge acts on it."""

    async def submit_decision(
        self, tool_use_id: str, *, approve: bool, by: str, reason: str | None = None, session_id: str | None = None
    ) -> int:
        """Add a decision to the inbox for the bridge that parked the call; returns its sequence number."""

    async def decisions(self, after: int = 0) -> list[InboxDecision]:
        """Inbox decisions with a sequence number above `after`, oldest first."""

    async def requeue(self, session_id: str, tool_use_id: str) -> bool:
        """`started` -> `received`: recovery of an idempotent or read-only call that may be run again."""

    async def mark_posted(self, session_id: str, tool_use_ids: Sequence[str]) -> None:
        """`completed`/`in_doubt` -> `posted` for each id (a batch posted in one request); sets `posted_at`."""

    async def mark_acked(self, session_id: str, tool_use_id: str, event_id: str) -> bool:
        """Any state with a result -> `acked`: the result was seen in the session's history or stream."""

    async def abandon(self, session_id: str, tool_use_ids: Sequence[str] | None = None) -> int:
        """Mark unfinished calls (all of the session's when `tool_use_ids` is None) `abandoned`. Returns the count."""

    async def get(self, session_id: str, tool_use_id: str) -> CallRecord | None:
        """The call's current record, or None if it was never received or is finished and past the backend's window.

        A finished call may come back without its input and result (see the module docstring).
        """

    async def unfinished(self, session_id: str | None = None) -> list[CallRecord]:
        """Calls not yet `acked` or `abandoned`, in the order they were received: what recovery must look at.

        Arrival order, not `created_at` order: a wall clock can step backwards between two calls.
        """

    async def prune(self, older_than: float) -> int:
        """Delete finished calls last updated `older_than` seconds ago or earlier (0: every finished call).

        Returns the count. Unfinished calls are never pruned, however old.
        """

    async def stats(self) -> JournalStats:
        """Counts by state, the oldest unfinished call's age and, for file backends, the size on disk."""
