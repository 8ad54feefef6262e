"""The call table: one session's tool calls as a pure state machine, `apply(batch) -> effects`.

The table does no I/O. It is fed the session's events (typed SDK models) and the runtime's own news about calls
(`Completed`, `Posted`, `Rejected`, `PostFenced`, `Shutdown`, `LeaseLost`), and answers with what must happen
(`Start`, `Cancel`, `Post`, `Withdraw`, `Drop`, `Ack`, `End`); the executor (`_executor.py`) carries the effects out
against the journal, the scheduler and the poster. The poster asks `wanted()` just before each send, so nothing
calls back into the table.

Each call is in one `Phase`:

```
 agent.custom_tool_use ──> RUNNING ──Completed──> POSTING ──Posted──> POSTED ──echo──> (closed)
                             │  ▲                    │
                   interrupt │  │ next idle          │ interrupt
                             ▼  │ lists it           ▼
                            HELD ───────────────────────  next idle of its scope without it: Drop
 any phase: its echo (someone answered it) closes it; its thread or the session ending drops it
 any phase: the lease lost (`LeaseLost`, or a post refused by the fence) closes it at once, journaling nothing
```

The rules are the API's own (`reliability.md` §3): a call is open from its `agent.custom_tool_use` until its
result's echo; a `requires_action` idle lists every call the session (or thread) is blocked on; `user.interrupt`
cancels the calls of its scope (the session, or one thread) and the next idle of that scope decides whether the
session still wants them. Posting a result nobody waits for would leave a late result in a turn that moved on.

A whole batch is applied before its effects are returned, and a call's `Start` is held back to the end of the
batch: a call answered, ended, or interrupted-and-not-listed later in the same batch (a reconnect or the first
history read brings many events at once) is never started.

Lease lost (a fleet): this process may no longer act for the session, so the table cancels what runs, withdraws
what waits to be posted and closes every call without a `Drop` or `End`: nothing is abandoned in the journal, because
the calls are not over, only no longer ours; the session's new owner answers them from the journal (a started
non-idempotent call as "outcome unknown").

Seams for later issues: `owns(name)` decides which calls this bridge serves (a fleet's lease check or an approval
gate can refuse here, or hold a `Start`/`Post` effect in the executor before carrying it out).
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

from ._events import Deleted, Event, Idle, Interrupt, Terminated, ThreadIdle, ThreadTerminated, ToolResult, ToolUse
from ._events import blocked_on as _blocked_on

__all__ = [
    "Ack",
    "CallTable",
    "Cancel",
    "Completed",
    "Drop",
    "Effect",
    "End",
    "Input",
    "LeaseLost",
    "Phase",
    "Post",
    "PostFenced",
    "Posted",
    "Rejected",
    "Shutdown",
    "Start",
    "Withdraw",
]


class Phase(enum.Enum):
    """Where one open call is, as far as the session is concerned."""

    RUNNING = "running"  # wanted, no result yet: being journaled, queued or running
    HELD = "held"  # interrupted: the next idle of its scope decides; its result may be known already
    POSTING = "posting"  # its result is with the poster
    POSTED = "posted"  # the API accepted its result; its echo closes it


# -- what the runtime tells the table (besides the session's events) ------------------------------------------------


@dataclass(frozen=True)
class Completed:
    """The call's result is stored in the journal (the tool ran, or it was answered without running)."""

    tool_use_id: str


@dataclass(frozen=True)
class Posted:
    """The API accepted these results (or a history check found them there)."""

    tool_use_ids: tuple[str, ...]


@dataclass(frozen=True)
class Rejected:
    """The API refused the result for good; it will never be posted."""

    tool_use_id: str
    reason: str


@dataclass(frozen=True)
class PostFenced:
    """The fence refused to post these results: this process no longer (surely) holds the session's lease."""

    tool_use_ids: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class LeaseLost:
    """This process lost the session's lease: stop everything for it now and post nothing more."""

    reason: str


@dataclass(frozen=True)
class Shutdown:
    """The bridge is stopping: cancel what runs (its answers still go out), start nothing new."""

    reason: str


Input: TypeAlias = Event | Completed | Posted | Rejected | PostFenced | Shutdown | LeaseLost

# -- what the table asks for --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    """Journal the call and run it; with `stop` set, answer it at once as cancelled before it started."""

    tool_use_id: str
    name: str
    input: Mapping[str, Any]
    thread_id: str | None
    since: datetime | None
    stop: str | None = None


@dataclass(frozen=True)
class Cancel:
    """Cancel the running (or queued) call; its answer still comes back as `Completed`."""

    tool_use_id: str
    reason: str


