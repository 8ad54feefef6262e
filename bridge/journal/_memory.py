"""An in-memory `Journal`: the runtime's default when durability is not asked for."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from ._protocol import MAY_LEAVE, ApprovalRecord, CallRecord, CallState, InboxDecision, JournalStats, StoredResult

__all__ = ["MemoryJournal"]


class MemoryJournal:
    """Keeps call records in a dict. Nothing survives the process; use the SQLite journal for that.

    Every operation is synchronous under the hood, so the compare-and-set transitions are atomic on one event loop.
    """

    def __init__(self) -> None:
        self._calls: dict[tuple[str, str], CallRecord] = {}
        self._inbox: list[InboxDecision] = []

    def __repr__(self) -> str:
        return f"MemoryJournal(calls={len(self._calls)})"

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
        if key in self._calls:
            return False
        now = time.time()
        self._calls[key] = CallRecord(
            session_id=session_id,
            tool_use_id=tool_use_id,
            tool_name=tool_name,
            input=dict(input),
            state=CallState.RECEIVED,
            thread_id=thread_id,
            created_at=now,
            updated_at=now,
        )
        return True

    def _move(self, transition: str, session_id: str, tool_use_id: str, **changes: Any) -> bool:
        key = (session_id, tool_use_id)
        record = self._calls.get(key)
        if record is None or record.state not in MAY_LEAVE[transition]:
            return False
        self._calls[key] = replace(record, updated_at=time.time(), **changes)
        return True

    async def start(self, session_id: str, tool_use_id: str) -> bool:
        record = self._calls.get((session_id, tool_use_id))
        attempt = record.attempt + 1 if record else 1
        return self._move("start", session_id, tool_use_id, state=CallState.STARTED, attempt=attempt)

    async def complete(self, session_id: str, tool_use_id: str, result: StoredResult) -> bool:
        state = CallState.IN_DOUBT if result.in_doubt else CallState.COMPLETED
        return self._move("complete", session_id, tool_use_id, state=state, result=result)

    async def await_approval(self, session_id: str, tool_use_id: str, approval: ApprovalRecord) -> bool:
        state = CallState.AWAITING_APPROVAL
        return self._move("await_approval", session_id, tool_use_id, state=state, approval=approval)

    async def decide(self, session_id: str, tool_use_id: str, approval: ApprovalRecord) -> bool:
        return self._move("decide", session_id, tool_use_id, state=CallState.RECEIVED, approval=approval)

    async def submit_decision(
        self, tool_use_id: str, *, approve: bool, by: str, reason: str | None = None, session_id: str | None = None
    ) -> int:
        seq = len(self._inbox) + 1
        self._inbox.append(InboxDecision(seq, tool_use_id, approve, by, reason, session_id, time.time()))
        return seq

    async def decisions(self, after: int = 0) -> list[InboxDecision]:
        return [d for d in self._inbox if d.seq > after]

    async def requeue(self, session_id: str, tool_use_id: str) -> bool:
        return self._move("requeue", session_id, tool_use_id, state=CallState.RECEIVED)

    async def mark_posted(self, session_id: str, tool_use_ids: Sequence[str]) -> None:
        now = time.time()
        for tool_use_id in tool_use_ids:
            self._move("mark_posted", session_id, tool_use_id, state=CallState.POSTED, posted_at=now)

    async def mark_acked(self, session_id: str, tool_use_id: str, event_id: str) -> bool:
        return self._move("mark_acked", session_id, tool_use_id, state=CallState.ACKED, acked_event_id=event_id)

    async def abandon(self, session_id: str, tool_use_ids: Sequence[str] | None = None) -> int:
        if tool_use_ids is None:
            tool_use_ids = [tid for (sid, tid) in self._calls if sid == session_id]
        return sum(self._move("abandon", session_id, tid, state=CallState.ABANDONED) for tid in tool_use_ids)

    async def get(self, session_id: str, tool_use_id: str) -> CallRecord | None:
        return self._calls.get((session_id, tool_use_id))

    async def unfinished(self, session_id: str | None = None) -> list[CallRecord]:
        return [  # dicts keep insertion order, which is arrival order
            r
            for r in self._calls.values()
            if not r.state.finished and (session_id is None or r.session_id == session_id)
        ]

    async def prune(self, older_than: float) -> int:
        cutoff = time.time() - older_than
        doomed = [k for k, r in self._calls.items() if r.state.finished and r.updated_at <= cutoff]
        for key in doomed:
            del self._calls[key]
        return len(doomed)

    async def stats(self) -> JournalStats:
        by_state = Counter(r.state.value for r in self._calls.values())
        open_ages = [r.created_at for r in self._calls.values() if not r.state.finished]
        oldest = time.time() - min(open_ages) if open_ages else None
        return JournalStats(calls=len(self._calls), by_state=dict(by_state), oldest_unfinished_age=oldest)
