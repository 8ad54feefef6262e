"""One session: its event log, its status machine and the custom tool calls it is blocked on.

The state machine follows `managed-agents-wire.md` §7.3. A user message moves an idle session to running and starts a
scripted turn. Each blocking point of the script emits its `agent.custom_tool_use` events and then
`session.status_idle{requires_action, event_ids}`. A batch of results that leaves some ids open re-emits the idle with
the remainder, and the batch that closes the last id emits `session.status_running` before the POST is answered, so
that a client which has seen its POST succeed never observes a stale idle. Every transition happens synchronously in
the request that causes it; only the script runs in a task.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import anyio

from ._config import Behavior
from ._util import APIError, Clock, Ids, invalid, rfc3339

if TYPE_CHECKING:
    from ._sse import StreamTap

__all__ = ["Call", "Entry", "ResultRecord", "Session"]

Json = dict[str, Any]
CallState = Literal["pending", "answered", "abandoned"]
TERMINAL_EVENTS = frozenset({"session.status_terminated", "session.deleted"})
TOOL_USE_EVENTS = frozenset({"agent.custom_tool_use", "agent.tool_use", "agent.mcp_tool_use"})


@dataclass
class Entry:
    """One logged event: `event` is its primary-stream form; `thread_id` names the thread it belongs to."""

    event: Json
    thread_id: str | None
    primary: bool
    at: datetime
    duplicate: bool = False
    skipped: bool = False  # in the history, but never written to a live stream (`Control.skip_next_event`)

    def view(self, thread_id: str | None) -> Json | None:
        """The event as seen on the primary view (`thread_id=None`) or on a thread's own stream, or None if hidden."""
        if thread_id is None:
            return self.event if self.primary else None
        if self.thread_id != thread_id:
            return None
        if self.event["type"] in TOOL_USE_EVENTS and "session_thread_id" in self.event:
            return {k: v for k, v in self.event.items() if k != "session_thread_id"}
        return self.event


@dataclass
class ResultRecord:
    """One `user.custom_tool_result` received for a call (duplicates included; a rejected one has no event id)."""

    event_id: str
    at: float
    duplicate: bool
    late: bool
    rejected: bool = False


@dataclass(eq=False)
class Call:
    """A custom tool call the agent made, and every result posted for it."""

    id: str
    name: str
    input: Json
    session_id: str
    thread_id: str | None
    emitted_at: float
    state: CallState = "pending"
    abandoned_reason: str | None = None
    results: list[ResultRecord] = field(default_factory=list)
    result_event: Json | None = None
    done: anyio.Event = field(default_factory=anyio.Event)

    def abandon(self, reason: str) -> None:
        """The call can no longer be answered usefully (interrupt, termination); wake whoever waits on it."""
        if self.state == "pending":
            self.state = "abandoned"
            self.abandoned_reason = reason
            self.done.set()


