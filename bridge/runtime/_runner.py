"""Serving one session: its intake, dispatcher, poster and call tasks under one task group, from start to end.

```
SessionRunner.run
├── session lookup (metadata for ToolContext; a session already terminated ends here)
└── task group
    ├── poster.run                    posts batches of results
    ├── reconciler.run                the periodic reconciliation sweep (the stream may skip events)
    └── (body) task group of calls    one task per call, started by the dispatcher
        └── intake.run                stream + history -> dispatcher.handle -> watchers
```

A runner ends when its session ends (terminated or deleted), when it is detached or the bridge shuts down (a
graceful drain: no new calls, running ones get until the drain deadline, then are cancelled and answered), or on an
operator error (401/403/404), which is kept in `error` for `Bridge.serve` to raise. Any other exception is a bug; it
is logged and kept too, so one broken session never takes the others down.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
from anthropic import AsyncAnthropic
from anthropic.resources.beta.sessions.events import AsyncEvents
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .._errors import OperatorError
from ..journal import Journal
from ..tools import Toolset
from ._dispatch import Dispatcher, ServeOptions
from ._intake import Event, Intake
from ._limits import Limits, Timeouts
from ._observe import Observer, log_extra
from ._pools import StreamPools
from ._poster import Poster
from ._reconcile import Reconciler
from ._scheduler import Scheduler
from ._sdk import backoff, classify, describe, recoverable

__all__ = ["Services", "SessionRunner"]

logger = logging.getLogger("bridge.session")


@dataclass(frozen=True)
class Services:
    """Everything a session runner borrows from its bridge."""

    client: AsyncAnthropic
    streams: StreamPools  # where each session's long-lived stream connection comes from
    send_events: AsyncEvents  # no SDK retries: the poster decides what may be re-sent
    toolset: Toolset
    scheduler: Scheduler
    journal: Journal
    observer: Observer
    requests: anyio.CapacityLimiter  # API requests in flight across the bridge (Limits.max_requests)
    limits: Limits
    timeouts: Timeouts
    options: ServeOptions


class SessionRunner:
    """Serves one session until it ends, is detached, or the bridge shuts down."""

    def __init__(self, session_id: str, services: Services) -> None:
        self.session_id = session_id
        self.done = anyio.Event()
        self.error: BaseException | None = None
        self._services = services
        self._watchers: list[MemoryObjectSendStream[Event]] = []
        self._calls_tg: TaskGroup | None = None
        self._tg: TaskGroup | None = None
        self._active = 0
        self._calls_idle = anyio.Event()
        self._calls_idle.set()
        self._drain_deadline: float | None = None
        self._drain_scope: anyio.CancelScope | None = None  # the wait for running calls, while it lasts
        self.poster = Poster(
            session_id,
            send_events=services.send_events,
            history=services.client.beta.sessions.events,
            journal=services.journal,
            observer=services.observer,
            limits=services.limits,
            timeouts=services.timeouts,
            wanted=lambda item: self.dispatcher.wants(item),
            on_drop=lambda item, reason: self.dispatcher.dropped_by_poster(item, reason),
            requests=services.requests,
        )
        self.dispatcher = Dispatcher(
            session_id,
            toolset=services.toolset,
            scheduler=services.scheduler,
            journal=services.journal,
            poster=self.poster,
            observer=services.observer,
            options=services.options,
            spawn=self._spawn,
            on_end=lambda _reason: self.intake.stop(),
        )
        self.intake = Intake(
            session_id,
            events=services.client.beta.sessions.events,
            handler=self._handle,
            timeouts=services.timeouts,
            observer=services.observer,
            requests=services.requests,
            on_idle=lambda idle: self.reconciler.check(idle),
        )
        self.reconciler = Reconciler(
            session_id,
            events=services.client.beta.sessions.events,
            intake=self.intake,
            timeouts=services.timeouts,
            observer=services.observer,
            requests=services.requests,
        )

    def __repr__(self) -> str:
        state = "done" if self.done.is_set() else "serving"
        return f"SessionRunner({self.session_id!r}, {state}, calls={self._active})"

    @property
    def connected(self) -> anyio.Event:
        """Set once the stream is open and the history read: from then on no event can be missed."""
        return self.intake.connected

    async def run(self) -> None:
        """Serve the session; never raises an `Exception` (see `error`)."""
        stream_client = self._services.streams.acquire()
        self.intake.stream_events = stream_client.beta.sessions.events
        try:
            await self._serve()
        except* Exception as group:
            self.error = error = _first(group)
            operator = isinstance(error, OperatorError)
            (logger.warning if operator else logger.error)(
                "stopped serving: %s", error, exc_info=None if operator else error, extra=log_extra(self.session_id)
            )
        finally:
            self._services.streams.release(stream_client)
            self.done.set()
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

    async def _serve(self) -> None:
        if not await self._load_session():
            logger.info("session already ended; nothing to serve", extra=log_extra(self.session_id))
            return
        logger.info("serving session", extra=log_extra(self.session_id))
        async with anyio.create_task_group() as tg:
            self._tg = tg
            tg.start_soon(self.poster.run)
            tg.start_soon(self.reconciler.run)
            async with anyio.create_task_group() as calls:
                self._calls_tg = calls
                await self.intake.run()
                if self._drain_deadline is not None and not self.dispatcher.ended:
                    await self._drain()
                calls.cancel_scope.cancel()
            tg.cancel_scope.cancel()
        reason = self.dispatcher.ended or "stopped by the bridge"
        logger.info("stopped serving: %s", reason, extra=log_extra(self.session_id))

    async def _load_session(self) -> bool:
        """Read the session once: its metadata feeds ToolContext; a terminated session is not served."""
        sessions = self._services.client.beta.sessions
        attempt = 0
        while True:
            try:
                async with self._services.requests:
                    session = await sessions.retrieve(self.session_id, timeout=self._services.timeouts.request)
                break
            except Exception as exc:
                recoverable(exc, f"session {self.session_id}")
                attempt += 1
                delay = backoff(attempt, start=0.25, cap=self._services.timeouts.reconnect_max)
                logger.warning(
                    "reading the session failed (%s); retrying", describe(exc), extra=log_extra(self.session_id)
                )
                await anyio.sleep(delay)
        self.dispatcher.metadata = dict(session.metadata or {})
        if session.status == "terminated":
            await self.dispatcher.end("session terminated")
            return False
        return True

    async def _refresh_metadata(self) -> None:
        try:
            session = await self._services.client.beta.sessions.retrieve(
                self.session_id, timeout=self._services.timeouts.request
            )
        except Exception as exc:
            if classify(exc) is None:
                raise
            logger.warning("could not refresh metadata: %s", describe(exc), extra=log_extra(self.session_id))
            return
        self.dispatcher.metadata = dict(session.metadata or {})

    async def _drain(self) -> None:
        assert self._drain_deadline is not None
        with anyio.CancelScope(deadline=self._drain_deadline) as self._drain_scope:  # `begin_drain` may shorten it
            await self._calls_idle.wait()
            await self.poster.wait_empty()
        self._drain_scope = None
        if self.dispatcher.cancel_running("shutdown"):
            # Cancelled calls answer at once (sync tools are abandoned, not awaited); give those answers a moment.
            with anyio.move_on_after(max(1.0, self._drain_deadline - anyio.current_time())):
                await self._calls_idle.wait()
                await self.poster.wait_empty()

    def _spawn(self, fn: Callable[[], Awaitable[None]]) -> None:
        if self._calls_tg is None:
            raise RuntimeError("calls can only start while the session is served")
        self._active += 1
        if self._calls_idle.is_set():
            self._calls_idle = anyio.Event()

        async def call() -> None:
            try:
                await fn()
            finally:
                self._active -= 1
                if self._active == 0:
                    self._calls_idle.set()

        self._calls_tg.start_soon(call)

    async def _handle(self, batch: list[Event], live: bool) -> None:
        await self.dispatcher.handle(batch, live)
        for event in batch:
            if event.type == "session.updated" and getattr(event, "metadata", None) is None and self._tg is not None:
                self._tg.start_soon(self._refresh_metadata)
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
