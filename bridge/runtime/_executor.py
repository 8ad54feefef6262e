"""The executor: carries out the call table's effects against the journal, the scheduler and the poster.

The table (`_calls.py`) decides; the executor does. Each `Start` becomes one task in the executor's task group:
journal the call, then run it, or resume it from what the journal knows (recovery after a restart):
received -> run; started -> run again only if the tool is idempotent or read-only, else answered "outcome unknown";
completed / in doubt / posted -> (re)post the stored result, never recomputed. When the task has an answer it
stores it (`journal.complete`) and tells the table (`Completed`), whose `Post` hands it to the poster.

`Cancel` and `Drop` reach a running call through its scheduler `Ticket`; a dropped call's task abandons it in the
journal when the tool stops. The poster's outcomes come back through `consume` and are applied to the table like
any event, so the executor is the only thing that calls `CallTable.apply`.

Approvals (`_gate`): before a received call runs, its approval policy (tool > toolset > bridge) is evaluated, unless
there is none or it is "allow" (then nothing is evaluated or journaled: the fast path). "deny" answers it with the
reason; "ask" parks it in the journal (`awaiting_approval`) and waits on `Approvals` for a decision, its deadline, or
the session to stop waiting. Every decision is journaled (`decide`) before the call runs or is answered. A parked
call does not count as running for the drain: on shutdown it is left parked in the journal for the next bridge, and
an interrupt, an echo or a drop withdraws it (answered as cancelled, which the call table then posts or drops).

Lease lost (`lease_lost`, a fleet): the table closes every call; the executor cancels the running ones and from then
on writes nothing to the journal for the session (a fenced journal would refuse it anyway): the calls stay as they
are there, for the session's new owner to answer (a started non-idempotent call as "outcome unknown").

Seams: `_start` and `_post` are the single points where a call begins to run and a result is handed over.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Literal

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream

from ..journal import ApprovalOutcome, ApprovalRecord, CallRecord, CallState, Journal, StoredResult
from ..tools import (
    ApprovalPolicy,
    ApprovalRequest,
    CallResult,
    Tool,
    ToolContext,
    Toolset,
    Verdict,
    evaluate_policy,
    is_allow,
)
from ._approvals import Approvals, PendingApproval, Waiter, denial_text
from ._calls import (
    Ack,
    CallTable,
    Cancel,
    Completed,
    Drop,
    Effect,
    End,
    Input,
    LeaseLost,
    Post,
    Posted,
    Shutdown,
    Start,
    Withdraw,
)
from ._calls import Rejected as _Rejected
from ._observe import CallEvent, CallEventKind, Observer, log_extra
from ._poster import Outgoing, Poster, PosterOutcome
from ._scheduler import Outcome, OutcomeKind, Scheduler, Ticket

__all__ = ["IN_DOUBT_TEXT", "Executor", "ServeOptions"]

logger = logging.getLogger("bridge.dispatch")
tool_logger = logging.getLogger("bridge.tools")

IN_DOUBT_TEXT = (
    "The bridge stopped while running this tool, so its outcome is unknown. It was NOT retried, to avoid a duplicate "
    "side effect. Check the current state before trying again."
)


@dataclass(frozen=True)
class ServeOptions:
    """What the bridge tells every executor: the default deadline, unknown-tool policy and input logging."""

    default_timeout: float | None
    unknown_tools: Literal["answer", "leave"] = "answer"
    log_inputs: bool = False
    approval: ApprovalPolicy | None = None  # the bridge's policy, for tools whose tool and toolset set none


@dataclass(eq=False)
class _Task:
    """A call whose task is running: what the effects arriving meanwhile need to reach it."""

    start: Start
    tool: Tool | None
    ticket: Ticket | None
    stop: str | None = None  # cancelled before it could start: answer without running
    dropped: str | None = None  # nobody waits for it: abandon when the task ends
    answered: bool = False  # its echo was seen: someone answered it
    result: StoredResult | None = None  # its answer, once the task is over
    skipped: bool = False  # someone else started it, or it stays parked for the next bridge: not ours to answer
    waiter: Waiter | None = None  # parked: waiting for an approval decision


class Executor:
    """Runs one session's calls as its call table says. Use as `async with executor:` (it owns the call tasks)."""

    def __init__(
        self,
        session_id: str,
        *,
        table: CallTable,
        toolset: Toolset,
        scheduler: Scheduler,
        journal: Journal,
        poster: Poster,
        observer: Observer,
        options: ServeOptions,
        approvals: Approvals | None = None,
    ) -> None:
        self.session_id = session_id
        self._metadata: MappingProxyType[str, str] = MappingProxyType({})
        self.table = table
        self._toolset = toolset
        self._scheduler = scheduler
        self._journal = journal
        self._poster = poster
        self._observer = observer
        self._options = options
        self._approvals = approvals if approvals is not None else Approvals(journal)
        self._stopping = False
        self._fenced = False  # the lease was lost: nothing more is written about the session
        self._parked = 0  # tasks waiting for an approval decision: not "running" for `wait_idle`
        self._tasks: dict[str, _Task] = {}
        self._results: dict[str, Outgoing] = {}
        self._idle = anyio.Event()
        self._idle.set()
        self._tg: TaskGroup | None = None
        self._stack: AsyncExitStack | None = None
        self.on_settled: Callable[[], None] | None = None  # told after a call task ends or a post outcome applies

    def __repr__(self) -> str:
        return f"Executor({self.session_id!r}, running={len(self._tasks)}, {self.table!r})"

    @property
    def metadata(self) -> Mapping[str, str]:
        """The session's metadata as every call's `ToolContext` sees it (read-only, a copy taken when set)."""
        return self._metadata

    @metadata.setter
    def metadata(self, value: Mapping[str, str]) -> None:
        self._metadata = MappingProxyType(dict(value))

    async def __aenter__(self) -> Executor:
        async with AsyncExitStack() as stack:
            self._tg = await stack.enter_async_context(anyio.create_task_group())
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        """Cancel every call task still running (the drain, if any, is over)."""
        if self._tg is not None and self._stack is not None:
            self._tg.cancel_scope.cancel()
            await self._stack.__aexit__(*exc_info)
        self._tg = self._stack = None

    @property
    def ended(self) -> str | None:
        """Why the session ended (terminated, deleted), or None while it lives."""
        return self.table.ended

    async def apply(self, batch: Sequence[Input], *, backfill: bool = False) -> None:
        """Apply a batch to the table and carry out its effects; after the first history read, settle leftovers."""
        await self._carry_out(self.table.apply(batch), inline_acks=backfill)
        self._poster.nudge()  # an idle may have settled the batch the poster holds
        if backfill:
            await self._settle_leftovers()

    def shutdown(self, reason: str) -> int:
        """Start nothing new and cancel what runs (their answers still go out); calls awaiting approval stay parked
        in the journal. Returns how many calls run."""
        self._stopping = True
        for effect in self.table.apply([Shutdown(reason)]):
            if isinstance(effect, Cancel):
                self._cancel(effect.tool_use_id, effect.reason)
        return len(self._tasks)

    def lease_lost(self, reason: str) -> int:
        """Stop everything for the session at once: cancel what runs, journal and post nothing more (the new owner
        answers the calls from the journal). Returns how many calls were open."""
        self._stopping = self._fenced = True
        open_calls = len(self.table)
        for effect in self.table.apply([LeaseLost(reason)]):
            match effect:
                case Cancel(tool_use_id=use_id, reason=why):
                    self._cancel(use_id, why)
                case Withdraw(tool_use_id=use_id):
                    self._poster.withdraw(use_id)
                case _:
                    pass
        for use_id in list(self._tasks):  # closed by an echo but still running: stop them too
            self._cancel(use_id, reason)
        self._results.clear()
        return open_calls

    @property
    def running(self) -> int:
        """Call tasks alive (parked ones included)."""
        return len(self._tasks)

    async def wait_idle(self) -> None:
        """Return once no call task runs (calls parked for approval do not count)."""
        await self._idle.wait()

    async def consume(self, outcomes: MemoryObjectReceiveStream[PosterOutcome]) -> None:
        """Apply the poster's outcomes to the table, until the stream closes."""
        async with outcomes:
            async for outcome in outcomes:
                if isinstance(outcome, Posted):
                    for use_id in outcome.tool_use_ids:
                        self._results.pop(use_id, None)
                await self.apply([outcome])
                if self.on_settled is not None:
                    self.on_settled()

    # -- effects ---------------------------------------------------------------------------------------------------

    async def _carry_out(self, effects: list[Effect], *, inline_acks: bool = False) -> None:
        acks: list[Ack] = []
        for effect in effects:
            match effect:
                case Start():
                    self._start(effect)
                case Cancel(tool_use_id=use_id, reason=reason):
                    self._cancel(use_id, reason)
                case Post(tool_use_id=use_id):
                    self._post(use_id)
                case Withdraw(tool_use_id=use_id):
                    self._poster.withdraw(use_id)
                case Drop(tool_use_id=use_id, reason=reason):
                    await self._drop(use_id, reason)
                case Ack(tool_use_id=use_id):
                    if (task := self._tasks.get(use_id)) is not None:
                        task.answered = True
                    self._results.pop(use_id, None)
                    acks.append(effect)
                case End(reason=reason):
                    await self._journal.abandon(self.session_id)
                    logger.info("session ended: %s", reason, extra=log_extra(self.session_id))
        if acks:
            if inline_acks:
                await self._ack(acks)
            else:  # the stream reader never waits on storage
                self._spawn(self._ack, acks)

    def _start(self, start: Start) -> None:
        tool = self._toolset.get(start.name) if start.name in self._toolset else None
        ticket = self._ticket(start, tool) if tool is not None else None
        task = self._tasks[start.tool_use_id] = _Task(start, tool, ticket, stop=start.stop)
        if self._idle.is_set():
            self._idle = anyio.Event()
        # The journal write and the rest happen in the call's own task: a burst of calls reaches the journal
        # together (the SQLite journal commits them as one group).
        self._spawn(self._call, task)

    def _cancel(self, use_id: str, reason: str) -> None:
        task = self._tasks.get(use_id)
        if task is None:
            return
        task.stop = task.stop or reason
        if task.waiter is not None:
            task.waiter.event.set()
        if task.ticket is not None:
            task.ticket.cancel(reason)

    def _post(self, use_id: str) -> None:
        item = self._results.get(use_id)
        if item is not None:
            self._poster.put(item)

    async def _drop(self, use_id: str, reason: str) -> None:
        task = self._tasks.get(use_id)
        if task is not None:  # it still runs: its task abandons it when the tool stops
            task.dropped = reason
            self._cancel(use_id, reason)
            return
        self._poster.withdraw(use_id)
        item = self._results.pop(use_id, None)
        await self._journal.abandon(self.session_id, [use_id])
        tool = item.tool if item is not None else "?"
        self._observer.emit(CallEvent(CallEventKind.DROPPED, self.session_id, use_id, tool, detail=reason))

    async def _ack(self, acks: list[Ack]) -> None:
        for ack in acks:
            await self._journal.mark_acked(self.session_id, ack.tool_use_id, ack.echo_id)

    def _spawn(self, fn: Callable[..., Any], *args: Any) -> None:
        if self._tg is None:
            raise RuntimeError("calls can only start while the session is served (`async with executor:`)")
        self._tg.start_soon(fn, *args)

    async def _settle_leftovers(self) -> None:
        """After the first (complete) history read: abandon journaled calls the session no longer waits for."""
        for record in await self._journal.unfinished(self.session_id):
            if record.tool_use_id in self.table or record.tool_use_id in self._tasks:
                continue
            await self._journal.abandon(self.session_id, [record.tool_use_id])
            logger.info(
                "recovered call %s (%s): no longer awaited by the session",
                record.tool_name,
                record.state,
                extra=log_extra(self.session_id, record.tool_use_id, record.tool_name),
            )

    # -- one call --------------------------------------------------------------------------------------------------

    async def _call(self, task: _Task) -> None:
        try:
            await self._handle_call(task)
        finally:
            if self.on_settled is not None:
                self.on_settled()

    async def _handle_call(self, task: _Task) -> None:
        start, tool = task.start, task.tool
        use_id = start.tool_use_id
        new = await self._journal.receive(self.session_id, use_id, start.name, start.input, thread_id=start.thread_id)
        record = None if new else await self._journal.get(self.session_id, use_id)
        if logger.isEnabledFor(logging.DEBUG):
            extra = {"input": start.input} if self._options.log_inputs else {}
            logger.debug("call %s received", start.name, extra=log_extra(self.session_id, use_id, start.name, **extra))
        self._emit(start, CallEventKind.RECEIVED, detail=None if record is None else f"recovered ({record.state})")
        if record is not None and record.state.finished:
            self._settle(task, None)
        elif record is not None and record.state is CallState.AWAITING_APPROVAL and tool is not None:
            await self._await_decision(task, tool, record.approval or _asked(self._approvals.settings.timeout))
        elif task.stop is not None or task.dropped is not None or task.answered:
            reason = task.stop or task.dropped or "answered by another client"
            text = f"The call was cancelled before it started ({reason}); it did not run."
            await self._finish(task, CallResult.error(text))
        elif tool is None:
            available = ", ".join(self._toolset.names()) or "none"
            text = f"Unknown tool {start.name!r}: this bridge serves {available}."
            await self._finish(task, CallResult.error(text), CallEventKind.FAILED)
        elif record is not None and record.result is not None and record.state.has_result:
            self._settle(task, record.result)
        elif record is not None and record.state is CallState.STARTED:
            if tool.options.idempotent or tool.options.read_only:
                await self._journal.requeue(self.session_id, use_id)
                await self._run(task, tool)
            else:
                await self._finish(task, CallResult.error(IN_DOUBT_TEXT), CallEventKind.FAILED, in_doubt=True)
        else:
            await self._gate(task, tool, record)
        # From `_settle` on, the table alone decides: nothing below awaits before telling it.
        if self._fenced:
            return  # the lease was lost: the call is the new owner's now (the table already closed it)
        if task.dropped is not None or task.answered:
            await self._journal.abandon(self.session_id, [use_id])  # a no-op once acked
            if task.dropped is not None:
                self._emit(start, CallEventKind.DROPPED, detail=task.dropped)
        elif task.result is not None:
            await self._carry_out(self.table.apply([Completed(use_id)]))
        elif not task.skipped:  # settled in an earlier life: nothing will ever be posted
            await self._carry_out(self.table.apply([_Rejected(use_id, "already settled in the journal")]))

    def _settle(self, task: _Task, result: StoredResult | None) -> None:
        """The task is over: keep its result for the poster unless nobody waits for it; effects can no longer
        reach the task, only the table."""
        use_id = task.start.tool_use_id
        del self._tasks[use_id]
        if len(self._tasks) <= self._parked:
            self._idle.set()
        task.result = result
        if result is not None and task.dropped is None and not task.answered:
            start = task.start
            self._results[use_id] = Outgoing(use_id, start.name, start.thread_id, result, since=start.since)

    # -- approvals -------------------------------------------------------------------------------------------------

    async def _gate(self, task: _Task, tool: Tool, record: CallRecord | None) -> None:
        """Run a received call if its approval policy lets it; deny it, or park it until someone decides."""
        decided = record.approval if record is not None else None
        if decided is not None and decided.outcome is not ApprovalOutcome.PENDING:  # decided in an earlier life
            await self._act_on(task, tool, decided)
            return
        name = task.start.name
        policy = self._toolset.approval_for(name)
        if policy is None:
            policy = self._options.approval
        if is_allow(policy):  # the fast path: nothing evaluated, nothing journaled
            await self._run(task, tool)
            return
        validated = tool.validate_input(task.start.input)
        if validated is None:  # answered with the validation error; the tool does not run
            await self._run(task, tool)
            return
        start = task.start
        request = ApprovalRequest(
            tool,
            MappingProxyType(validated),
            self.session_id,
            start.tool_use_id,
            start.thread_id,
            self._metadata,
        )
        answer = await evaluate_policy(policy, request)
        if answer.verdict is Verdict.ALLOW:
            await self._run(task, tool)
        elif answer.verdict is Verdict.DENY:
            now = time.time()
            denied = ApprovalRecord(ApprovalOutcome.DENIED, now, None, "policy", answer.reason, now)
            await self._journal.decide(self.session_id, start.tool_use_id, denied)
            await self._act_on(task, tool, denied)
        else:
            asked = _asked(self._approvals.settings.timeout)
            await self._journal.await_approval(self.session_id, start.tool_use_id, asked)
            await self._await_decision(task, tool, asked)

    async def _await_decision(self, task: _Task, tool: Tool, asked: ApprovalRecord) -> None:
        """Wait, parked, for a decision, the deadline, or the session to stop waiting; journal what happened."""
        start = task.start
        deadline = asked.deadline if asked.deadline is not None else time.time()
        requested = asked.requested_at if asked.requested_at is not None else time.time()
        pending = PendingApproval(
            start.tool_use_id, self.session_id, start.name, start.input, start.thread_id, requested, deadline
        )
        waiter = task.waiter = self._approvals.park(pending)
        self._parked += 1
        if len(self._tasks) <= self._parked:
            self._idle.set()
        self._emit(start, CallEventKind.AWAITING_APPROVAL)
        try:
            if task.stop is None and task.dropped is None and not task.answered:
                with anyio.move_on_after(max(0.0, deadline - time.time())):
                    await waiter.event.wait()
        finally:
            self._approvals.unpark(waiter)
            task.waiter = None
            self._parked -= 1
            if len(self._tasks) > self._parked and self._idle.is_set():
                self._idle = anyio.Event()
        use_id = start.tool_use_id
        withdrawn = task.dropped or ("answered by another client" if task.answered else None)
        if task.stop is not None and (withdrawn is not None or not self._stopping):
            withdrawn = task.stop  # the first cause: an interrupt, the thread or session ending, an echo
        if withdrawn is not None:
            by = "interrupt" if withdrawn == "interrupted" else "session"
            record = replace(asked, outcome=ApprovalOutcome.WITHDRAWN, by=by, reason=withdrawn, decided_at=time.time())
            await self._journal.decide(self.session_id, use_id, record)
            text = f"The call was cancelled before it started ({withdrawn}); it did not run."
            await self._finish(task, CallResult.error(text))
            return
        if task.stop is not None:  # the bridge is stopping: the call stays parked in the journal for the next one
            task.skipped = True
            self._settle(task, None)
            return
        decision = waiter.decision
        if decision is None:
            timeout = self._approvals.settings.timeout
            decision = replace(
                asked,
                outcome=ApprovalOutcome.TIMED_OUT,
                by="timeout",
                reason=f"no decision within {timeout:g} s",
                decided_at=time.time(),
            )
        await self._journal.decide(self.session_id, use_id, decision)
        await self._act_on(task, tool, decision)

    async def _act_on(self, task: _Task, tool: Tool, decision: ApprovalRecord) -> None:
        """Run the call or answer it with its denial, as the (journaled) decision says."""
        allowed = decision.outcome is ApprovalOutcome.APPROVED or (
            decision.outcome is ApprovalOutcome.TIMED_OUT and self._approvals.settings.on_timeout == "allow"
        )
        if allowed:
            self._emit(task.start, CallEventKind.APPROVED, detail=decision.by)
            await self._run(task, tool)
        elif decision.outcome is ApprovalOutcome.WITHDRAWN:
            text = f"The call was cancelled before it started ({decision.reason}); it did not run."
            await self._finish(task, CallResult.error(text))
        else:
            await self._finish(task, CallResult.error(denial_text(decision)), CallEventKind.DENIED)

    def _ticket(self, start: Start, tool: Tool) -> Ticket:
        options = tool.options
        key_field = options.concurrency_key
        key = str(start.input.get(key_field)) if key_field is not None and key_field in start.input else None
        timeout = self._toolset.timeout_for(tool.name)
        return Ticket(
            self.session_id,
            start.tool_use_id,
            tool.name,
            thread_id=start.thread_id,
            tool_limit=None if key_field is not None else options.max_concurrency,
            key=key,
            key_limit=options.max_concurrency if key is not None else None,
            timeout=timeout if timeout is not None else self._options.default_timeout,
        )

    async def _run(self, task: _Task, tool: Tool) -> None:
        start = task.start
        ticket = task.ticket
        assert ticket is not None  # a known tool always has one
        if task.stop is not None:  # cancelled while being journaled
            ticket.cancel(task.stop)
        context = ToolContext(
            session_id=self.session_id,
            tool_use_id=start.tool_use_id,
            thread_id=start.thread_id,
            tool_name=tool.name,
            metadata=self._metadata,
            logger=tool_logger,
            cancel_event=ticket.cancel_event,
            on_progress=self._progress_logger(start),
        )

        async def on_start() -> bool:
            if not await self._journal.start(self.session_id, start.tool_use_id):
                return False
            self._emit(start, CallEventKind.STARTED)
            return True

        arguments = dict(start.input)
        outcome = await self._scheduler.run(
            ticket, lambda run_sync: tool.call(arguments, context, run_sync=run_sync), on_start=on_start
        )
        if outcome.kind is OutcomeKind.SKIPPED:
            logger.warning(
                "call already started elsewhere; not run", extra=log_extra(self.session_id, start.tool_use_id)
            )
            task.skipped = True
            self._settle(task, None)
            return
        result, kind, in_doubt = _answer_for(tool, outcome)
        await self._finish(task, result, kind, duration=outcome.duration, in_doubt=in_doubt)

    def _progress_logger(self, start: Start) -> Callable[[str, float | None], None]:
        """`ctx.progress(...)` becomes a debug log record (it may come from a worker thread; logging is thread-safe)."""
        return _Progress(self.session_id, start)

    async def _finish(
        self,
        task: _Task,
        result: CallResult,
        kind: CallEventKind = CallEventKind.CANCELLED,
        *,
        duration: float | None = None,
        in_doubt: bool = False,
    ) -> None:
        start = task.start
        stored = StoredResult(tuple(result.content), result.is_error, in_doubt=in_doubt)
        if self._fenced:  # the lease was lost while it ran: its outcome is the new owner's to answer
            logger.info(
                "call %s stopped: the lease on the session was lost; nothing journaled or posted",
                start.name,
                extra=log_extra(self.session_id, start.tool_use_id, start.name, duration=duration),
            )
            self._settle(task, None)
            return
        await self._journal.complete(self.session_id, start.tool_use_id, stored)
        detail = result.text[:200] if result.is_error else None
        level = _LOG_LEVELS.get(kind, logging.DEBUG)
        if logger.isEnabledFor(level):  # most calls end at DEBUG: skip building the record's extras
            logger.log(
                level,
                "call %s %s%s",
                start.name,
                kind.value,
                f" in {duration:.3f}s" if duration is not None else "",
                extra=log_extra(self.session_id, start.tool_use_id, start.name, outcome=kind.value, duration=duration),
            )
        self._emit(start, kind, duration=duration, is_error=result.is_error, detail=detail)
        self._settle(task, stored)

    def _emit(
        self,
        start: Start,
        kind: CallEventKind,
        *,
        duration: float | None = None,
        is_error: bool | None = None,
        detail: str | None = None,
    ) -> None:
        self._observer.emit(
            CallEvent(kind, self.session_id, start.tool_use_id, start.name, start.thread_id, duration, is_error, detail)
        )


_LOG_LEVELS = {CallEventKind.TIMED_OUT: logging.WARNING, CallEventKind.FAILED: logging.INFO}


@dataclass(frozen=True, slots=True)
class _Progress:
    """A call's `ctx.progress` reports as debug log records (built only when a tool reports)."""

    session_id: str
    start: Start

    def __call__(self, message: str, fraction: float | None) -> None:
        done = f" ({fraction:.0%})" if fraction is not None else ""
        extra = log_extra(self.session_id, self.start.tool_use_id, self.start.name, fraction=fraction)
        tool_logger.debug("progress: %s%s", message, done, extra=extra)


def _asked(timeout: float) -> ApprovalRecord:
    now = time.time()
    return ApprovalRecord(ApprovalOutcome.PENDING, requested_at=now, deadline=now + timeout)


def _answer_for(tool: Tool, outcome: Outcome[CallResult]) -> tuple[CallResult, CallEventKind, bool]:
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
