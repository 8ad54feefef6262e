"""An in-memory `Journal`: the runtime's default when durability is not asked for.

It must not grow with the life of the process (an app that embeds `Bridge` may serve millions of calls), so it keeps
what the protocol says a backend must keep and forgets the rest, oldest first:

```
unfinished calls                  all of them, whole, however many and however old
the last `keep_results` finished  whole (input and result), for `get()` and debugging
the last `keep_finished` finished as a key, a state and a time: enough to recognise a re-delivered call as done
older finished calls              forgotten: `get()` returns None and `receive()` takes the call as new
```

Why the defaults are enough: a re-delivered `agent.custom_tool_use` reaches the journal only after the runtime's own
filters missed it: the intake drops event ids it has seen (its last 50,000), the session's dispatcher drops calls it
closed (its last 50,000), and a history read that re-delivers an answered call also holds its result, so the call is
not started. The journal is the backstop behind the dispatcher, so its window of finished calls (100,000) is twice
the dispatcher's: a call the dispatcher of a busy session has just forgotten is still known here. Past both windows
a re-delivered call that ended without a result (dropped after an interrupt, its thread ended) is not recognised by
memory alone; the SQLite journal keeps finished calls by age (a week by default) for deployments that need more. The
price of the default is bounded: measured, about 0.35 kB per remembered call (35 MB at 100,000, whatever the inputs
and results weigh) plus up to `keep_results` whole records.
"""

from __future__ import annotations

import sys
import time
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, NamedTuple

from ._protocol import MAY_LEAVE, ApprovalRecord, CallRecord, CallState, InboxDecision, JournalStats, StoredResult

__all__ = ["MemoryJournal"]

Key = tuple[str, str]

_NO_INPUT: Mapping[str, Any] = MappingProxyType({})


class _Done(NamedTuple):
    """What is left of a finished call once its whole record is dropped."""

    state: CallState
    updated_at: float


