"""Admission, deadlines and cancellation of tool calls, shared by every session of a bridge.

A call runs in its own task (the session's task group owns it) and goes through `Scheduler.run`:

1. It takes one slot at every level that applies, narrowest first: its `concurrency_key` value (a tool with
   `concurrency_key` allows `max_concurrency` calls per key value), else its tool's `max_concurrency`, then its
   session, then the bridge. Waiting for a busy tool therefore never holds a session or global slot
   another call could use. Waiting is cancellable, so an interrupt removes queued calls at once.
2. `on_start` (the journal's write-ahead `start`) runs shielded: once it says yes, the call counts as started even if
   a cancel arrives in the same instant.
3. The tool runs under a cancel scope with its deadline *inside* this task, so the deadline is real.
4. Sync tools run through `run_sync`: a worker thread (at most `Limits.max_threads` at once) with
   `abandon_on_cancel=True`, so a deadline or interrupt answers at once. Threads cannot be killed, so an abandoned
   thread keeps every slot of its call, and its thread slot, until it really ends (then the slots are released and
   `on_released` fires); `stats()` counts such threads. A small watcher task in the scheduler's own task group
   awaits each thread to its real end, which keeps all bookkeeping on the event loop (no callbacks from threads).
   The tool can watch `ctx.cancelled`, set on timeout and cancel; a thread that had not begun when its call was
   cancelled never starts the tool.

The scheduler knows nothing about tools, HTTP or the journal: it runs an awaitable under slots and a deadline and says
how it ended. That keeps it testable alone.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread
from anyio.abc import TaskGroup

from ._limits import Limits

__all__ = ["Outcome", "OutcomeKind", "RunSync", "Scheduler", "Ticket"]

T = TypeVar("T")
RunSync = Callable[[Callable[[], Any]], Awaitable[Any]]


class OutcomeKind(enum.StrEnum):
    COMPLETED = "completed"  # the body returned a value
    TIMED_OUT = "timed_out"  # the deadline fired while the body ran
    CANCELLED = "cancelled"  # the ticket was cancelled, queued or running
    SKIPPED = "skipped"  # `on_start` refused: someone else already started this call
    SHED = "shed"  # too many calls queued; never admitted


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """How one `Scheduler.run` ended."""

    kind: OutcomeKind
    value: T | None = None
    started: bool = False
    duration: float | None = None
    reason: str | None = None


class Ticket:
    """One call's place in the scheduler: its identity, limits, cancel scope, cancel flag and worker threads.

    Create it before the call's task starts so an interrupt can cancel it even before it runs.
    """

    def __init__(
        self,
        session_id: str,
        tool_use_id: str,
        tool: str,
        *,
        thread_id: str | None = None,
        tool_limit: int | None = None,
        key: str | None = None,
        key_limit: int | None = None,
        timeout: float | None = None,
    ) -> None:
        self.session_id = session_id
        self.tool_use_id = tool_use_id
        self.tool = tool
        self.thread_id = thread_id
        self.tool_limit = tool_limit
        self.key = key
        self.key_limit = key_limit
        self.timeout = timeout
        self.cancel_event = threading.Event()
        self.cancel_reason: str | None = None
        self.scope = anyio.CancelScope()
        self.started = False
        self._held: list[anyio.CapacityLimiter] = []
        self._threads = 0
        self._exited = False
        self._released = False

    def __repr__(self) -> str:
        return f"Ticket({self.session_id!r}, {self.tool_use_id!r}, tool={self.tool!r})"

    def cancel(self, reason: str) -> None:
        """Cancel the call, queued or running: async tools are cancelled, sync tools see `ctx.cancelled`."""
        if self.cancel_reason is None:
            self.cancel_reason = reason
        self.cancel_event.set()
        self.scope.cancel()

    @property
    def cancelled(self) -> bool:
        return self.cancel_reason is not None


class Scheduler:
    """The bridge-wide slots and counters. One per bridge; every session's calls go through it."""

    def __init__(self, limits: Limits, *, on_released: Callable[[Ticket], None] | None = None) -> None:
        self.limits = limits
        self._global = anyio.CapacityLimiter(limits.max_concurrency)
        # A thread slot is held by the task watching the thread, for the thread's real lifetime (abandoned or not);
        # anyio's own limiter, released when a wait is abandoned, is sized so it never makes a thread wait.
        self._thread_slots = anyio.CapacityLimiter(limits.max_threads)
        self._thread_limiter = anyio.CapacityLimiter(limits.max_threads + limits.max_concurrency)
        self._threads_tg: TaskGroup | None = None
        self._exit_stack: AsyncExitStack | None = None
        self._tools: dict[str, anyio.CapacityLimiter] = {}
        self._sessions: dict[str, anyio.CapacityLimiter] = {}
        self._keys: dict[tuple[str, str], anyio.CapacityLimiter] = {}
        self._key_users: dict[tuple[str, str], int] = {}
        self._on_released = on_released
        self.queued = 0
        self.running = 0
        self.abandoned_threads = 0

    def __repr__(self) -> str:
        return (
            f"Scheduler({self.limits!r}, running={self.running}, queued={self.queued}, "
            f"abandoned_threads={self.abandoned_threads})"
        )

    async def __aenter__(self) -> Scheduler:
        async with AsyncExitStack() as stack:
            self._threads_tg = await stack.enter_async_context(anyio.create_task_group())
            self._exit_stack = stack.pop_all()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Stop watching threads still running (they are abandoned for good: the process may exit under them)."""
        if self._threads_tg is not None and self._exit_stack is not None:
            self._threads_tg.cancel_scope.cancel()
            await self._exit_stack.__aexit__(None, None, None)
        self._threads_tg = self._exit_stack = None

    def forget_session(self, session_id: str) -> None:
        """Drop a finished session's limiter (its abandoned threads keep their own reference)."""
        self._sessions.pop(session_id, None)

    async def run(
        self,
        ticket: Ticket,
        body: Callable[[RunSync], Awaitable[T]],
        *,
        on_start: Callable[[], Awaitable[bool]] | None = None,
    ) -> Outcome[T]:
        """Run `body` for `ticket` under its slots and deadline; never raises for timeouts or ticket cancellation.

        Args:
            ticket: The call. Cancel it (`ticket.cancel(reason)`) to stop it, queued or running.
            body: Runs the tool; it receives the `run_sync` to use for sync functions.
            on_start: Called once the slots are held, before `body`; returning False skips the call.

        Returns:
            The outcome. Cancellation from outside the ticket (the session or bridge shutting down) propagates.
        """
        if self.queued >= self.limits.max_queued:
            return Outcome(OutcomeKind.SHED, reason=f"{self.queued} calls already queued")
        self.queued += 1
        queued = True
        started_at: float | None = None
        try:
            with ticket.scope:
                await self._acquire(ticket)
                self.queued -= 1
                queued = False
                if on_start is not None:
                    with anyio.CancelScope(shield=True):
                        if not await on_start():
                            return Outcome(OutcomeKind.SKIPPED)
                ticket.started = True
                started_at = time.monotonic()
                self.running += 1
                try:
                    if ticket.timeout is None:
                        value = await body(self._run_sync_for(ticket))
                    else:
                        # `anyio.fail_after` inlined: a cancel scope with a deadline, in this (the call's) task. The
                        # scope is ours alone, so a cancellation it caught is its deadline (fail_after's two nested
                        # generator context managers cost more than the rest of running a trivial tool).
                        with anyio.CancelScope(deadline=anyio.current_time() + ticket.timeout) as deadline:
                            value = await body(self._run_sync_for(ticket))
                        if deadline.cancelled_caught:
                            raise TimeoutError
                except TimeoutError:
                    ticket.cancel_event.set()
                    return Outcome(
                        OutcomeKind.TIMED_OUT,
                        started=True,
                        duration=time.monotonic() - started_at,
                        reason=f"timed out after {ticket.timeout:g} s",
                    )
                return Outcome(OutcomeKind.COMPLETED, value, started=True, duration=time.monotonic() - started_at)
        finally:
            if queued:
                self.queued -= 1
            if started_at is not None:
                self.running -= 1
            self._exit(ticket)
        duration = time.monotonic() - started_at if started_at is not None else None
        return Outcome(OutcomeKind.CANCELLED, started=ticket.started, duration=duration, reason=ticket.cancel_reason)

    def _limiters(self, ticket: Ticket) -> list[anyio.CapacityLimiter]:
        chosen: list[anyio.CapacityLimiter] = []
        if ticket.key is not None:
            key = (ticket.tool, ticket.key)
            if key not in self._keys:
                self._keys[key] = anyio.CapacityLimiter(ticket.key_limit or 1)
            self._key_users[key] = self._key_users.get(key, 0) + 1
            chosen.append(self._keys[key])
        if ticket.tool_limit is not None:
            limiter = self._tools.get(ticket.tool)
            if limiter is None or limiter.total_tokens != ticket.tool_limit:
                limiter = self._tools[ticket.tool] = anyio.CapacityLimiter(ticket.tool_limit)
            chosen.append(limiter)
        if self.limits.per_session is not None:
            if ticket.session_id not in self._sessions:
                self._sessions[ticket.session_id] = anyio.CapacityLimiter(self.limits.per_session)
            chosen.append(self._sessions[ticket.session_id])
        chosen.append(self._global)
        return chosen

    async def _acquire(self, ticket: Ticket) -> None:
        """Take every slot of `ticket`, narrowest first.

        A free slot is taken without yielding to the event loop (anyio's `acquire` always does, twice per call at
        two levels); only a slot that must be waited for is awaited. A ticket cancelled before it got here still
        never starts: the cancellation is checked once first.
        """
        await anyio.lowlevel.checkpoint_if_cancelled()
        for limiter in self._limiters(ticket):
            try:
                limiter.acquire_on_behalf_of_nowait(ticket)
            except anyio.WouldBlock:
                await limiter.acquire_on_behalf_of(ticket)
            ticket._held.append(limiter)

    def _exit(self, ticket: Ticket) -> None:
        """The call's task is leaving: release its slots, unless a worker thread of it still runs."""
        ticket._exited = True
        if ticket._threads > 0:
            self.abandoned_threads += 1
            return
        self._release(ticket)

    def _thread_ended(self, ticket: Ticket) -> None:
        """A thread of `ticket` ended; if the call already left, the thread's slots are free at last."""
        if not ticket._exited or ticket._threads > 0 or ticket._released:
            return
        self.abandoned_threads -= 1
        self._release(ticket)
        if self._on_released is not None:
            self._on_released(ticket)

    def _release(self, ticket: Ticket) -> None:
        if ticket._released:
            return
        ticket._released = True
        for limiter in reversed(ticket._held):
            limiter.release_on_behalf_of(ticket)
        ticket._held.clear()
        if ticket.key is not None:
            key = (ticket.tool, ticket.key)
            users = self._key_users.get(key, 0) - 1
            if users <= 0:
                self._key_users.pop(key, None)
                self._keys.pop(key, None)
            else:
                self._key_users[key] = users

    def _run_sync_for(self, ticket: Ticket) -> RunSync:
        async def run_sync(fn: Callable[[], Any]) -> Any:
            if self._threads_tg is None:
                raise RuntimeError("use the Scheduler as `async with scheduler:` to run sync tools")
            done = anyio.Event()
            box: list[tuple[bool, Any]] = []
            ticket._threads += 1
            self._threads_tg.start_soon(self._thread, ticket, fn, box, done)
            await done.wait()  # cancelling this wait abandons the thread; its task below keeps watching it
            ok, value = box[0]
            if not ok:
                raise value
            return value

        return run_sync

    async def _thread(
        self, ticket: Ticket, fn: Callable[[], Any], box: list[tuple[bool, Any]], done: anyio.Event
    ) -> None:
        """Run `fn` in a worker thread and watch it to its real end, even after the call gave up waiting."""

        def target() -> Any:
            if ticket.cancel_event.is_set():
                raise _Withdrawn  # cancelled before the thread began: never start the tool
            return fn()

        try:
            async with self._thread_slots:
                value = await anyio.to_thread.run_sync(target, abandon_on_cancel=True, limiter=self._thread_limiter)
            box.append((True, value))
        except Exception as exc:
            box.append((False, exc))
        finally:
            ticket._threads -= 1
            done.set()
            self._thread_ended(ticket)


class _Withdrawn(Exception):
    """A sync tool's thread found its call already cancelled and did not start it."""