class Session:
    """A session's resource fields, log, calls, open streams and turn bookkeeping."""

    def __init__(
        self,
        *,
        session_id: str,
        resource: Json,
        ids: Ids,
        clock: Clock,
        behavior: Behavior,
        on_change: Callable[[Session, str, str | None], None],
        start_turn: Callable[[Session, Json], None],
    ) -> None:
        self.id = session_id
        self.resource = resource
        self.status: Literal["idle", "running", "rescheduling", "terminated"] = "idle"
        self.deleted = False
        self.log: list[Entry] = []
        self.calls: dict[str, Call] = {}
        self.blocked: list[Call] = []
        self.threads: dict[str, Json] = {}
        self.streams: set[StreamTap] = set()
        self.stream_connects = 0
        self.unknown_results: list[str] = []
        self.queue: deque[Json] = deque()
        self.turn_scope: anyio.CancelScope | None = None
        self.turn_active = False
        self.script_errors: list[Exception] = []
        self.duplicate_next: list[str | None] = []
        self.skip_next: list[str | None] = []
        self.batches: list[list[Json]] = []
        self.changed = anyio.Event()
        self._ids = ids
        self._clock = clock
        self._behavior = behavior
        self._on_change = on_change
        self._start_turn = start_turn

    # -- the log -------------------------------------------------------------------------------------------------

    def emit(self, event_type: str, *, thread_id: str | None = None, primary: bool = True, **fields: Any) -> Json:
        """Append a server event (id and `processed_at` assigned here) and wake every stream and waiter."""
        event: Json = {"id": self._ids.new("sevt"), "type": event_type}
        return self._append(event, fields, thread_id=thread_id, primary=primary)

    def _append(self, event: Json, fields: Json, *, thread_id: str | None, primary: bool) -> Json:
        at = self._clock.now()
        event["processed_at"] = rfc3339(at)
        event.update(fields)
        entry = Entry(event, thread_id, primary, at)
        for rule in self.duplicate_next:
            if rule in (None, event["type"]):
                self.duplicate_next.remove(rule)
                entry.duplicate = True
                break
        for rule in self.skip_next:
            if rule in (None, event["type"]):
                self.skip_next.remove(rule)
                entry.skipped = True
                break
        self.log.append(entry)
        self.resource["updated_at"] = event["processed_at"]
        self.poke()
        return event

    def poke(self) -> None:
        """Wake everything waiting on this session (streams, control waits) to re-read its state."""
        self.changed.set()
        self.changed = anyio.Event()
        self._on_change(self, "", None)

    def events(self, thread_id: str | None = None) -> list[Json]:
        """The listed history of the primary view or of one thread."""
        return [view for entry in self.log if (view := entry.view(thread_id)) is not None]

    # -- status transitions ----------------------------------------------------------------------------------------

    def set_running(self, thread_id: str | None = None) -> None:
        """idle -> running (and the thread's own `thread_status_running` for a sub-agent)."""
        if self.status != "running":
            self.status = "running"
            self.emit("session.status_running")
            self._on_change(self, "session.status_run_started", None)
        if thread_id is not None:
            self._thread_event("session.thread_status_running", thread_id)

    def reschedule(self) -> None:
        """running -> rescheduling -> running, as after a transient error the server retries."""
        self.status = "rescheduling"
        self.emit("session.status_rescheduled")
        self._on_change(self, "session.status_rescheduled", None)
        self.set_running()

    def set_idle(self, stop_reason: Json, thread_id: str | None = None) -> None:
        """Emit the idle that tells clients what the session waits on (`stop_reason`)."""
        if thread_id is not None:
            self._thread_event("session.thread_status_idle", thread_id, stop_reason=stop_reason, stop_details=None)
        self.status = "idle"
        self.emit("session.status_idle", stop_reason=stop_reason, stop_details=None)
        kind = "session.requires_action" if stop_reason["type"] == "requires_action" else "session.status_idled"
        self._on_change(self, kind, None)

    def _thread_event(self, event_type: str, thread_id: str, **fields: Any) -> None:
        agent_name = self.threads[thread_id]["agent_name"]
        self.emit(event_type, thread_id=thread_id, session_thread_id=thread_id, agent_name=agent_name, **fields)
        if event_type == "session.thread_status_idle":
            self._on_change(self, "session.thread_idled", thread_id)

    def create_thread(self, agent_name: str) -> str:
        """Start a sub-agent thread: `session.thread_created` on the primary stream, then it runs."""
        thread_id = self._ids.new("sthr")
        self.threads[thread_id] = {"agent_name": agent_name, "status": "running"}
        self.emit("session.thread_created", session_thread_id=thread_id, agent_name=agent_name, workflow_run_id=None)
        self._on_change(self, "session.thread_created", thread_id)
        self._thread_event("session.thread_status_running", thread_id)
        return thread_id

    def end_thread(self, thread_id: str) -> None:
        """The sub-agent finished: its open calls are abandoned and it reports terminated."""
        for call in self.calls.values():
            if call.thread_id == thread_id:
                call.abandon("thread terminated")
        self.threads[thread_id]["status"] = "terminated"
        self._thread_event("session.thread_status_terminated", thread_id)
        self._on_change(self, "session.thread_terminated", thread_id)

    def terminate(self) -> None:
        """End the session for good; open streams close after the `session.status_terminated` event."""
        if self.status == "terminated":
            return
        self._abandon_all("session terminated")
        self.status = "terminated"
        self.emit("session.status_terminated")
        self._on_change(self, "session.status_terminated", None)

    def delete(self) -> None:
        """Delete the session; open streams get `session.deleted` and close, later requests get 404."""
        self._abandon_all("session deleted")
        self.deleted = True
        self.emit("session.deleted")
        self._on_change(self, "session.deleted", None)

    def _abandon_all(self, reason: str) -> None:
        for call in self.calls.values():
            call.abandon(reason)
        self.blocked.clear()
        self.queue.clear()
        if self.turn_scope is not None:
            self.turn_scope.cancel()

    # -- tool calls ------------------------------------------------------------------------------------------------

    def new_call(self, name: str, tool_input: Json, thread_id: str | None) -> Call:
        """Emit one `agent.custom_tool_use` (cross-posted with `session_thread_id` for a sub-agent)."""
        extra: Json = {"session_thread_id": thread_id} if thread_id is not None else {}
        event = self.emit("agent.custom_tool_use", thread_id=thread_id, name=name, input=tool_input, **extra)
        call = Call(event["id"], name, tool_input, self.id, thread_id, time.monotonic())
        self.calls[call.id] = call
        return call

    def block(self, calls: list[Call], thread_id: str | None) -> None:
        """The agent waits on `calls`: go idle with `requires_action` naming every open call."""
        self.blocked.extend(c for c in calls if c.state == "pending")
        if not self.blocked:
            return
        mine = [c.id for c in self.blocked if c.thread_id == thread_id]
        if thread_id is not None:
            reason = {"type": "requires_action", "event_ids": mine}
            self._thread_event("session.thread_status_idle", thread_id, stop_reason=reason, stop_details=None)
        self.set_idle({"type": "requires_action", "event_ids": [c.id for c in self.blocked]})

    def _settle(self) -> None:
        """After calls were resolved: re-emit the idle with the remainder, or resume running when none is left."""
        if not self.blocked:
            return
        remainder = [c for c in self.blocked if c.state == "pending"]
        if len(remainder) == len(self.blocked):
            return
        threads = {c.thread_id for c in self.blocked}
        self.blocked = remainder
        if remainder:
            self.set_idle({"type": "requires_action", "event_ids": [c.id for c in remainder]})
            return
        self.set_running()
        for thread_id in sorted(t for t in threads if t is not None):
            if self.threads[thread_id]["status"] == "running":
                self._thread_event("session.thread_status_running", thread_id)

    # -- input from clients ----------------------------------------------------------------------------------------

    def receive(self, events: list[Json]) -> list[Json]:
        """Store a POSTed batch and apply it. The whole batch is checked first, so a 400 stores nothing."""
        if self.status == "terminated":
            raise APIError(
                self._behavior.terminated_post_status, "invalid_request_error", f"session {self.id} is terminated"
            )
        for event in events:
            self._check_result(event)
        stored = [self._apply(event) for event in events]
        self.batches.append(stored)
        self._settle()
        return stored

    def _check_result(self, event: Json) -> None:
        if event["type"] != "user.custom_tool_result":
            return
        call_id = event["custom_tool_use_id"]
        call = self.calls.get(call_id)
        if call is None:
            self.unknown_results.append(call_id)
            raise APIError(
                self._behavior.unknown_result_status,
                "invalid_request_error",
                f"custom_tool_use_id {call_id} does not match any agent.custom_tool_use event in session {self.id}",
            )
        if call.results and self._behavior.duplicate_results == "reject":
            call.results.append(ResultRecord("", time.monotonic(), duplicate=True, late=False, rejected=True))
            raise APIError(
                self._behavior.duplicate_result_status,
                "invalid_request_error",
                f"custom_tool_use_id {call_id} already has a result",
            )
        if call.state == "abandoned" and self._behavior.late_results == "reject":
            call.results.append(ResultRecord("", time.monotonic(), duplicate=False, late=True, rejected=True))
            raise invalid(f"custom_tool_use_id {call_id} is no longer awaited ({call.abandoned_reason})")

    def _apply(self, sent: Json) -> Json:
        event = {"id": self._ids.new("sevt"), "type": sent["type"]}
        fields = {k: v for k, v in sent.items() if k != "type"}
        kind = sent["type"]
        if kind == "user.custom_tool_result":
            call = self.calls[sent["custom_tool_use_id"]]
            if call.thread_id is not None:
                fields["session_thread_id"] = call.thread_id
            stored = self._append(event, fields, thread_id=call.thread_id, primary=True)
            record = ResultRecord(stored["id"], time.monotonic(), bool(call.results), call.state == "abandoned")
            call.results.append(record)
            if call.state == "pending":
                call.state = "answered"
                call.result_event = stored
                call.done.set()
            return stored
        stored = self._append(event, fields, thread_id=None, primary=True)
        if kind == "user.message":
            self.queue.append(stored)
            if not self.turn_active:
                self.next_turn()
        elif kind == "user.interrupt":
            self.interrupt(sent.get("session_thread_id"))
        return stored

    def next_turn(self) -> None:
        """Start the turn for the oldest queued user message, if any (called again when a turn ends)."""
        if self.queue and self.status != "terminated" and not self.deleted:
            self.turn_active = True
            # Made here, not in the turn's task: an interrupt that arrives before the task starts must still stop it.
            self.turn_scope = anyio.CancelScope()
            message = self.queue.popleft()
            self.set_running()
            self._start_turn(self, message)

    def interrupt(self, thread_id: str | None) -> None:
        """`user.interrupt`: stop the whole turn, or only one sub-agent thread, and go idle.

        With `Behavior(interrupted_calls="keep")`, an interrupt of a scope blocked on custom tool calls leaves them
        pending instead: the idle that follows still lists them.
        """
        if thread_id is not None and thread_id not in self.threads:
            return
        if self._behavior.interrupted_calls == "keep" and self._keep_blocked(thread_id):
            return
        if thread_id is not None:
            for call in self.calls.values():
                if call.thread_id == thread_id:
                    call.abandon("interrupted")
            self.blocked = [c for c in self.blocked if c.state == "pending"]
            reason = {"type": "end_turn"}
            self._thread_event("session.thread_status_idle", thread_id, stop_reason=reason, stop_details=None)
            if not self.blocked and self.turn_active and self.status == "idle":
                self.set_running()
            return
        if not self.turn_active:
            return
        for call in self.calls.values():
            call.abandon("interrupted")
        self.blocked.clear()
        if self.turn_scope is not None:
            self.turn_scope.cancel()
        self.set_idle({"type": self._behavior.interrupt_stop_reason})

    def _keep_blocked(self, thread_id: str | None) -> bool:
        """Re-emit the idle of a scope blocked on tool calls, keeping them pending; False if it is not blocked."""
        mine = [c.id for c in self.blocked if c.state == "pending" and thread_id in (None, c.thread_id)]
        if not mine:
            return False
        if thread_id is not None:
            reason = {"type": "requires_action", "event_ids": mine}
            self._thread_event("session.thread_status_idle", thread_id, stop_reason=reason, stop_details=None)
        self.set_idle({"type": "requires_action", "event_ids": [c.id for c in self.blocked if c.state == "pending"]})
        return True
