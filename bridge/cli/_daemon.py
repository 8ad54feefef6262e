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
import fnmatch
import gc
import logging
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import anyio
from anyio.abc import TaskStatus

from .._errors import ConfigError
from ..agents import diff_tools, fetch_agent_tools
from ..journal import Journal, MemoryJournal
from ..runtime import ApprovalSettings, Limits, Timeouts
from ._console import Console, format_status, live_console
from ._health import HealthServer

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

    from ..tools import ApprovalPolicy, ApprovalRequest, Toolset
    from ._config import ApprovalsSpec, Config

__all__ = [
    "ServePlan",
    "approval_plan",
    "build_limits",
    "journal_path",
    "metrics_of",
    "open_journal",
    "run_daemon",
    "serve",
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
    approval: ApprovalPolicy | None = None  # bridge.toml's [approvals.tools] patterns, as one policy
    approvals: ApprovalSettings = dataclasses.field(default_factory=ApprovalSettings)
    approvals_token: str | None = dataclasses.field(default=None, repr=False)


async def run_daemon(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Run `bridge run` with parsed arguments; returns the exit code."""
    from ._setup import load_config_for, load_tools, make_client

    if args.gc_threshold:
        gc.set_threshold(*GC_THRESHOLD)
    config = load_config_for(args, environ)
    sessions = tuple(args.session) or config.sessions
    agent = args.agent or config.agent
    if not sessions and not agent:
        raise ConfigError("nothing to serve: give --session ID (repeatable) or --agent ID, or set them in bridge.toml")
    toolset = load_tools(args, config)
    limits, timeouts = build_limits(config.limits, config.timeouts, max_concurrency=args.max_concurrency)
    journal, label = open_journal(args.journal, args.state_dir, config)
    health_port = args.health_port if args.health_port is not None else config.health_port
    approval, approval_settings = approval_plan(config.approvals)
    plan = ServePlan(
        sessions=sessions,
        agent=agent,
        limits=limits,
        timeouts=timeouts,
        timeout=args.timeout or config.timeout,
        journal=label,
        health_host=args.health_host or config.health_host or "127.0.0.1",
        health_port=health_port,
        approval=approval,
        approvals=approval_settings,
        approvals_token=config.approvals.http_token.reveal() if config.approvals.http_token else None,
    )
    async with make_client(args, config, environ) as client:
        return await serve(client, toolset, journal, plan, console=live_console())


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
) -> int:
    """Serve `plan`'s sessions (and its agent's, new ones included) until `stop` is set, a signal arrives, or every
    explicitly given session has ended; then drain. Returns the exit code (0, or 130 when a second signal aborted).

    `on_call` receives the runtime's `CallEvent`s (the demo prints progress with it).
    """
    from ..runtime import Bridge

    stop = stop or anyio.Event()
    shutdown = _Shutdown(stop)
    async with anyio.create_task_group() as outer:
        if handle_signals:
            await outer.start(shutdown.watch_signals)
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
        )
        async with bridge_cm as bridge:
            shutdown.bridge = bridge
            async with anyio.create_task_group() as tg:
                health_url = None
                if plan.health_port is not None:
                    server = HealthServer(
                        lambda: metrics_of(bridge.stats()),
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
                if plan.agent:
                    tg.start_soon(bridge.serve_agent, plan.agent)
                if plan.sessions:
                    tg.start_soon(_serve_sessions, bridge, plan.sessions, None if plan.agent else stop)
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
                        "gc_threshold": list(gc.get_threshold()),
                    },
                )
                await stop.wait()
                tg.cancel_scope.cancel()
            if shutdown.aborted:
                shutdown.abort()
            else:
                log.info("draining: no new calls are taken; waiting for in-flight calls to finish and post")
        if console is not None:
            console.clear_status()
        log.info("stopped", extra={"stats": _stats_dict(bridge)})
        outer.cancel_scope.cancel()
    return 130 if shutdown.aborted else 0


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


def approval_plan(spec: ApprovalsSpec) -> tuple[ApprovalPolicy | None, ApprovalSettings]:
    """The bridge-level policy of `[approvals.tools]` (first matching pattern wins; no match allows) and the
    `ApprovalSettings` of `[approvals]`.

    Raises:
        ConfigError: A setting is invalid.
    """
    try:
        settings = ApprovalSettings(**spec.settings)
    except ConfigError as exc:
        raise ConfigError([f"approvals: {p}" for p in exc.problems]) from None
    patterns = spec.tools
    if not patterns:
        return None, settings

    def by_pattern(request: ApprovalRequest) -> Literal["allow", "deny", "ask"]:
        for pattern, policy in patterns:
            if fnmatch.fnmatchcase(request.tool_name, pattern):
                return policy
        return "allow"

    return by_pattern, settings


def build_limits(
    limits: Mapping[str, Any], timeouts: Mapping[str, Any], *, max_concurrency: int | None = None
) -> tuple[Limits, Timeouts]:
    """`Limits` and `Timeouts` from bridge.toml's [limits] / [timeouts] and --max-concurrency.

    Raises:
        ConfigError: Listing every unknown name and every invalid value of both tables.
    """
    problems: list[str] = []
    built: list[Any] = []
    overrides = {"max_concurrency": max_concurrency} if max_concurrency is not None else {}
    for cls, table, section, noun in ((Limits, limits, "limits", "limit"), (Timeouts, timeouts, "timeouts", "timeout")):
        known = sorted(f.name for f in dataclasses.fields(cls))
        unknown = sorted(set(table) - set(known))
        problems.extend(f"{section}.{key}: unknown {noun} (known: {', '.join(known)})" for key in unknown)
        values = {k: v for k, v in table.items() if k in known}
        if cls is Limits:
            values.update(overrides)
        try:
            built.append(cls(**values))
        except ConfigError as exc:
            problems.extend(f"{section}: {p}" for p in exc.problems)
            built.append(cls())
    if problems:
        raise ConfigError(problems)
    return built[0], built[1]


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


async def _status_loop(bridge: Any, console: Console) -> None:
    """Redraw the live status line from `bridge.stats()` (a periodic refresh, not a synchronisation)."""
    while True:
        console.status(format_status(_stats_dict(bridge)))
        await anyio.sleep(STATUS_REFRESH)


_GAUGES = {
    "sessions": "sessions",
    "running": "calls_running",
    "queued": "calls_queued",
    "awaiting_approval": "calls_awaiting_approval",
}
_COUNTERS = {
    "received": "calls_received_total",
    "finished": "calls_finished_total",
    "failed": "calls_failed_total",
    "timed_out": "calls_timed_out_total",
    "cancelled": "calls_cancelled_total",
    "posted": "results_posted_total",
    "dropped": "results_dropped_total",
    "posts": "posts_total",
    "post_retries": "post_retries_total",
    "duplicates_prevented": "duplicates_prevented_total",
    "reconnects": "reconnects_total",
    "reconciled": "calls_reconciled_total",
}


def metrics_of(stats: Any) -> dict[str, Any]:
    """`BridgeStats` under Prometheus names: gauges, `_total` counters, latency quantiles in seconds."""
    values = (
        {f.name: getattr(stats, f.name) for f in dataclasses.fields(stats)} if dataclasses.is_dataclass(stats) else {}
    )
    metrics: dict[str, Any] = {new: values[old] for old, new in _GAUGES.items() if old in values}
    metrics["abandoned_threads"] = values.get("abandoned_threads", 0)
    metrics.update({new: values[old] for old, new in _COUNTERS.items() if old in values})
    for name in ("call_latency", "answer_latency"):
        latency = values.get(name)
        if latency is not None:
            quantiles = {"0.5": latency.p50, "0.95": latency.p95, "0.99": latency.p99, "1": latency.max}
            metrics[f"{name}_seconds"] = quantiles
            metrics[f"{name}_samples"] = latency.count
    return metrics


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
