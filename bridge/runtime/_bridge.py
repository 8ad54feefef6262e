"""`Bridge`: serves toolsets to Managed Agents sessions, many at once, from one task group.

```python
async with Bridge(client, [refund, lookup], timeout=30) as bridge:
    print(await bridge.ask(session.id, "Refund order 42"))   # tools are served while the agent works
```

The bridge owns one task group; each served session runs in it as a `SessionRunner` (stream, history, calls,
poster). Calls of every session share one `Scheduler`, so `Limits` hold across the process. Leaving the `async with`
block drains gracefully: no new calls are taken, running calls get `Timeouts.drain` seconds, then the rest are
cancelled and answered, and pending results are posted; then tools' resources and the journal are closed.

With `leases` the bridge is a member of a fleet (`_fleet.py`): it serves the sessions it holds leases on, stops a
session at once when its lease is lost (`fence`), hands sessions over at idle points to rebalance, and on leaving
releases its leases after the drain so the other members take over at once.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from types import TracebackType
from typing import Any, Literal

import anyio
from anthropic import AsyncAnthropic
from anthropic.types.beta.sessions import BetaManagedAgentsUserMessageEventParams
from anyio.abc import TaskGroup, TaskStatus

from ..journal import Journal, MemoryJournal, SessionLeases
from ..tools import ApprovalPolicy, Toolset, check_policy
from ._approvals import Approvals, ApprovalSettings
from ._events import AgentMessage, Deleted, Event, Idle, RequiresAction, Terminated, TextBlock, UserMessage, type_name
from ._executor import ServeOptions
from ._fleet import FleetMember
from ._limits import Limits, Timeouts
from ._observe import BridgeStats, CallEvent, CallEventKind, CallListener, Counter, Latency, Observer, PostListener
from ._pools import StreamPools
from ._retry import Attempts, Retry, post_once
from ._runner import Services, SessionRunner
from ._scheduler import Scheduler, Ticket
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
        on_post: Called with a `PostEvent` after every result POST (its batch, outcome, retries and duration).
        approval: The approval policy of tools whose tool and toolset set none (`"allow"`, `"deny"`, `"ask"`, an
            `Approval` or a function; see `Approval`). Unset everywhere allows. Decide parked calls through
            `bridge.approvals`.
        approvals: How long parked calls wait and what a timeout means (`ApprovalSettings()` by default).
        stream_client: The client that opens the sessions' event streams. Each stream holds one connection for as
            long as its session is served, so by default the bridge opens streams on copies of `client` with small
            connection pools of their own: hundreds of streams then neither use up the pool that result posts need
            nor slow each request down (httpx scans its pool on every request). A client whose `http_client` is not
            the SDK's default class (a custom transport) cannot be copied faithfully, so its streams share its
            pool; pass a second client here to keep them apart.
        leases: Makes this bridge a fleet member (`bridge.fleet`): sessions are offered to the fleet
            (`bridge.fleet.offer`, `serve_agent`) and served while this process holds their lease; every post is
            checked against the lease first. Pair it with `PostgresJournal(dsn, leases=leases)` (fenced journal
            writes) and, for the last check at the socket, `bridge.fleet.fleet_http_client(may_post=...)`.
        rebalance: In a fleet, hand sessions over at idle points while holding more than the fair share.
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
        approval: ApprovalPolicy | None = None,
        approvals: ApprovalSettings | None = None,
        on_post: PostListener | None = None,
        leases: SessionLeases | None = None,
        rebalance: bool = True,
    ) -> None:
        self.client = client
        self.leases = leases
        self.fleet: FleetMember | None = FleetMember(self, leases, rebalance=rebalance) if leases else None
        """The fleet membership (with `leases`): `offer()` sessions, `stats()`; None outside a fleet."""
        self._stream_client = stream_client
        self.toolset = tools if isinstance(tools, Toolset) else Toolset.coerce(tools)
        self.limits = limits or Limits()
        self.timeouts = timeouts or Timeouts()
        self.journal: Journal = journal if journal is not None else MemoryJournal()
        self._options = ServeOptions(
            default_timeout=self.timeouts.tool if timeout is _DEFAULT else timeout,
            unknown_tools=unknown_tools,
            log_inputs=log_inputs,
            approval=check_policy(approval),
        )
        self.approvals = Approvals(self.journal, approvals)
        """The calls waiting for approval, and `approve()` / `deny()` to decide them."""
        self._observer = Observer()
        if on_call is not None:
            self._observer.add_listener(on_call)
        if on_post is not None:
            self._observer.add_post_listener(on_post)
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
            leases = self.leases
            if leases is not None and not leases.is_open:
                await leases.open()
                stack.push_async_callback(leases.close)
            await self.journal.open()
            stack.push_async_callback(self.journal.close)
            if not self.toolset.is_open:
                await stack.enter_async_context(self.toolset)
            await stack.enter_async_context(self._scheduler)
            # Every request goes through the one retry policy (`_retry.py`): the SDK's own retries are off, so a
            # POST is never blindly re-sent and every wait is logged and bounded the same way.
            api = self.client.with_options(max_retries=0)
            stream_client = self._stream_client.with_options(max_retries=0) if self._stream_client else None
            streams = StreamPools(api, stream_client)
            stack.push_async_callback(streams.aclose)
            self._tg = await stack.enter_async_context(anyio.create_task_group())
            self._services = Services(
                client=api,
                streams=streams,
                send_events=api.beta.sessions.events,
                toolset=self.toolset,
                scheduler=self._scheduler,
                journal=self.journal,
                observer=self._observer,
                requests=anyio.CapacityLimiter(self.limits.max_requests),
                limits=self.limits,
                timeouts=self.timeouts,
                options=self._options,
                approvals=self.approvals,
                lease_check=None if leases is None else leases.sure,
            )
            self._tg.start_soon(self.approvals.poll)
            if self.fleet is not None:
                await self._tg.start(self.fleet.run)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        stack, self._stack = self._stack, None
        if stack is None:
            return
        self._closing = True
        if self.fleet is not None:
            self.fleet.stop()
        try:
            await self._drain()
            if self.fleet is not None:
                await self.fleet.step_down()  # after the drain: the others take the sessions over at once
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

    def _runner(self, session_id: str) -> tuple[SessionRunner, bool]:
        """The session's runner, and whether it is new (then the caller starts it)."""
        if self._tg is None or self._services is None or self._closing:
            raise RuntimeError("the Bridge is not running: serve sessions inside `async with Bridge(...) as bridge:`")
        runner = self._runners.get(session_id)
        if runner is not None and not runner.done.is_set():
            return runner, False
        runner = self._runners[session_id] = SessionRunner(session_id, self._services)
        return runner, True

    async def _run(self, runner: SessionRunner, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        try:
            await runner.run(task_status=task_status)
        finally:
            if self._runners.get(runner.session_id) is runner:
                del self._runners[runner.session_id]

    async def _serving(self, session_id: str) -> SessionRunner:
        """The session's runner, once its stream is connected (or it ended); raises an error it ended with."""
        runner, new = self._runner(session_id)
        if new:
            assert self._tg is not None
            await self._tg.start(self._run, runner)
        else:
            await runner.ready.wait()
        if runner.error is not None:
            raise runner.error
        return runner

    def attach(self, *session_ids: str) -> None:
        """Serve these sessions in the background until they end (errors are logged; `serve` raises them)."""
        for session_id in session_ids:
            runner, new = self._runner(session_id)
            if new:
                assert self._tg is not None
                self._tg.start_soon(self._run, runner)

    def detach(self, session_id: str) -> None:
        """Stop serving a session now: running calls are cancelled and answered, then its stream is closed.

        During a shutdown it cuts that session's drain short (the daemon does this on a second SIGINT/SIGTERM).
        """
        runner = self._runners.get(session_id)
        if runner is not None:
            runner.begin_drain(anyio.current_time())

    def fence(self, session_id: str, reason: str = "lease lost") -> None:
        """This process lost the session's lease: stop serving it at once and post nothing more for it.

        Unlike `detach`, running calls are cancelled without being answered and nothing is journaled or posted: the
        session's new owner answers them from the journal (a started non-idempotent call as "outcome unknown").
        A fleet member calls this itself; it is public for apps that run their own leases.
        """
        runner = self._runners.get(session_id)
        if runner is not None:
            runner.fence(reason)

    def _hand_over(self, session_id: str) -> bool:
        """Stop serving the session at its next idle point (rebalancing); False if it is not served."""
        runner = self._runners.get(session_id)
        if runner is None or runner.done.is_set() or runner.handing_over:
            return False
        runner.hand_over()
        return True

    def _spawn(self, fn: Callable[..., Any], *args: Any) -> None:
        if self._tg is not None and not self._closing:
            self._tg.start_soon(fn, *args)

    async def serve(self, session_id: str) -> None:
        """Serve one session until it ends (terminated or deleted) or the bridge closes.

        Raises:
            APIAccessError: The API refused the key for this session (401/403).
            SessionNotFoundError: The session does not exist or was deleted before serving began (404).
        """
        runner = await self._serving(session_id)
        await runner.done.wait()
        if runner.error is not None:
            raise runner.error

    async def serve_agent(self, agent_id: str, *, poll_interval: float | None = None) -> None:
        """Serve every live session of an agent, and each new one as it appears, until cancelled or closed.

        Raises:
            APIAccessError: The key cannot read the agent or its sessions.
            SessionNotFoundError: The agent does not exist.
        """
        if self._services is None:
            raise RuntimeError("the Bridge is not running: serve sessions inside `async with Bridge(...) as bridge:`")
        if self.fleet is not None:  # offered to the fleet: served here once claimed
            await self.fleet.offer_agent_sessions(agent_id, poll_interval or self.timeouts.agent_poll)
            return
        await follow_agent(
            self._services.client,
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
        self.attach(session_id)
        async with self._runners[session_id].watch(buffer) as events:
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
        runner = await self._serving(session_id)
        replies: list[str] = []
        async with runner.watch() as events:
            mine = await self._send_message(runner, text)
            seen_mine = mine is None
            async for event in events:
                match event:
                    case UserMessage(id=event_id) if event_id == mine:
                        seen_mine, replies = True, []
                    case AgentMessage(content=content):
                        replies.extend(block.text for block in content if isinstance(block, TextBlock))
                    case _ if _turn_over(event, seen_mine):
                        break
                    case _:
                        pass
        if runner.error is not None:
            raise runner.error
        return "\n\n".join(replies)

    async def _send_message(self, runner: SessionRunner, text: str) -> str | None:
        """Post a user message exactly once: a lost response is checked against the history, never blindly re-sent.

        The history check reads from the newest event seen on the session's stream *before* the first attempt (the
        session's own clock), so the message a failed attempt stored is always found.
        """
        assert self._services is not None
        session_id = runner.session_id
        message: BetaManagedAgentsUserMessageEventParams = {
            "type": "user.message",
            "content": [{"type": "text", "text": text}],
        }

        def stored_as(event: Event) -> str | None:
            match event:
                case UserMessage(content=content) if [b.text for b in content if isinstance(b, TextBlock)] == [text]:
                    return "mine"
                case _:
                    return None

        delivery = await post_once(
            [message],
            session_id=session_id,
            send=self._services.send_events,
            history=self._services.client.beta.sessions.events,
            event=lambda params: params,
            stored_as=stored_as,
            key=lambda params: "mine",
            since=runner.intake.watermark,
            history_types=[type_name(UserMessage)],
            attempts=Attempts(
                Retry(start=0.25, cap=self.timeouts.post_backoff_max),
                f"session {session_id}",
                "sending the user message",
                logger,
            ),
            requests=self._services.requests,
            request_timeout=self.timeouts.request,
        )
        if delivery.landed:
            return delivery.landed[0][1]
        return delivery.stored[0].id if delivery.stored else None

    def add_listener(self, listener: CallListener) -> Callable[[], None]:
        """Receive every `CallEvent` from now on; returns a function that unsubscribes."""
        return self._observer.add_listener(listener)

    def add_post_listener(self, listener: PostListener) -> Callable[[], None]:
        """Receive a `PostEvent` after every result POST from now on; returns a function that unsubscribes."""
        return self._observer.add_post_listener(listener)

    def stats(self) -> BridgeStats:
        """Counts and latencies of the whole bridge (cheap; call it as often as you like)."""
        count = self._observer.counters
        leases = self.leases.stats() if self.leases is not None else None
        return BridgeStats(
            sessions=len(self._runners),
            running=self._scheduler.running,
            queued=self._scheduler.queued,
            awaiting_approval=len(self.approvals),
            abandoned_threads=self._scheduler.abandoned_threads,
            call_latency=Latency.of(self._observer.call_durations),
            answer_latency=Latency.of(self._observer.answer_durations),
            received=count[Counter.RECEIVED],
            finished=count[Counter.FINISHED],
            failed=count[Counter.FAILED],
            timed_out=count[Counter.TIMED_OUT],
            cancelled=count[Counter.CANCELLED],
            posted=count[Counter.POSTED],
            dropped=count[Counter.DROPPED],
            posts=count[Counter.POSTS],
            post_retries=count[Counter.POST_RETRIES],
            duplicates_prevented=count[Counter.DUPLICATES_PREVENTED],
            reconnects=count[Counter.RECONNECTS],
            reconciled=count[Counter.RECONCILED],
            fenced=count[Counter.FENCED],
            sessions_fenced=count[Counter.SESSIONS_FENCED],
            handed_over=count[Counter.HANDED_OVER],
            leases_held=leases.held if leases else 0,
            leases_claimed=leases.claimed_total if leases else 0,
            leases_lost=leases.lost_total if leases else 0,
            leases_released=leases.released_total if leases else 0,
        )

    def _released(self, ticket: Ticket) -> None:
        self._observer.emit(
            CallEvent(CallEventKind.RELEASED, ticket.session_id, ticket.tool_use_id, ticket.tool, ticket.thread_id)
        )


def _turn_over(event: Event, seen_mine: bool) -> bool:
    """The session ended, or went idle for a reason other than waiting on tools after our message."""
    match event:
        case Terminated() | Deleted():
            return True
        case Idle():
            return seen_mine and not isinstance(event.stop_reason, RequiresAction)
        case _:
            return False
