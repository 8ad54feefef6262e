"""`bridge run`: serve sessions until told to stop, then drain and exit 0.

The daemon is a thin shell around `Bridge`: it turns arguments and `bridge.toml` into a toolset, `Limits`, a journal
and a client, checks the agent's definitions against what it serves, and owns the process concerns the library must
not: signals, the health endpoint, the terminal. `bridge demo` runs this same `serve()` against the embedded emulator,
so the demo exercises the production path.

Shutdown: the first SIGINT/SIGTERM stops taking new sessions and lets in-flight calls finish and post their results
(the runtime's drain, bounded by `Timeouts.drain`); the process then exits 0. A second signal cancels the calls still
running (each is answered as cancelled, so no session is left waiting) and the process exits 130.

Garbage collection: with the live heap of hundreds of sessions, Python's default thresholds make the collector pause
every session at once, often (measured with `bench/`, 1,000 sessions: p99 overhead 1.9 s by default, 0.19 s with
`GC_THRESHOLD`). The library must not change a process-wide setting, but the daemon owns its process, so it raises
the threshold unless `--no-gc-threshold` is given.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import logging
import signal
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskStatus

from .._errors import ConfigError
from ..agents import diff_tools, fetch_agent_tools
from ..fleet import Budget, PostgresBudget, WebhookReceiver, fleet_http_client
from ..journal import Journal, MemoryJournal, PostgresJournal, SessionLeases, describe_dsn
from ..runtime import ApprovalSettings, Limits, Timeouts
from ._config import build_limits
from ._console import Console, format_status, live_console
from ._fleet import FleetPlan, is_postgres_url, make_budget, serve_webhooks
from ._health import HealthServer
from ._otel import configure_tracing
from ._policy import approval_plan

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

    from ..tools import ApprovalPolicy, Toolset
    from ._config import Config

__all__ = [
    "AbandonedThreads",
    "ServePlan",
    "approval_plan",
    "build_limits",
    "journal_path",
    "open_journal",
    "run_daemon",
    "serve",
    "wait_for_threads",
    "warn_drift",
]

log = logging.getLogger("bridge.cli")

DEFAULT_STATE_DIR = Path(".bridge")
GC_THRESHOLD = (100_000, 50, 100)
STATUS_REFRESH = 0.5


@dataclass(frozen=True)
class ServePlan:
    """Everything `serve()` needs besides the client and the tools."""

    sessions: tuple[str, ...] = ()
    agent: str | None = None
    limits: Limits = dataclasses.field(default_factory=Limits)
    timeouts: Timeouts = dataclasses.field(default_factory=Timeouts)
    timeout: float | None = None
    journal: str = "memory"
    health_host: str = "127.0.0.1"
    health_port: int | None = None
    fleet: FleetPlan = dataclasses.field(default_factory=FleetPlan)
    approval: ApprovalPolicy | None = None  # bridge.toml's [approvals.tools] patterns, as one policy
    approvals: ApprovalSettings = dataclasses.field(default_factory=ApprovalSettings)
    approvals_token: str | None = dataclasses.field(default=None, repr=False)
    tracer_provider: Any = dataclasses.field(default=None, repr=False)  # --otel: spans of calls and POSTs go here


async def run_daemon(
    args: argparse.Namespace, environ: Mapping[str, str], threads: AbandonedThreads | None = None
) -> int:
    """Run `bridge run` with parsed arguments; returns the exit code (`threads` learns of abandoned sync tools)."""
    from ._setup import load_config_for, load_tools, make_client

    if args.gc_threshold:
        gc.set_threshold(*GC_THRESHOLD)
    config = load_config_for(args, environ)
    sessions = tuple(args.session) or config.sessions
    agent = args.agent or config.agent
    webhook_port = getattr(args, "webhook_port", None)
    if not sessions and not agent and webhook_port is None:
        raise ConfigError(
            "nothing to serve: give --session ID (repeatable), --agent ID or --webhook-port PORT, "
            "or set them in bridge.toml"
        )
    toolset = load_tools(args, config, environ)
    limits, timeouts = build_limits(config.limits, config.timeouts, max_concurrency=args.max_concurrency)
    fleet = FleetPlan(
        dsn=args.journal if is_postgres_url(args.journal) else None,
        lease_ttl=getattr(args, "lease_ttl", None) or 15.0,
        webhook_port=webhook_port,
        webhook_host=getattr(args, "webhook_host", None) or "127.0.0.1",
        webhook_key=environ.get("ANTHROPIC_WEBHOOK_SIGNING_KEY") if webhook_port is not None else None,
        rate_limit=getattr(args, "rate_limit", None),
        rate_burst=getattr(args, "rate_burst", None),
    )
    if webhook_port is not None and not fleet.webhook_key:
        raise ConfigError("--webhook-port needs the signing key (whsec_...) in ANTHROPIC_WEBHOOK_SIGNING_KEY")
    leases: SessionLeases | None = None
    if fleet.dsn is not None:
        leases = SessionLeases(fleet.dsn, ttl=fleet.lease_ttl, pool_size=16)
        journal: Journal = PostgresJournal(fleet.dsn, leases=leases)
        label = f"postgresql {describe_dsn(fleet.dsn)} (fleet member {leases.owner_id})"
    else:
        journal, label = open_journal(args.journal, args.state_dir, config)
    budget = make_budget(fleet, leases.db if leases is not None else None)
    health_port = args.health_port if args.health_port is not None else config.health_port
    approval, approval_settings = approval_plan(config.approvals)
    tracer_provider = configure_tracing(environ) if getattr(args, "otel", False) or config.otel else None
    plan = ServePlan(
        sessions=sessions,
        agent=agent,
        limits=limits,
        timeouts=timeouts,
        timeout=args.timeout or config.timeout,
        journal=label,
        health_host=args.health_host or config.health_host or "127.0.0.1",
        health_port=health_port,
        fleet=fleet,
        approval=approval,
        approvals=approval_settings,
        approvals_token=config.approvals.http_token.reveal() if config.approvals.http_token else None,
        tracer_provider=tracer_provider,
    )
    http_client = None
    if budget is not None or leases is not None:
        may_post = None if leases is None else (lambda session_id: leases.token(session_id) is not None)
        http_client = fleet_http_client(budget=budget, may_post=may_post)
    instance = leases.owner_id if leases is not None else None
    try:
        async with make_client(args, config, environ, http_client=http_client, instance=instance) as client:
            return await serve(
                client, toolset, journal, plan, console=live_console(), leases=leases, budget=budget, threads=threads
            )
    finally:
        if tracer_provider is not None:  # flush the last spans
            await anyio.to_thread.run_sync(tracer_provider.shutdown, abandon_on_cancel=True)


async def serve(
    client: AsyncAnthropic,
    toolset: Toolset,
    journal: Journal,
    plan: ServePlan,
    *,
    console: Console | None = None,
    stop: anyio.Event | None = None,
    handle_signals: bool = True,
    on_call: Callable[[Any], None] | None = None,
    threads: AbandonedThreads | None = None,
    leases: SessionLeases | None = None,
    budget: Budget | None = None,
) -> int:
    """Serve `plan`'s sessions (and its agent's, new ones included) until `stop` is set, a signal arrives, or every
    explicitly given session has ended; then drain. Returns the exit code (0, or 130 when a second signal aborted).

    With `leases` the sessions are offered to the fleet and only the claimed ones served (`_fleet.py`); `budget`
    is opened and closed here when it needs it. `on_call` receives the runtime's `CallEvent`s (the demo prints
    progress with it). When sync tools' threads outlive their calls, `threads` names them in a warning at the end
    (the process cannot exit before they do).
    """

    stop = stop or anyio.Event()
    shutdown = _Shutdown(stop)
    async with AsyncExitStack() as stack:
        if toolset.has_sources:  # MCP servers: their tools are known once connected (the Bridge keeps it open)
            await stack.enter_async_context(toolset)
        return await _serve(
            client, toolset, journal, plan, shutdown, console, stop, handle_signals, on_call, threads, leases, budget
        )


async def _serve(
    client: AsyncAnthropic,
    toolset: Toolset,
    journal: Journal,
    plan: ServePlan,
    shutdown: _Shutdown,
    console: Console | None,
    stop: anyio.Event,
    handle_signals: bool,
    on_call: Callable[[Any], None] | None,
    threads: AbandonedThreads | None,
    leases: SessionLeases | None,
    budget: Budget | None,
) -> int:
    from ..runtime import Bridge

    async with AsyncExitStack() as resources, anyio.create_task_group() as outer:
        if handle_signals:
            await outer.start(shutdown.watch_signals)
        if leases is not None:
            await leases.open()
            resources.push_async_callback(_shielded(leases.close))
        if isinstance(budget, PostgresBudget):
            await budget.open()
            resources.push_async_callback(_shielded(budget.close))
        if plan.agent:
            await warn_drift(client, plan.agent, toolset.definitions())
        bridge_cm = Bridge(
            client,
            toolset,
            limits=plan.limits,
            timeouts=plan.timeouts,
            journal=journal,
            timeout=plan.timeout,
            on_call=on_call,
            approval=plan.approval,
            approvals=plan.approvals,
            leases=leases,
        )
        async with bridge_cm as bridge:
            shutdown.bridge = bridge
            threads = threads or AbandonedThreads()
            threads.sync_tools = {tool.name for tool in toolset if not tool.is_async}
            bridge.add_listener(threads.observe)
            if plan.tracer_provider is not None:
                from ..telemetry import OpenTelemetrySpans

                spans = OpenTelemetrySpans(plan.tracer_provider)
                bridge.add_listener(spans.observe)
                bridge.add_post_listener(spans.observe_post)
            member = bridge.fleet  # a fleet member with leases: it claims, heartbeats through the drain, hands over
            receiver: WebhookReceiver | None = None
            async with anyio.create_task_group() as tg:
                health_url = None

                if plan.health_port is not None:
                    from ..telemetry import PrometheusMetrics

                    try:
                        metrics = PrometheusMetrics(bridge.stats)
                    except ImportError as exc:
                        raise ConfigError(f"--health-port serves /metrics: {exc}") from None
                    bridge.add_listener(metrics.observe)
                    if member is not None:
                        metrics.add_section("fleet", member.stats)
                    if plan.fleet.webhook_port is not None:
                        metrics.add_section("webhooks", lambda: receiver.stats if receiver is not None else {})
                    if budget is not None:
                        metrics.add_section("budget", budget.stats)
                    server = HealthServer(
                        metrics.exposition,
                        status=lambda: "draining" if stop.is_set() else "ok",
                        host=plan.health_host,
                        port=plan.health_port,
                        approvals=bridge.approvals,
                        token=plan.approvals_token,
                    )
                    port = await tg.start(server.serve)
                    health_url = f"http://{plan.health_host}:{port}"
                if console is not None and console.live:
                    live = console
                    bridge.add_listener(lambda _: live.status(format_status(_stats_dict(bridge))))
                    tg.start_soon(_status_loop, bridge, console)
                if plan.fleet.webhook_port is not None:

                    def wake(session_id: str) -> Awaitable[None] | None:
                        if member is not None:
                            return member.offer([session_id])
                        if not stop.is_set() and session_id not in bridge.sessions:
                            bridge.attach(session_id)
                        return None

                    receiver = await tg.start(serve_webhooks, plan.fleet, wake)
                if member is not None:
                    await member.offer(list(plan.sessions))
                    if plan.agent:
                        tg.start_soon(bridge.serve_agent, plan.agent)
                else:
                    if plan.agent:
                        tg.start_soon(bridge.serve_agent, plan.agent)
                    if plan.sessions:
                        done = None if plan.agent or plan.fleet.webhook_port is not None else stop
                        tg.start_soon(_serve_sessions, bridge, plan.sessions, done)
                log.info(
                    "bridge ready: serving %d tool(s) for %s",
                    len(toolset),
                    _describe_targets(plan),
                    extra={
                        "tools": toolset.names(),
                        "agent": plan.agent,
                        "sessions": list(plan.sessions),
                        "journal": plan.journal,
                        "limits": repr(plan.limits),
                        "health": health_url,
                        "webhooks": None if receiver is None else f"http://{receiver.host}:{receiver.port}",
                        "fleet": None if leases is None else leases.owner_id,
                        "gc_threshold": list(gc.get_threshold()),
                    },
                )
                await stop.wait()
                if member is not None:
                    member.stop()
                tg.cancel_scope.cancel()
            threads.closing = True
            if shutdown.aborted:
                shutdown.abort()
            else:
                log.info("draining: no new calls are taken; waiting for in-flight calls to finish and post")
        if console is not None:
            console.clear_status()
        log.info("stopped", extra={"stats": _stats_dict(bridge)})
        outer.cancel_scope.cancel()
    return 130 if shutdown.aborted else 0


class AbandonedThreads:
    """Which sync tools' threads outlived their calls (timed out or cancelled), so the exit can say what it waits for.

    Python cannot stop a thread, and the interpreter waits for a running one at exit: without a word, a stopped
    daemon seemed to hang. `serve` feeds this tracker the call events; `wait_for_threads` names the tools and lets a
    second Ctrl-C leave at once. Once the bridge closes, its scheduler stops watching threads (and reports them
    released), so releases seen while closing are not believed.
    """

    def __init__(self) -> None:
        self.sync_tools: set[str] = set()
        self.pending: dict[tuple[str, str], tuple[str, str]] = {}
        self.closing = False

    def observe(self, event: Any) -> None:
        from ..runtime import CallEventKind

        key = (event.session_id, event.tool_use_id)
        if event.kind in (CallEventKind.TIMED_OUT, CallEventKind.CANCELLED) and event.tool in self.sync_tools:
            self.pending[key] = (event.tool, event.kind.value.replace("_", " "))
        elif event.kind is CallEventKind.RELEASED and not self.closing:
            self.pending.pop(key, None)

    def describe(self) -> str:
        """The abandoned calls, e.g. `refund (call toolu_1, timed out)`."""
        calls = ", ".join(f"{tool} (call {call_id}, {why})" for (_, call_id), (tool, why) in self.pending.items())
        return calls or "a sync tool that outlived its call"


def wait_for_threads(threads: AbandonedThreads) -> bool:
    """Say which threads keep the process from exiting, then join them; False when a SIGINT cut the wait short.

    Runs after the event loop has ended (the default SIGINT handler is back), so a second Ctrl-C lands here.
    """
    alive = [t for t in threading.enumerate() if t is not threading.current_thread() and not t.daemon]
    if not alive or not threads.pending:
        return True
    try:
        log.warning(
            "waiting for %d abandoned sync tool thread(s) to end: %s; Python cannot stop a running thread, so the "
            "process exits when it returns. Send SIGINT again to exit now.",
            len(alive),
            threads.describe(),
            extra={"abandoned_threads": len(alive), "calls": [call_id for _, call_id in threads.pending]},
        )
        for thread in alive:
            thread.join()
    except KeyboardInterrupt:
        return False
    log.info("every abandoned thread has ended")
    return True


class _Shutdown:
    """The daemon's signal handling: the first SIGINT/SIGTERM drains, the second cancels what is still running."""

    def __init__(self, stop: anyio.Event) -> None:
        self.stop = stop
        self.bridge: Any = None
        self.aborted = False

    async def watch_signals(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started()
            async for signum in signals:
                name = signal.Signals(signum).name
                if not self.stop.is_set():
                    log.info(
                        "%s received: draining in-flight calls (send it again to abort)", name, extra={"signal": name}
                    )
                    self.stop.set()
                elif not self.aborted:
                    log.warning("%s again: cancelling in-flight calls (each is still answered)", name)
                    self.aborted = True
                    self.abort()

    def abort(self) -> None:
        """Detach every session now: running calls are cancelled and answered as cancelled, so the drain ends."""
        if self.bridge is not None:
            for session_id in self.bridge.sessions:
                self.bridge.detach(session_id)


async def _serve_sessions(bridge: Any, sessions: Sequence[str], done: anyio.Event | None) -> None:
    """Serve the given sessions; when they have all ended (and no agent is followed), ask the daemon to stop."""
    async with anyio.create_task_group() as tg:
        for session_id in sessions:
            tg.start_soon(bridge.serve, session_id)
    if done is not None:
        log.info("every session given has ended")
        done.set()


async def warn_drift(client: AsyncAnthropic, agent_id: str, definitions: Sequence[Mapping[str, Any]]) -> None:
    """Log a warning when the agent's custom tools differ from what this bridge serves (calls would then fail)."""
    _, tools = await fetch_agent_tools(client, agent_id)
    diff = diff_tools(tools, definitions)
    if diff:
        log.warning(
            "agent %s's tool definitions differ from what this bridge serves (%s): run `bridge sync TARGET --agent %s`",
            agent_id,
            diff.summary(),
            agent_id,
            extra={"agent": agent_id, "drift": [f"{c.kind} {c.name}" for c in diff.changes]},
        )


def journal_path(choice: str | None, state_dir: Path | None, config: Config) -> Path | None:
    """The SQLite journal file `--journal` / `--state-dir` / bridge.toml name, or None for the memory journal."""
    choice = choice or config.journal.backend
    if choice == "memory":
        return None
    if choice == "sqlite":
        return config.journal.path or (state_dir or config.state_dir or DEFAULT_STATE_DIR) / "journal.db"
    return Path(choice)


def open_journal(choice: str | None, state_dir: Path | None, config: Config) -> tuple[Journal, str]:
    """The journal to serve with, and a label for the logs.

    `choice` is `--journal`: `sqlite` (default; `<state-dir>/journal.db` unless bridge.toml names a path),
    `memory`, or the path of a SQLite file.
    """
    path = journal_path(choice, state_dir, config)
    if path is None:
        return MemoryJournal(), "memory (nothing survives a restart)"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the state directory {str(path.parent)!r}: {exc.strerror or exc}") from None
    from ..journal import SqliteJournal

    return SqliteJournal(path), f"sqlite {path}"


def _shielded(close: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        with anyio.CancelScope(shield=True):
            await close()

    return run


async def _status_loop(bridge: Any, console: Console) -> None:
    """Redraw the live status line from `bridge.stats()` (a periodic refresh, not a synchronisation)."""
    while True:
        console.status(format_status(_stats_dict(bridge)))
        await anyio.sleep(STATUS_REFRESH)


def _stats_dict(bridge: Any) -> dict[str, Any]:
    stats = bridge.stats()
    if dataclasses.is_dataclass(stats) and not isinstance(stats, type):
        return {f.name: getattr(stats, f.name) for f in dataclasses.fields(stats) if not f.name.endswith("latency")}
    return dict(stats) if isinstance(stats, Mapping) else {}


def _describe_targets(plan: ServePlan) -> str:
    parts = []
    if plan.agent:
        parts.append(f"every session of agent {plan.agent}")
    if plan.sessions:
        parts.append(f"{len(plan.sessions)} session(s)")
    return " and ".join(parts)