@dataclass(frozen=True)
class Post:
    """Hand the stored result to the poster."""

    tool_use_id: str


@dataclass(frozen=True)
class Withdraw:
    """Take the result back from the poster: the session has it already."""

    tool_use_id: str


@dataclass(frozen=True)
class Drop:
    """Nobody waits for the call any more: cancel it if it runs, take back its result, abandon it in the journal."""

    tool_use_id: str
    reason: str


@dataclass(frozen=True)
class Ack:
    """The session holds a result for this call (the echo `echo_id`): mark it acked in the journal."""

    tool_use_id: str
    echo_id: str


@dataclass(frozen=True)
class End:
    """The session is gone: abandon its unfinished calls and stop reading it."""

    reason: str


Effect: TypeAlias = Start | Cancel | Post | Withdraw | Drop | Ack | End


@dataclass(eq=False)
class _Call:
    tool_use_id: str
    thread_id: str | None
    phase: Phase = Phase.RUNNING
    has_result: bool = False
    started: bool = False  # its `Start` went out: the executor knows it


class CallTable:
    """One session's open calls and the rules that move them.

    Args:
        owns: Whether this bridge serves a tool of that name (calls it does not serve are left to others).
        remember: How many closed call ids to remember, so a re-delivered `agent.custom_tool_use` is ignored.
    """

    def __init__(self, *, owns: Callable[[str], bool] = lambda name: True, remember: int = 50_000) -> None:
        self.ended: str | None = None
        self.fenced: str | None = None  # why the lease was lost (then `ended` says so too)
        self._owns = owns
        self._remember = remember
        self._calls: dict[str, _Call] = {}
        self._closed: OrderedDict[str, None] = OrderedDict()
        self._dead_threads: set[str] = set()
        self._stopping: str | None = None
        self._new: dict[str, ToolUse] = {}  # calls opened by the batch being applied: started at its end
        self._out: list[Effect] = []
        self._running = 0  # open calls in phase RUNNING: wanted, no result yet
        self._idle_seen = False  # an idle came after the newest call opened: the agent asked for all it will

    def __repr__(self) -> str:
        return f"CallTable(open={len(self._calls)}, ended={self.ended!r})"

    def __len__(self) -> int:
        return len(self._calls)

    def __contains__(self, tool_use_id: object) -> bool:
        return tool_use_id in self._calls

    def phase(self, tool_use_id: str) -> Phase | None:
        """The call's phase, or None once it is closed (or was never owned)."""
        call = self._calls.get(tool_use_id)
        return None if call is None else call.phase

    def wanted(self, tool_use_id: str) -> bool:
        """The poster's check before each send: is this result still to be posted?"""
        call = self._calls.get(tool_use_id)
        return call is not None and call.phase is Phase.POSTING

    def settled(self) -> bool:
        """The poster's hint: whether every result the session is about to wait for is known.

        True once an idle (of the session or a thread) came after the newest call opened, so the agent has asked for
        all it will for now, and no call is still running towards a result. A result held back for the rest of its
        batch can then leave with them in one request: the agent resumes only once every call of its idle is
        answered, so posting a part earlier buys nothing (`Timeouts.post_linger` bounds the wait).
        """
        return self._idle_seen and self._running == 0

    def apply(self, batch: Iterable[Input]) -> list[Effect]:
        """Apply a batch (oldest first) and return the effects to carry out, in order."""
        out: list[Effect] = []
        self._out = out
        for item in batch:
            if self.ended is None:
                self._apply(item)
        for use_id, event in self._new.items():
            call = self._calls.get(use_id)
            if call is None:
                continue  # settled later in the same batch
            call.started = True
            stop = "interrupted" if call.phase is Phase.HELD else self._stopping
            out.append(Start(use_id, event.name, event.input, call.thread_id, event.processed_at, stop))
        self._new.clear()
        return out

    def _apply(self, item: Input) -> None:
        match item:
            case ToolUse():
                self._on_use(item)
            case ToolResult(custom_tool_use_id=use_id, id=echo_id):
                self._on_echo(use_id, echo_id)
            case Interrupt(session_thread_id=scope):
                self._on_interrupt(scope)
            case Idle():
                self._idle_seen = True
                self._on_idle(item, None)
            case ThreadIdle(session_thread_id=scope):
                self._idle_seen = True
                self._on_idle(item, scope)
            case ThreadTerminated(session_thread_id=thread):
                self._dead_threads.add(thread)
                for call in [c for c in self._calls.values() if c.thread_id == thread]:
                    self._drop(call, "thread terminated")
            case Terminated():
                self._end("session terminated")
            case Deleted():
                self._end("session deleted")
            case Completed(tool_use_id=use_id):
                self._on_completed(use_id)
            case Posted(tool_use_ids=ids):
                for use_id in ids:
                    posted = self._calls.get(use_id)
                    if posted is not None and posted.phase in (Phase.POSTING, Phase.HELD):
                        self._move(posted, Phase.POSTED)
            case Rejected(tool_use_id=use_id, reason=reason):
                if (rejected := self._calls.get(use_id)) is not None:
                    self._drop(rejected, f"rejected by the API: {reason}")
            case PostFenced(reason=reason) | LeaseLost(reason=reason):
                self._lease_lost(reason)
            case Shutdown(reason=reason):
                self._stopping = reason
                for call in self._calls.values():
                    if call.started and not call.has_result:
                        self._out.append(Cancel(call.tool_use_id, reason))
            case _:
                pass

    def _move(self, call: _Call, phase: Phase) -> None:
        self._running += (phase is Phase.RUNNING) - (call.phase is Phase.RUNNING)
        call.phase = phase

    def _on_use(self, event: ToolUse) -> None:
        use_id = event.id
        if use_id in self._calls or use_id in self._closed or not self._owns(event.name):
            return
        if event.session_thread_id is not None and event.session_thread_id in self._dead_threads:
            return
        self._calls[use_id] = _Call(use_id, event.session_thread_id)
        self._running += 1
        self._idle_seen = False
        self._new[use_id] = event

    def _on_echo(self, use_id: str, echo_id: str) -> None:
        self._out.append(Ack(use_id, echo_id))
        call = self._calls.get(use_id)
        if call is None:
            self._remember_closed(use_id)  # a later re-delivery of its tool use is not started
            return
        if call.started:
            if call.phase is Phase.POSTING:
                self._out.append(Withdraw(use_id))
            elif not call.has_result:
                self._out.append(Cancel(use_id, "answered by another client"))
        self._close(call)

    def _on_interrupt(self, scope: str | None) -> None:
        for call in self._calls.values():
            if scope is not None and call.thread_id != scope:
                continue
            if call.phase is Phase.RUNNING:
                self._move(call, Phase.HELD)
                if call.started:
                    self._out.append(Cancel(call.tool_use_id, "interrupted"))
            elif call.phase is Phase.POSTING:
                self._move(call, Phase.HELD)
                self._out.append(Withdraw(call.tool_use_id))

    def _on_idle(self, idle: Idle | ThreadIdle, scope: str | None) -> None:
        held = [c for c in self._calls.values() if c.phase is Phase.HELD]
        if not held:
            return
        waits = set(_blocked_on(idle))
        for call in held:
            if call.tool_use_id in waits:
                self._move(call, Phase.POSTING if call.has_result else Phase.RUNNING)
                if call.has_result:
                    self._out.append(Post(call.tool_use_id))
            elif scope is None or call.thread_id == scope:
                self._drop(call, "no longer awaited by the session")

    def _on_completed(self, use_id: str) -> None:
        call = self._calls.get(use_id)
        if call is None or call.has_result:
            return
        call.has_result = True
        if call.phase is Phase.RUNNING:
            self._move(call, Phase.POSTING)
            self._out.append(Post(use_id))

    def _end(self, reason: str) -> None:
        for call in list(self._calls.values()):
            self._drop(call, reason)
        self.ended = reason
        self._out.append(End(reason))

    def _lease_lost(self, reason: str) -> None:
        for call in list(self._calls.values()):
            if call.started and call.phase is Phase.POSTING:
                self._out.append(Withdraw(call.tool_use_id))
            elif call.started and not call.has_result:
                self._out.append(Cancel(call.tool_use_id, reason))
            self._close(call)
        self.fenced = self.ended = f"lease lost ({reason})"

    def _drop(self, call: _Call, reason: str) -> None:
        if call.started and call.phase is not Phase.POSTED:
            self._out.append(Drop(call.tool_use_id, reason))
        self._close(call)

    def _close(self, call: _Call) -> None:
        self._running -= call.phase is Phase.RUNNING
        del self._calls[call.tool_use_id]
        self._new.pop(call.tool_use_id, None)
        self._remember_closed(call.tool_use_id)

    def _remember_closed(self, use_id: str) -> None:
        self._closed[use_id] = None
        if len(self._closed) > self._remember:
            self._closed.popitem(last=False)  # older ones are deduplicated by the journal (receive -> acked)
