"""`Bridge`: serves toolsets to Managed Agents sessions, many at once, from one task group.

```python
async with Bridge(client, [refund, lookup], timeout=30) as bridge:
    print(await bridge.ask(session.id, "Refund order 42"))   # tools are served while the agent works
```

The bridge owns one task group; each served session runs in it as a `SessionRunner` (stream, history, calls,
poster). Calls of every session share one `Scheduler`, so `Limits` hold across the process. Leaving the `async with`
block drains gracefully: no new calls are taken, running calls get `Timeouts.drain` seconds, then the rest are
cancelled and answered, and pending results are posted; then tools' resources and the journal are closed.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime
from types import TracebackType
from typing import Any, Literal

import anyio
from anthropic import AsyncAnthropic
from anyio.abc import TaskGroup

from ..journal import Journal, MemoryJournal
from ..tools import Toolset
from ._dispatch import ServeOptions
from ._intake import Event
from ._limits import Limits, Timeouts
from ._observe import BridgeStats, CallListener, Latency, Observer
from ._pools import StreamPools
from ._runner import Services, SessionRunner
from ._scheduler import Scheduler
from ._sdk import Failure, backoff, describe, recoverable
from ._sources import follow_agent

__all__ = ["Bridge"]

logger = logging.getLogger("bridge")

_DEFAULT: Any = object()


class Bridge:
    """Serves local tools to Managed Agents sessions.

    Args:
        client: An `AsyncAnthropic` client (its `base_url` may point at `bridge.testing.Emulator`).
        tools: What to serve: functions, `Tool`s, `Toolset`s, or a list of them.
        limits: Concurrency limits (`Limits()` by default).
        timeouts: Deadlines and backoff caps (`Timeouts()` by default).
        timeout: Default seconds a call may run when neither the tool nor its toolset sets a timeout; overrides
            `timeouts.tool`. `None` means no deadline.
        journal: Where each call's lifecycle is recorded; `MemoryJournal()` by default. Pass the SQLite journal to
            survive restarts without running a call twice.
        unknown_tools: For a call naming a tool this bridge does not serve: `"answer"` (default) posts an `is_error`
            result naming the tools it serves, since a call nobody answers hangs the session; `"leave"` leaves it
            pending for another client that serves it.
        log_inputs: Include tool inputs in debug log records (off by default: inputs may hold personal data).
        on_call: Called with every `CallEvent` (started, finished, failed, timed out, cancelled, ...).
        stream_client: The client that opens the sessions' event streams. Each stream holds one connection for as
            long as its session is served, so by default the bridge opens streams on copies of `client` with small
            connection pools of their own: hundreds of streams then neither use up the pool that result posts need
            nor slow each request down (httpx scans its pool on every request). A client whose `http_client` is not
            the SDK's default class (a custom transport) cannot be copied faithfully, so its streams share its
            pool; pass a second client here to keep them apart.
    """

    def __init__(
        self,
        client: AsyncAnthropic,
        tools: Any = (),
        *,
        limits: Limits | None = None,
        timeouts: Timeouts | None = None,
        timeout: float | None = _DEFAULT,
        journal: Journal | None = None,
        unknown_tools: Literal["answer", "leave"] = "answer",
        log_inputs: bool = False,
        on_call: CallListener | None = None,
        stream_client: AsyncAnthropic | None = None,
    ) -> None:
        self.client = client
        self._stream_client = stream_client
        self.toolset = tools if isinstance(tools, Toolset) else Toolset.coerce(tools)
        self.limits = limits or Limits()
        self.timeouts = timeouts or Timeouts()
        self.journal: Journal = journal if journal is not None else MemoryJournal()
        self._options = ServeOptions(
            default_timeout=self.timeouts.tool if timeout is _DEFAULT else timeout,
            unknown_tools=unknown_tools,
            log_inputs=log_inputs,
        )
        self._observer = Observer()
        if on_call is not None:
            self._observer.add_listener(on_call)
        self._scheduler = Scheduler(self.limits, on_released=self._released)
        self._runners: dict[str, SessionRunner] = {}
        self._services: Services | None = None
        self._tg: TaskGroup | None = None
        self._stack: AsyncExitStack | None = None
        self._closing = False

    def __repr__(self) -> str:
        return f"<Bridge {self.toolset!r} sessions={len(self._runners)} {self.limits!r}>"

    # -- lifecycle -------------------------------------------------------------------------------------------------

    async def __aenter__(self) -> Bridge:
        if self._stack is not None:
            raise RuntimeError("this Bridge is already running; use it once with `async with`")
        async with AsyncExitStack() as stack:
            await self.journal.open()
            stack.push_async_callback(self.journal.close)
            if not self.toolset.is_open:
                await stack.enter_async_context(self.toolset)
            await stack.enter_async_context(self._scheduler)
            streams = StreamPools(self.client, self._stream_client)
            stack.push_async_callback(streams.aclose)
            self._tg = await stack.enter_async_context(anyio.create_task_group())
            self._services = Services(
                client=self.client,
                streams=streams,
                send_events=self.client.with_options(max_retries=0).beta.sessions.events,
                toolset=self.toolset,
                scheduler=self._scheduler,
                journal=self.journal,
                observer=self._observer,
                requests=anyio.CapacityLimiter(self.limits.max_requests),
                limits=self.limits,
                timeouts=self.timeouts,
                options=self._options,
            )
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        stack, self._stack = self._stack, None
        if stack is None:
            return
        self._closing = True
        try:
            await self._drain()
        finally:
            if self._tg is not None:
                self._tg.cancel_scope.cancel()
            await stack.__aexit__(exc_type, exc, tb)
            self._tg = self._services = None

    async def _drain(self) -> None:
        runners = list(self._runners.values())
        if not runners:
            return
        deadline = anyio.current_time() + self.timeouts.drain
        for runner in runners:
            runner.begin_drain(deadline)
        with anyio.move_on_after(self.timeouts.drain + 2.0, shield=True):
            for runner in runners:
                await runner.done.wait()

    # -- serving ---------------------------------------------------------------------------------------------------

    def _runner(self, session_id: str) -> SessionRunner:
        if self._tg is None or self._services is None or self._closing:
            raise RuntimeError("the Bridge is not running: serve sessions inside `async with Bridge(...) as bridge:`")
        runner = self._runners.get(session_id)
        if runner is None:
            runner = self._runners[session_id] = SessionRunner(session_id, self._services)

            async def run() -> None:
                try:
                    await runner.run()
                finally:
                    if self._runners.get(session_id) is runner:
                        del self._runners[session_id]

            self._tg.start_soon(run)
        return runner

    def attach(self, *session_ids: str) -> None:
        """Serve these sessions in the background until they end (errors are logged; `serve` raises them)."""
        for session_id in session_ids:
            self._runner(session_id)

    def detach(self, session_id: str) -> None:
        """Stop serving a session now: running calls are cancelled and answered, then its stream is closed.

        During a shutdown it cuts that session's drain short (the daemon does this on a second SIGINT/SIGTERM).
        """
        runner = self._runners.get(session_id)
        if runner is not None:
            runner.begin_drain(anyio.current_time())

    async def serve(self, session_id: str) -> None:
        """Serve one session until it ends (terminated or deleted) or the bridge closes.

        Raises:
            APIAccessError: The API refused the key for this session (401/403).
            SessionNotFoundError: The session does not exist or was deleted before serving began (404).
        """
        runner = self._runner(session_id)
        await runner.done.wait()
        if runner.error is not None:
            raise runner.error

    async def serve_agent(self, agent_id: str, *, poll_interval: float | None = None) -> None:
        """Serve every live session of an agent, and each new one as it appears, until cancelled or closed.

        Raises:
            APIAccessError: The key cannot read the agent or its sessions.
            SessionNotFoundError: The agent does not exist.
        """
        await follow_agent(
            self.client,
            agent_id,
            lambda session_id: None if self._closing else self.attach(session_id),
            poll_interval=poll_interval or self.timeouts.agent_poll,
            request_timeout=self.timeouts.request,
        )

    @property
    def sessions(self) -> list[str]:
        """Ids of the sessions being served now."""
        return list(self._runners)

    # -- for the embedding app -------------------------------------------------------------------------------------

    @asynccontextmanager
    async def watch(self, session_id: str, *, buffer: int = 1000) -> AsyncIterator[AsyncIterator[Event]]:
        """The session's live events (agent messages, status changes, tool calls...), from the bridge's own stream.

        ```python
        async with bridge.watch(session.id) as events:
            async for event in events:
                if event.type == "agent.message": ...
        ```

        Serves the session if it is not served yet. The iterator ends when serving ends. A watcher that falls
        `buffer` events behind misses events (logged) rather than slowing the bridge down.
        """
        runner = self._runner(session_id)
        async with runner.watch(buffer) as events:
            yield events

    async def ask(self, session_id: str, text: str) -> str:
        """Send a user message and return the agent's reply once its turn ends; tools are served meanwhile.

        Args:
            session_id: The session to talk to (served from now on if it was not).
            text: The user message.

        Returns:
            The text of the agent's messages in that turn, joined by blank lines. Wrap the call in
            `anyio.fail_after(...)` to bound the wait.

        Raises:
            APIAccessError / SessionNotFoundError: The session cannot be served.
        """
        runner = self._runner(session_id)
        async with anyio.create_task_group() as tg:  # wait for the stream, or for a failure to start serving
            tg.start_soon(_set_when, runner.done, tg)
            await runner.connected.wait()
            tg.cancel_scope.cancel()
        if runner.error is not None:
            raise runner.error
        replies: list[str] = []
        async with runner.watch() as events:
            mine = await self._send_message(session_id, text)
            seen_mine = mine is None
            async for event in events:
                if event.id == mine:
                    seen_mine, replies = True, []
                elif event.type == "agent.message":
                    replies.extend(block.text for block in event.content if block.type == "text")
                elif _turn_over(event, seen_mine):
                    break
        if runner.error is not None:
            raise runner.error
        return "\n\n".join(replies)

    async def _send_message(self, session_id: str, text: str) -> str | None:
        """Post a user message exactly once (no blind retries: a lost response is checked against the history)."""
        assert self._services is not None
        message = {"type": "user.message", "content": [{"type": "text", "text": text}]}
        attempt = 0
        since: datetime | None = None
        while True:
            try:
                if attempt and since is not None:
                    history = self.client.beta.sessions.events.list(
                        session_id, types=["user.message"], created_at_gte=since, order="asc"
                    )
                    found: list[Any] = [event async for event in history]
                    for event in found:
                        if [b.text for b in event.content or () if b.type == "text"] == [text]:
                            return str(event.id)
                async with self._services.requests:
                    sent = await self._services.send_events.send(session_id, events=[message])  # type: ignore[list-item]
                data = sent.data or []
                return str(data[0].id) if data else None
            except Exception as exc:
                kind = recoverable(exc, f"session {session_id}")
                if kind is Failure.REJECTED:
                    raise
                attempt += 1
                if since is None:
                    since = datetime.now().astimezone()
                delay = backoff(attempt, start=0.25, cap=self.timeouts.post_backoff_max)
                logger.warning("sending the user message failed (%s); retrying", describe(exc))
                await anyio.sleep(delay)

    def add_listener(self, listener: CallListener) -> Callable[[], None]:
        """Receive every `CallEvent` from now on; returns a function that unsubscribes."""
        return self._observer.add_listener(listener)

    def stats(self) -> BridgeStats:
        """Counts and latencies of the whole bridge (cheap; call it as often as you like)."""
        counters = self._observer.counters
        return BridgeStats(
            sessions=len(self._runners),
            running=self._scheduler.running,
            queued=self._scheduler.queued,
            abandoned_threads=self._scheduler.abandoned_threads,
            call_latency=Latency.of(self._observer.call_durations),
            answer_latency=Latency.of(self._observer.answer_durations),
            **counters,
        )

    def _released(self, ticket: Any) -> None:
        from ._observe import CallEvent, CallEventKind

        self._observer.emit(
            CallEvent(CallEventKind.RELEASED, ticket.session_id, ticket.tool_use_id, ticket.tool, ticket.thread_id)
        )


def _turn_over(event: Event, seen_mine: bool) -> bool:
    """The session ended, or went idle for a reason other than waiting on tools after our message."""
    if event.type in ("session.status_terminated", "session.deleted"):
        return True
    return bool(seen_mine and event.type == "session.status_idle" and event.stop_reason.type != "requires_action")


async def _set_when(event: anyio.Event, tg: TaskGroup) -> None:
    await event.wait()
    tg.cancel_scope.cancel()