class MemoryJournal:
    """Keeps call records in memory, bounded. Nothing survives the process; use the SQLite journal for that.

    Every operation is synchronous under the hood, so the compare-and-set transitions are atomic on one event loop.

    Args:
        keep_finished: How many finished (acked or abandoned) calls are remembered, newest first, so that a
            re-delivered call is recognised as done; older ones are forgotten. At least `keep_results`.
        keep_results: How many of those keep their whole record (input and result); the rest keep only their state.
            `prune()` forgets finished calls by age on top of both bounds.

    Raises:
        ValueError: A bound is negative, or `keep_results` exceeds `keep_finished`.
    """

    def __init__(self, *, keep_finished: int = 100_000, keep_results: int = 1_000) -> None:
        if keep_results < 0 or keep_finished < keep_results:
            raise ValueError(
                f"MemoryJournal needs 0 <= keep_results <= keep_finished, got keep_results={keep_results}, "
                f"keep_finished={keep_finished}"
            )
        self.keep_finished = keep_finished
        self.keep_results = keep_results
        self._open: dict[Key, CallRecord] = {}  # unfinished calls, in arrival order: never forgotten
        self._recent: OrderedDict[Key, CallRecord] = OrderedDict()  # finished, whole, oldest first
        self._older: OrderedDict[Key, _Done] = OrderedDict()  # finished, state only, oldest first
        self.forgotten = 0  # finished calls dropped by the bounds (not by `prune()`) so far
        self._inbox: list[InboxDecision] = []  # decisions other parties submitted (`bridge approvals`)

    def __repr__(self) -> str:
        return (
            f"MemoryJournal(open={len(self._open)}, finished={len(self._recent) + len(self._older)}, "
            f"keep_finished={self.keep_finished}, keep_results={self.keep_results})"
        )

    def __len__(self) -> int:
        """How many calls the journal holds (unfinished and remembered finished ones)."""
        return len(self._open) + len(self._recent) + len(self._older)

    async def __aenter__(self) -> MemoryJournal:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def receive(
        self,
        session_id: str,
        tool_use_id: str,
        tool_name: str,
        input: Mapping[str, Any],
        *,
        thread_id: str | None = None,
    ) -> bool:
        key = (session_id, tool_use_id)
        if key in self._open or key in self._recent or key in self._older:
            return False
        now = time.time()
        self._open[key] = CallRecord(
            session_id=session_id,
            tool_use_id=tool_use_id,
            tool_name=sys.intern(tool_name),
            input=dict(input),
            state=CallState.RECEIVED,
            thread_id=thread_id,
            created_at=now,
            updated_at=now,
        )
        return True

    def _move(self, transition: str, key: Key, **changes: Any) -> bool:
        """The compare-and-set. Only unfinished calls can move: no transition leaves a finished state."""
        record = self._open.get(key)
        if record is None or record.state not in MAY_LEAVE[transition]:
            return False
        moved = _evolve(record, updated_at=time.time(), **changes)
        if moved.state.finished:
            del self._open[key]
            self._finish(key, moved)
        else:
            self._open[key] = moved  # an existing key keeps its place: arrival order holds
        return True

    def _finish(self, key: Key, record: CallRecord) -> None:
        self._recent[key] = record
        while len(self._recent) > self.keep_results:
            old_key, old = self._recent.popitem(last=False)
            self._older[old_key] = _Done(old.state, old.updated_at)
        while len(self._older) > self.keep_finished - self.keep_results:
            self._older.popitem(last=False)
            self.forgotten += 1

    async def start(self, session_id: str, tool_use_id: str) -> bool:
        record = self._open.get((session_id, tool_use_id))
        attempt = record.attempt + 1 if record else 1
        return self._move("start", (session_id, tool_use_id), state=CallState.STARTED, attempt=attempt)

    async def complete(self, session_id: str, tool_use_id: str, result: StoredResult) -> bool:
        state = CallState.IN_DOUBT if result.in_doubt else CallState.COMPLETED
        return self._move("complete", (session_id, tool_use_id), state=state, result=result)

    async def await_approval(self, session_id: str, tool_use_id: str, approval: ApprovalRecord) -> bool:
        state = CallState.AWAITING_APPROVAL
        return self._move("await_approval", (session_id, tool_use_id), state=state, approval=approval)

    async def decide(self, session_id: str, tool_use_id: str, approval: ApprovalRecord) -> bool:
        return self._move("decide", (session_id, tool_use_id), state=CallState.RECEIVED, approval=approval)

    async def submit_decision(
        self, tool_use_id: str, *, approve: bool, by: str, reason: str | None = None, session_id: str | None = None
    ) -> int:
        seq = len(self._inbox) + 1
        self._inbox.append(InboxDecision(seq, tool_use_id, approve, by, reason, session_id, time.time()))
        return seq

    async def decisions(self, after: int = 0) -> list[InboxDecision]:
        return [d for d in self._inbox if d.seq > after]

    async def requeue(self, session_id: str, tool_use_id: str) -> bool:
        return self._move("requeue", (session_id, tool_use_id), state=CallState.RECEIVED)

    async def mark_posted(self, session_id: str, tool_use_ids: Sequence[str]) -> None:
        now = time.time()
        for tool_use_id in tool_use_ids:
            self._move("mark_posted", (session_id, tool_use_id), state=CallState.POSTED, posted_at=now)

    async def mark_acked(self, session_id: str, tool_use_id: str, event_id: str) -> bool:
        key = (session_id, tool_use_id)
        return self._move("mark_acked", key, state=CallState.ACKED, acked_event_id=event_id)

    async def abandon(self, session_id: str, tool_use_ids: Sequence[str] | None = None) -> int:
        if tool_use_ids is None:
            tool_use_ids = [tid for (sid, tid) in self._open if sid == session_id]
        return sum(self._move("abandon", (session_id, tid), state=CallState.ABANDONED) for tid in tool_use_ids)

    async def get(self, session_id: str, tool_use_id: str) -> CallRecord | None:
        key = (session_id, tool_use_id)
        record = self._open.get(key) or self._recent.get(key)
        if record is not None:
            return record
        done = self._older.get(key)
        if done is None:
            return None
        return CallRecord(session_id, tool_use_id, "", _NO_INPUT, done.state, updated_at=done.updated_at)

    async def unfinished(self, session_id: str | None = None) -> list[CallRecord]:
        return [r for r in self._open.values() if session_id is None or r.session_id == session_id]

    async def prune(self, older_than: float) -> int:
        cutoff = time.time() - older_than
        pruned = 0
        for finished in (self._older, self._recent):  # oldest first; a clock step back may leave a few for later
            doomed = [k for k, r in finished.items() if r.updated_at <= cutoff]
            for key in doomed:
                del finished[key]
            pruned += len(doomed)
        return pruned

    async def stats(self) -> JournalStats:
        by_state = Counter(r.state.value for r in self._open.values())
        by_state.update(r.state.value for r in self._recent.values())
        by_state.update(d.state.value for d in self._older.values())
        oldest = time.time() - min(r.created_at for r in self._open.values()) if self._open else None
        return JournalStats(calls=len(self), by_state=dict(by_state), oldest_unfinished_age=oldest)


def _evolve(record: CallRecord, **changes: Any) -> CallRecord:
    """`dataclasses.replace` for the journal's own records, without re-running `__init__` (five times faster; every
    call makes four transitions). Safe because `CallRecord` is a plain frozen dataclass: no `__post_init__`, no
    slots, so a copy of its `__dict__` is a complete, equal record."""
    moved = object.__new__(CallRecord)
    fields = moved.__dict__
    fields.update(record.__dict__)
    fields.update(changes)
    return moved
