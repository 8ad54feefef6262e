"""Serving one session: its intake, call table, executor and poster under one task group, from start to end.

```
SessionRunner.run
├── session lookup (metadata for ToolContext; a session already terminated ends here)
└── task group
    ├── poster.run                    posts batches of results, reports outcomes on a stream ──┐
    ├── executor.consume              applies the poster's outcomes to the call table   <──────┘
    ├── reconciler.run                the periodic reconciliation sweep (the stream may skip events)
    └── (body) executor               one task per call (`async with executor:`)
        └── intake.run                stream + history -> executor.apply (table -> effects) -> watchers
```

Data flows one way: events into the table, effects out of it to the journal, the scheduler and the poster, the
poster's outcomes back into the table. The poster only *asks* the table whether a result is still wanted.

A runner ends when its session ends (terminated or deleted), when it is detached or the bridge shuts down (a
graceful drain: no new calls, running ones get until the drain deadline, then are cancelled and answered), or on an
operator error (401/403/404), which is kept in `error` for `Bridge.serve` to raise. Any other exception is a bug; it
is logged and kept too, so one broken session never takes the others down.

In a fleet two more endings: `fence` (the lease was lost, or a post was refused by the fence: stop at once, cancel
what runs, journal and post nothing more; `fenced` says why) and `hand_over` (rebalancing: stop at the next idle
point, when no call of the session is open, so the session moves to another process between turns, never mid-call).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
from anthropic import AsyncAnthropic
from anthropic.resources.beta.sessions.events import AsyncEvents
from anthropic.types.beta import BetaManagedAgentsSession
from anyio.abc import TaskGroup, TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .._errors import OperatorError
from ..journal import Journal
from ..tools import Toolset
from ._approvals import Approvals
from ._calls import CallTable
from ._events import Event, Updated
from ._executor import Executor, ServeOptions
from ._intake import Intake
from ._limits import Limits, Timeouts
from ._observe import Counter, Observer, log_extra
from ._pools import StreamPools
from ._poster import Poster, PosterOutcome
from ._retry import Attempts, Retry, retrying
from ._scheduler import Scheduler
from ._sdk import classify, describe

__all__ = ["Services", "SessionRunner"]

logger = logging.getLogger("bridge.session")


@dataclass(frozen=True)
class Services:
    """Everything a session runner borrows from its bridge."""

    client: AsyncAnthropic  # the SDK's own retries off: `_retry.py` is the one retry policy
    streams: StreamPools  # where each session's long-lived stream connection comes from
    send_events: AsyncEvents  # where results and messages are posted (`post_once`)
    toolset: Toolset
    scheduler: Scheduler
    journal: Journal
    observer: Observer
    requests: anyio.CapacityLimiter  # API requests in flight across the bridge (Limits.max_requests)
    limits: Limits
    timeouts: Timeouts
    options: ServeOptions
    approvals: Approvals
    lease_check: Callable[[str], Awaitable[bool]] | None = None  # a fleet: is the session's lease surely ours?


class SessionRunner:
    """Serves one session until it ends, is detached, or the bridge shuts down."""

    def __init__(self, session_id: str, services: Services) -> None:
        self.session_id = session_id
        self.done = anyio.Event()
        self.error: BaseException | None = None
        self.fenced: str | None = None  # why the lease was lost, if it was
        self.handing_over = False  # stops at the next idle point (rebalancing)
        self._services = services
        self._watchers: list[MemoryObjectSendStream[Event]] = []
        self._tg: TaskGroup | None = None
        self._drain_deadline: float | None = None
        self._drain_scope: anyio.CancelScope | None = None  # the wait for running calls, while it lasts
        self.table = CallTable(owns=lambda name: services.options.unknown_tools == "answer" or name in services.toolset)
        self.poster = Poster(
            session_id,
            send_events=services.send_events,
            history=services.client.beta.sessions.events,
            journal=services.journal,
            observer=services.observer,
            limits=services.limits,
            timeouts=services.timeouts,
            wanted=self.table.wanted,
            settled=self.table.settled,
            requests=services.requests,
            lease_check=services.lease_check,
            on_fenced=self.fence,
        )
        self.executor = Executor(
            session_id,
            table=self.table,
            toolset=services.toolset,
            scheduler=services.scheduler,
            journal=services.journal,
            poster=self.poster,
            observer=services.observer,
            options=services.options,
            approvals=services.approvals,
        )
        self.executor.on_settled = self._maybe_hand_over
        self.intake = Intake(
            session_id,
            events=services.client.beta.sessions.events,
            handler=self._handle,
            timeouts=services.timeouts,
            observer=services.observer,
            requests=services.requests,
        )

    def __repr__(self) -> str:
        state = "done" if self.done.is_set() else "serving"
        return f"SessionRunner({self.session_id!r}, {state}, {self.table!r})"

    @property
    def ready(self) -> anyio.Event:
        """Set once the stream is open and the history read (from then on no event can be missed), or serving
        ended before that."""
        return self.intake.connected

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve the session; never raises an `Exception` (see `error`).

        Reports `task_status.started()` once the stream is connected and the history read (from then on no event
        can be missed), or once serving is over if it ends before that (a startup error is then in `error`).
        """
        stream_client = self._services.streams.acquire()
        self.intake.stream_events = stream_client.beta.sessions.events
        try:
            await self._serve(task_status)
        except* Exception as group:
            self.error = error = _first(group)
            operator = isinstance(error, OperatorError)
            (logger.warning if operator else logger.error)(
                "stopped serving: %s", error, exc_info=None if operator else error, extra=log_extra(self.session_id)
            )
        finally:
            self._services.streams.release(stream_client)
            self.done.set()
            if not self.ready.is_set():  # it ended before connecting: release who waits for it
                self.ready.set()
                task_status.started()
            for watcher in self._watchers:
                watcher.close()
            self._services.scheduler.forget_session(self.session_id)
            self._services.observer.forget_session(self.session_id)

    def begin_drain(self, deadline: float) -> None:
        """Stop taking new calls; let running ones finish until `deadline` (monotonic), then cancel them.

        Called again with an earlier deadline, it shortens the drain under way (`detach` during a shutdown, as a
        second SIGINT does); a later one never lengthens it.
        """
        if self._drain_deadline is None or deadline < self._drain_deadline:
            self._drain_deadline = deadline
            if self._drain_scope is not None:
                self._drain_scope.deadline = deadline
        self.intake.stop()

    def fence(self, reason: str = "lease lost") -> None:
        """The lease on the session was lost: stop everything for it now and post nothing more (idempotent).

        Running calls are cancelled and their results neither journaled nor posted; results waiting to be posted are
        kept back; the stream closes. The journal keeps the calls as they were, for the new owner to answer.
        """
        if self.fenced is not None or self.done.is_set():
            return
        self.fenced = reason
        self.poster.fence(reason)
        kept_back = self.executor.lease_lost(reason)
        observer = self._services.observer
        observer.count(Counter.SESSIONS_FENCED)
        observer.count(Counter.FENCED, kept_back)
        logger.warning(
            "lease lost (%s): stopped serving at once; %d open call(s) left to the new owner",
            reason,
            kept_back,
            extra=log_extra(self.session_id),
        )
        self.intake.stop()
        if self._drain_scope is not None:
            self._drain_scope.cancel()

    def hand_over(self) -> None:
        """Stop serving at the next idle point (no open call), so the session can move to another process."""
        self.handing_over = True
        self._maybe_hand_over()

    def _maybe_hand_over(self) -> None:
        if not self.handing_over or self.intake.stopped:
            return
        if len(self.table) == 0 and self.executor.running == 0 and self.poster.backlog == 0:
            logger.info("handing the session over at an idle point", extra=log_extra(self.session_id))
            self._services.observer.count(Counter.HANDED_OVER)
            self.intake.stop()

    async def _serve(self, task_status: TaskStatus[None]) -> None:
        if not await self._load_session():
            logger.info("session already ended; nothing to serve", extra=log_extra(self.session_id))
            return
        logger.info("serving session", extra=log_extra(self.session_id))
        outcomes, reports = anyio.create_memory_object_stream[PosterOutcome](max_buffer_size=1000)
        async with anyio.create_task_group() as tg:
            self._tg = tg
            tg.start_soon(self.poster.run, outcomes)
            tg.start_soon(self.executor.consume, reports)
            tg.start_soon(self.intake.reconciler.run)
            async with self.executor:
                await self.intake.run(task_status=task_status)
                if self.handing_over and self._drain_deadline is None and (len(self.table) or self.executor.running):
                    # a call slipped in as the hand-over began: finish and post it first, as a drain would
                    self._drain_deadline = anyio.current_time() + self._services.timeouts.drain
                if self._drain_deadline is not None and not self.table.ended:
                    await self._drain()
            tg.cancel_scope.cancel()
        reason = self.table.ended or ("handed over" if self.handing_over else "stopped by the bridge")
        logger.info("stopped serving: %s", reason, extra=log_extra(self.session_id))

    async def _retrieve(self) -> BetaManagedAgentsSession:
        async with self._services.requests:
            return await self._services.client.beta.sessions.retrieve(
                self.session_id, timeout=self._services.timeouts.request
            )

    async def _load_session(self) -> bool:
        """Read the session once: its metadata feeds ToolContext; a terminated session is not served."""
        policy = Retry(start=0.25, cap=self._services.timeouts.reconnect_max)
        attempts = Attempts(
            policy, f"session {self.session_id}", "reading the session", logger, log_extra(self.session_id)
        )
        session = await retrying(self._retrieve, attempts)
        self.executor.metadata = dict(session.metadata or {})
        if session.status == "terminated":
            await self._services.journal.abandon(self.session_id)
            return False
        return True

    async def _refresh_metadata(self) -> None:
        try:
            session = await self._retrieve()
        except Exception as exc:
            if classify(exc) is None:
                raise
            logger.warning("could not refresh metadata: %s", describe(exc), extra=log_extra(self.session_id))
            return
        self.executor.metadata = dict(session.metadata or {})

    async def _drain(self) -> None:
        assert self._drain_deadline is not None
        with anyio.CancelScope(deadline=self._drain_deadline) as self._drain_scope:  # `begin_drain` may shorten it
            await self.executor.wait_idle()
            await self.poster.wait_empty()
        self._drain_scope = None
        if self.executor.shutdown("shutdown"):
            # Cancelled calls answer at once (sync tools are abandoned, not awaited); give those answers a moment.
            with anyio.move_on_after(max(1.0, self._drain_deadline - anyio.current_time())):
                await self.executor.wait_idle()
                await self.poster.wait_empty()

    async def _handle(self, batch: list[Event], live: bool) -> None:
        """The intake's handler: every batch goes through the call table; updates and watchers after."""
        await self.executor.apply(batch, backfill=not live)
        if self.table.ended:
            self.intake.stop()
        self._maybe_hand_over()
        for event in batch:
            match event:
                case Updated(metadata=None) if self._tg is not None:
                    self._tg.start_soon(self._refresh_metadata)
                case Updated(metadata=metadata) if live and metadata is not None:
                    self.executor.metadata = dict(metadata)  # (the backfill's updates are older than the session)
                case _:
                    pass
        if live and self._watchers:
            for event in batch:
                self._fan_out(event)

    def _fan_out(self, event: Event) -> None:
        for watcher in list(self._watchers):
            try:
                watcher.send_nowait(event)
            except anyio.WouldBlock:
                logger.warning("a slow event watcher missed an event", extra=log_extra(self.session_id))
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._watchers.remove(watcher)

    @asynccontextmanager
    async def watch(self, buffer: int = 1000) -> AsyncIterator[MemoryObjectReceiveStream[Event]]:
        """Subscribe to the session's live events; the stream ends when serving ends."""
        send, receive = anyio.create_memory_object_stream[Event](max_buffer_size=max(1, buffer))
        if self.done.is_set():
            send.close()
        else:
            self._watchers.append(send)
        try:
            async with receive:
                yield receive
        finally:
            if send in self._watchers:
                self._watchers.remove(send)
            send.close()


def _first(group: BaseException) -> BaseException:
    while isinstance(group, BaseExceptionGroup) and group.exceptions:
        group = group.exceptions[0]
    return group
