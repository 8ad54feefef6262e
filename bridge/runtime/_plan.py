"""Planning a batch of history: what the end of the batch says about each tool call in it.

When a reconnect (or the first read after a restart) brings many events at once, applying them one by one would
start a tool (a side effect!) only to learn two events later that nobody waits for it any more: its result is in
the same batch, its thread or session ended, or an interrupt was followed by an idle that no longer lists it. So a
batch is planned first, and only the calls still open at its end are started.

The rules are the API's own (`reliability.md` §3): a call is open from its `agent.custom_tool_use` until its result
arrives; a `session.status_idle` whose stop reason is `requires_action` lists every call the session is blocked on;
an interrupt's calls are decided by the next idle of their scope (listed: still wanted; not listed: gone).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Plan", "blocked_on"]

Event = Any


@dataclass
class Plan:
    """What the end of a batch says about each tool use in it; a call in none of the sets is still open.

    Attributes:
        answered: Calls whose result is in the batch, with the result event's id (to acknowledge in the journal).
        gone: Calls nobody waits for any more (their thread or session ended, or an interrupt's idle dropped them).
        interrupted: Calls interrupted with no idle after it yet: not to be started; their fate waits for that idle.
    """

    answered: dict[str, str] = field(default_factory=dict)  # tool_use_id -> echo event id
    gone: set[str] = field(default_factory=set)
    interrupted: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, batch: Iterable[Event]) -> Plan:
        """Walk `batch` (typed SDK events, oldest first) and classify every call it opens."""
        plan = cls()
        open_calls: dict[str, str | None] = {}
        for event in batch:
            kind = event.type
            if kind == "agent.custom_tool_use":
                open_calls[event.id] = event.session_thread_id
            elif kind == "user.custom_tool_result":
                plan.answered[event.custom_tool_use_id] = event.id
                open_calls.pop(event.custom_tool_use_id, None)
            elif kind == "user.interrupt":
                scope = event.session_thread_id
                plan.interrupted.update(i for i, t in open_calls.items() if scope is None or t == scope)
            elif kind in ("session.status_idle", "session.thread_status_idle") and plan.interrupted:
                scope = event.session_thread_id if kind == "session.thread_status_idle" else None
                waits = set(blocked_on(event))
                for call_id, thread in list(open_calls.items()):
                    if call_id in waits:
                        plan.interrupted.discard(call_id)
                    elif call_id in plan.interrupted and (scope is None or thread == scope):
                        plan.gone.add(call_id)
                        del open_calls[call_id]
            elif kind == "session.thread_status_terminated":
                for call_id in [i for i, t in open_calls.items() if t == event.session_thread_id]:
                    plan.gone.add(call_id)
                    del open_calls[call_id]
            elif kind in ("session.status_terminated", "session.deleted"):
                plan.gone.update(open_calls)
                open_calls.clear()
        plan.interrupted &= open_calls.keys()
        return plan


def blocked_on(idle: Event) -> list[str]:
    """The event ids an idle event says the session (or thread) is blocked on; empty unless `requires_action`."""
    reason = getattr(idle, "stop_reason", None)
    if getattr(reason, "type", None) != "requires_action":
        return []
    return list(getattr(reason, "event_ids", None) or [])
