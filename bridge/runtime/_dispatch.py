"""One session's calls: from `agent.custom_tool_use` to a posted (or deliberately dropped) result.

The dispatcher receives the intake's batches and keeps, for each call of the session, where it is: journaled,
queued or running in the scheduler, answered and handed to the poster, parked, or dropped.

Whether the session still waits for a call is decided the way the API defines it (`reliability.md` §3): a call is
open from its `agent.custom_tool_use` until its result's echo; a `session.status_idle` lists, when its stop reason is
`requires_action`, every call the session is blocked on. Interrupts need care: `user.interrupt` cancels the calls in
its scope (the whole session or one thread), but whether the session still wants an answer is only known from the
next idle. So the result of an interrupted call is *parked* and posted only if that idle lists the call, dropped
otherwise. Posting it blindly would leave a late result in a turn that has moved on.

A batch from history is planned before it is applied (`_plan.py`), so a call answered, interrupted or ended later in
the same batch is never started.

Recovery (after a restart, from the journal) happens on the first history read, which is complete: a call the
journal knows is resumed from its state: received -> run; started -> run again only if the tool is idempotent or
read-only, else answered "outcome unknown"; completed / in doubt / posted but absent from history -> (re)post the
stored result, never recomputed.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal

from ..journal import CallRecord, CallState, Journal, StoredResult
from ..tools import CallResult, Tool, ToolContext, Toolset
from ._observe import CallEvent, CallEventKind, Observer, log_extra
from ._plan import Plan, blocked_on
from ._poster import Outgoing, Poster
from ._scheduler import Outcome, OutcomeKind, Scheduler, Ticket

__all__ = ["Dispatcher", "ServeOptions"]

logger = logging.getLogger("bridge.dispatch")
tool_logger = logging.getLogger("bridge.tools")

Event = Any
Spawn = Callable[[Callable[[], Awaitable[None]]], None]

_REMEMBER_CLOSED = 50_000

IN_DOUBT_TEXT = (
    "The bridge stopped while running this tool, so its outcome is unknown. It was NOT retried, to avoid a duplicate "
    "side effect. Check the current state before trying again."
)


@dataclass(frozen=True)
class ServeOptions:
    """What the bridge tells every dispatcher: the default deadline, unknown-tool policy and input logging."""

    default_timeout: float | None
    unknown_tools: Literal["answer", "leave"] = "answer"
    log_inputs: bool = False


@dataclass(eq=False)
class _Call:
    tool_use_id: str
    tool: str
    input: dict[str, Any]
    thread_id: str | None
    since: datetime | None
    ticket: Ticket | None = None
    result: StoredResult | None = None  # known once the call finished (or was answered without running)
    interrupted: bool = False
    wanted: bool | None = None  # False: nobody waits; None after an interrupt: the next idle decides
    handed: bool = False  # given to the poster
    closed: bool = False  # acked or dropped: nothing left to do
    stop: str | None = None  # why it must not start (shutdown), when cancelled before it had a ticket


class Dispatcher:
    """Turns one session's events into calls, runs them through the scheduler and hands results to the poster."""

    def __init__(
        self,
        session_id: str,
        *,
        toolset: Toolset,
        scheduler: Scheduler,
        journal: Journal,
        poster: Poster,
        observer: Observer,
        options: ServeOptions,
        spawn: Spawn,
        on_end: Callable[[str], None],
    ) -> None:
        self.session_id = session_id
        self.metadata: dict[str, str] = {}
        self.ended: str | None = None
        self._toolset = toolset
        self._scheduler = scheduler
        self._journal = journal
        self._poster = poster
        self._observer = observer
        self._options = options
        self._spawn = spawn
        self._on_end = on_end
        self._calls: dict[str, _Call] = {}
        self._closed_ids: OrderedDict[str, None] = OrderedDict()  # recent finished calls, to ignore re-deliveries
        self._dead_threads: set[str] = set()

    def __repr__(self) -> str:
        return f"Dispatcher({self.session_id!r}, calls={len(self._calls)}, ended={self.ended!r})"

    # -- intake ----------------------------------------------------------------------------------------------------

    async def handle(self, batch: list[Event], live: bool) -> None:
        """Apply a batch of new events in order (the intake's handler)."""
        plan = Plan.of(batch)
        for event in batch:
            if self.ended:
                break
            await self._apply(event, plan, live)
        if not live:
            await self._recover_leftovers(plan)

    async def _apply(self, event: Event, plan: Plan, live: bool) -> None:
        kind = event.type
        if kind == "agent.custom_tool_use":
            await self._on_tool_use(event, plan)
        elif kind == "user.custom_tool_result":
            await self._on_echo(event.custom_tool_use_id, event.id)
        elif kind == "user.interrupt":
            self._on_interrupt(event.session_thread_id)
        elif kind == "session.status_idle":
            await self._on_idle(event, None)
        elif kind == "session.thread_status_idle":
            await self._on_idle(event, event.session_thread_id)
        elif kind == "session.thread_status_terminated":
            await self._on_thread_ended(event.session_thread_id)
        elif kind in ("session.status_terminated", "session.deleted"):
            await self.end("session terminated" if kind == "session.status_terminated" else "session deleted")
        elif kind == "session.updated" and live and getattr(event, "metadata", None) is not None:
            self.metadata = dict(event.metadata)  # (the backfill's updates are older than the session just read)

    async def _on_tool_use(self, event: Event, plan: Plan) -> None:
        use_id: str = event.id
        if use_id in self._calls or use_id in self._closed_ids:
            return
        name, tool_input = getattr(event, "name", None), getattr(event, "input", None)
        if use_id in plan.answered or use_id in plan.gone:
            return  # settled later in the same batch; `_recover_leftovers` updates the journal
        if not isinstance(name, str) or not isinstance(tool_input, dict):
            logger.warning("malformed agent.custom_tool_use ignored", extra=log_extra(self.session_id, use_id))
            return
        tool = self._toolset.get(name) if name in self._toolset else None
        if tool is None and self._options.unknown_tools == "leave":
            return  # another client serves it
        call = _Call(use_id, name, dict(tool_input), event.session_thread_id, getattr(event, "processed_at", None))
        call.interrupted = use_id in plan.interrupted
        self._calls[use_id] = call
        # The journal write and the rest happen in the call's own task: the stream reader never waits on storage,
        # and a burst of calls reaches the journal together (the SQLite journal commits them as one group).
        self._spawn(lambda: self._admit(call, tool))

    async def _admit(self, call: _Call, tool: Tool | None) -> None:
        """Journal a new call, then run it, or resume it from what the journal knows (recovery)."""
        use_id = call.tool_use_id
        new = await self._journal.receive(self.session_id, use_id, call.tool, call.input, thread_id=call.thread_id)
        record = None if new else await self._journal.get(self.session_id, use_id)
        extra = {"input": call.input} if self._options.log_inputs else {}
        logger.debug("call %s received", call.tool, extra=log_extra(self.session_id, use_id, call.tool, **extra))
        self._emit(call, CallEventKind.RECEIVED, detail=None if record is None else f"recovered ({record.state})")
        if call.closed:  # answered by someone else meanwhile
            await self._journal.abandon(self.session_id, [use_id])
        elif record is not None and record.state.finished:
            self._close(call)
        elif call.interrupted or call.wanted is False or call.stop is not None:
            reason = call.stop or ("interrupted" if call.interrupted else "no longer awaited")
            text = f"The call was cancelled before it started ({reason}); it did not run."
            await self._finish(call, CallResult.error(text))
        elif tool is None:
            available = ", ".join(self._toolset.names()) or "none"
            text = f"Unknown tool {call.tool!r}: this bridge serves {available}."
            await self._finish(call, CallResult.error(text), CallEventKind.FAILED)
        elif record is not None and record.result is not None and record.state.has_result:
            call.result = record.result
            await self._deliver(call)
        elif record is not None and record.state is CallState.STARTED:
            if tool.options.idempotent or tool.options.read_only:
                await self._journal.requeue(self.session_id, use_id)
                await self._run(call, tool)
            else:
                await self._finish(call, CallResult.error(IN_DOUBT_TEXT), CallEventKind.FAILED, in_doubt=True)
        else:
            await self._run(call, tool)

    async def _on_echo(self, use_id: str, echo_id: str) -> None:
        self._spawn(lambda: self._ack(use_id, echo_id))
        call = self._calls.get(use_id)
        if call is None:
            return
        self._poster.settle(use_id)
        if call.result is None and call.ticket is not None:
            call.ticket.cancel("answered by another client")
        self._close(call)

    def _on_interrupt(self, thread_id: str | None) -> None:
        for call in list(self._calls.values()):
            if call.closed or (thread_id is not None and call.thread_id != thread_id):
                continue
            if call.handed:
                withdrawn = self._poster.withdraw(call.tool_use_id)
                if withdrawn is None:
                    continue  # already on its way: it may land late, but never twice
                call.handed = False
            call.interrupted = True
            call.wanted = None
            if call.result is None and call.ticket is not None:
                call.ticket.cancel("interrupted")

    async def _on_idle(self, event: Event, thread_id: str | None) -> None:
        undecided = [c for c in self._calls.values() if c.interrupted and c.wanted is None and not c.closed]
        if not undecided:
            return
        waits = set(blocked_on(event))
        for call in undecided:
            if call.tool_use_id in waits:
                call.wanted = True
            elif thread_id is None or call.thread_id == thread_id:
                call.wanted = False
            else:
                continue
            if call.result is not None:
                await self._deliver(call)

    async def _on_thread_ended(self, thread_id: str) -> None:
        self._dead_threads.add(thread_id)
        for call in [c for c in self._calls.values() if c.thread_id == thread_id and not c.closed]:
            await self._drop(call, "thread terminated")

    async def end(self, reason: str) -> None:
        """The session is gone: cancel every call, drop every result, and stop the intake."""
        if self.ended:
            return
        self.ended = reason
        for call in list(self._calls.values()):
            if not call.closed:
                await self._drop(call, reason)
        await self._journal.abandon(self.session_id)
        self._on_end(reason)

    async def _ack(self, use_id: str, echo_id: str) -> None:
        await self._journal.mark_acked(self.session_id, use_id, echo_id)

    def cancel_running(self, reason: str) -> int:
        """Cancel every queued or running call (shutdown); their answers still go out. Returns how many."""
        pending = [c for c in self._calls.values() if c.result is None and not c.closed]
        for call in pending:
            call.stop = reason
            if call.ticket is not None:
                call.ticket.cancel(reason)
        return len(pending)

    async def _recover_leftovers(self, plan: Plan) -> None:
        """After the first (complete) history read: settle journaled calls the history says are done or gone."""
        for record in await self._journal.unfinished(self.session_id):
            if record.tool_use_id in self._calls:
                continue
            if (echo := plan.answered.get(record.tool_use_id)) is not None:
                await self._journal.mark_acked(self.session_id, record.tool_use_id, echo)
            else:
                await self._journal.abandon(self.session_id, [record.tool_use_id])
                self._log_recovered(record, "no longer awaited by the session")

    def _log_recovered(self, record: CallRecord, what: str) -> None:
        logger.info(
            "recovered call %s (%s): %s",
            record.tool_name,
            record.state,
            what,
            extra=log_extra(self.session_id, record.tool_use_id, record.tool_name),
        )

    # -- running ---------------------------------------------------------------------------------------------------

    def _ticket(self, call: _Call, tool: Tool) -> Ticket:
        options = tool.options
        key_field = options.concurrency_key
        key = str(call.input.get(key_field)) if key_field is not None and key_field in call.input else None
        timeout = self._toolset.timeout_for(tool.name)
        return Ticket(
            self.session_id,
            call.tool_use_id,
            tool.name,
            thread_id=call.thread_id,
            tool_limit=None if key_field is not None else options.max_concurrency,
            key=key,
            key_limit=options.max_concurrency if key is not None else None,
            timeout=timeout if timeout is not None else self._options.default_timeout,
        )

    async def _run(self, call: _Call, tool: Tool) -> None:
        ticket = call.ticket = self._ticket(call, tool)
        if call.interrupted or call.wanted is False or call.stop is not None:  # cancelled while being admitted
            ticket.cancel(call.stop or ("interrupted" if call.interrupted else "no longer awaited"))
        context = ToolContext(
            session_id=self.session_id,
            tool_use_id=call.tool_use_id,
            thread_id=call.thread_id,
            tool_name=tool.name,
            metadata=MappingProxyType(dict(self.metadata)),
            logger=tool_logger,
            cancel_event=ticket.cancel_event,
            on_progress=self._progress_logger(call),
        )

        async def start() -> bool:
            if not await self._journal.start(self.session_id, call.tool_use_id):
                return False
            self._emit(call, CallEventKind.STARTED)
            return True

        outcome = await self._scheduler.run(
            ticket, lambda run_sync: tool.call(call.input, context, run_sync=run_sync), on_start=start
        )
        if outcome.kind is OutcomeKind.SKIPPED:
            logger.warning(
                "call already started elsewhere; not run", extra=log_extra(self.session_id, call.tool_use_id)
            )
            return
        result, kind, in_doubt = self._answer_for(call, tool, outcome)
        await self._finish(call, result, kind, duration=outcome.duration, in_doubt=in_doubt)

    def _progress_logger(self, call: _Call) -> Callable[[str, float | None], None]:
        """`ctx.progress(...)` becomes a debug log record (it may come from a worker thread; logging is thread-safe)."""
        extra = log_extra(self.session_id, call.tool_use_id, call.tool)

        def report(message: str, fraction: float | None) -> None:
            done = f" ({fraction:.0%})" if fraction is not None else ""
            tool_logger.debug("progress: %s%s", message, done, extra={**extra, "fraction": fraction})

        return report

    def _answer_for(
        self, call: _Call, tool: Tool, outcome: Outcome[CallResult]
    ) -> tuple[CallResult, CallEventKind, bool]:
        if outcome.kind is OutcomeKind.COMPLETED and outcome.value is not None:
            kind = CallEventKind.FAILED if outcome.value.is_error else CallEventKind.FINISHED
            return outcome.value, kind, False
        if outcome.kind is OutcomeKind.SHED:
            text = f"The bridge is overloaded ({outcome.reason}); the call did not run. Try again shortly."
            return CallResult.error(text), CallEventKind.FAILED, False
        unsafe = outcome.started and not (tool.options.idempotent or tool.options.read_only)
        effect = " Any effect it already had is unknown." if unsafe else ""
        if outcome.kind is OutcomeKind.TIMED_OUT:
            text = f"The tool {tool.name!r} did not finish in time ({outcome.reason}) and was stopped."
            return CallResult.error(text + effect), CallEventKind.TIMED_OUT, False
        reason = outcome.reason or "cancelled"
        if not outcome.started:
            text = f"The call was cancelled before it started ({reason}); it did not run."
            return CallResult.error(text), CallEventKind.CANCELLED, False
        text = f"The call was cancelled while running ({reason})." + effect
        return CallResult.error(text), CallEventKind.CANCELLED, unsafe and reason == "shutdown"

    async def _finish(
        self,
        call: _Call,
        result: CallResult,
        kind: CallEventKind = CallEventKind.CANCELLED,
        *,
        duration: float | None = None,
        in_doubt: bool = False,
    ) -> None:
        stored = StoredResult(tuple(result.content), result.is_error, in_doubt=in_doubt)
        await self._journal.complete(self.session_id, call.tool_use_id, stored)
        call.result = stored
        detail = result.text[:200] if result.is_error else None
        level = {CallEventKind.TIMED_OUT: logging.WARNING, CallEventKind.FAILED: logging.INFO}.get(kind, logging.DEBUG)
        logger.log(
            level,
            "call %s %s%s",
            call.tool,
            kind.value,
            f" in {duration:.3f}s" if duration is not None else "",
            extra=log_extra(self.session_id, call.tool_use_id, call.tool, outcome=kind.value, duration=duration),
        )
        self._emit(call, kind, duration=duration, is_error=result.is_error, detail=detail)
        await self._deliver(call)

    # -- delivery --------------------------------------------------------------------------------------------------

    def wants(self, item: Outgoing) -> bool:
        """The poster's last check before posting: does the session still wait for this result?"""
        call = self._calls.get(item.tool_use_id)
        return (
            not self.ended
            and call is not None
            and not call.closed
            and call.wanted is not False
            and call.thread_id not in self._dead_threads
        )

    async def _deliver(self, call: _Call) -> None:
        if call.closed or call.handed or call.result is None:
            return
        if self.ended or call.wanted is False or call.thread_id in self._dead_threads:
            await self._drop(call, self.ended or "the session no longer waits for it")
            return
        if call.interrupted and call.wanted is None:
            return  # parked until the next idle says whether the session still waits
        call.handed = True
        self._poster.put(Outgoing(call.tool_use_id, call.tool, call.thread_id, call.result, since=call.since))

    async def dropped_by_poster(self, item: Outgoing, reason: str) -> None:
        """The poster's `on_drop`: a result it will not post."""
        call = self._calls.get(item.tool_use_id)
        if call is not None:
            call.handed = False
            await self._drop(call, reason)

    async def _drop(self, call: _Call, reason: str) -> None:
        call.wanted = False
        if call.result is None and call.ticket is not None:
            call.ticket.cancel(reason)
        if call.handed and self._poster.withdraw(call.tool_use_id) is None:
            return  # in flight: the poster will ask `wants()` again before any retry
        if call.result is None:
            return  # its task will deliver (and so drop) the answer when the tool stops
        await self._journal.abandon(self.session_id, [call.tool_use_id])
        self._emit(call, CallEventKind.DROPPED, detail=reason)
        self._close(call)

    def _close(self, call: _Call) -> None:
        call.closed = True
        self._calls.pop(call.tool_use_id, None)
        self._closed_ids[call.tool_use_id] = None
        if len(self._closed_ids) > _REMEMBER_CLOSED:
            self._closed_ids.popitem(last=False)  # older ones are deduplicated by the journal (receive -> acked)

    def _emit(
        self,
        call: _Call,
        kind: CallEventKind,
        *,
        duration: float | None = None,
        is_error: bool | None = None,
        detail: str | None = None,
    ) -> None:
        self._observer.emit(
            CallEvent(kind, self.session_id, call.tool_use_id, call.tool, call.thread_id, duration, is_error, detail)
        )
