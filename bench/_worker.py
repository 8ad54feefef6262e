"""The client process: serves sessions through one side (the SDK's runner, or our Bridge) on command.

`python -m bench._worker --side sdk|bridge|floor` reads one JSON command per line on stdin and answers one JSON line on
stdout. Each side runs in a process of its own, apart from the emulator (which lives in the driver, `_host.py`), so
that what one process measures about itself is its own: peak RSS (`VmHWM`), CPU seconds (`getrusage`), and no
GIL shared with the server it talks to, as with the real API.

Commands:
    {"op": "serve", "sessions": [...], "tool_kind": "async", "journal": "memory", "limits": {}}  -> {"serving": true}
        Start serving those sessions (SDK: one `tool_runner` per session in one task group; ours: one Bridge, with
        `Limits(**limits)`; floor: one stream per session, one POST per idle, no tools).
    {"op": "stop"}  -> {"dispatched", "errors", "cpu_s", "rss_kb", "maxrss_kb"}
        Stop serving (cancel the runners / close the Bridge) and report.
    {"op": "journal_micro", "calls": N, "concurrency": [..]}  -> {"rows": [...]}
        The journal-only microbenchmark of `bench/journal_cost.py`, when it is there.
    {"op": "exit"}
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import resource
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._tools import ToolKind, bridge_tools, sdk_tools  # noqa: E402


def _status_kb(field: str) -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kb() -> int:
    """Current resident set size in KiB (from /proc; 0 where there is none)."""
    return _status_kb("VmRSS")


def peak_rss_kb() -> int:
    """Peak resident set size of this process in KiB.

    `VmHWM` (the high-water mark of this address space), not `getrusage().ru_maxrss`: on Linux `ru_maxrss` survives
    fork and exec, so a worker started by the driver would report the driver's own peak whenever that was higher.
    """
    peak = _status_kb("VmHWM")
    return peak or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class GcClock:
    """Seconds spent in the garbage collector (via `gc.callbacks`): a pause there stalls every session at once."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = [0, 0, 0]
        self._started = 0.0
        gc.callbacks.append(self._note)

    def _note(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started
            self.collections[info["generation"]] += 1


GC = GcClock()
if os.environ.get("BENCH_GC_THRESHOLD"):  # investigation knob: gc.set_threshold(N) for the worker
    gc.set_threshold(int(os.environ["BENCH_GC_THRESHOLD"]), 50, 100)


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far (all threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Tally:
    """What one serving period did."""

    dispatched: int = 0
    errors: list[str] = field(default_factory=list)


def make_client(connections: int | None) -> Any:
    """The AsyncAnthropic both sides use; `connections` raises the pool limits (the fleet workload needs >1000)."""
    from anthropic import AsyncAnthropic, DefaultAsyncHttpxClient

    options: dict[str, Any] = {}
    if connections:
        import httpx2

        limits = httpx2.Limits(max_connections=connections, max_keepalive_connections=connections)
        options["http_client"] = DefaultAsyncHttpxClient(limits=limits)
    return AsyncAnthropic(base_url=ARGS.base_url, api_key=ARGS.api_key, max_retries=2, **options)


def runner_options(client: Any) -> dict[str, Any]:
    """The `tool_runner` options of `--runner-setting`: none for `default`; for `best`, every option this SDK's runner
    has for running calls at once, turned all the way up (`max_concurrent_calls=None`: no limit)."""
    if ARGS.runner_setting != "best":
        return {}
    import inspect

    parameters = inspect.signature(client.beta.sessions.events.tool_runner).parameters
    return {"max_concurrent_calls": None} if "max_concurrent_calls" in parameters else {}


def describe_sdk(client: Any) -> dict[str, Any]:
    """Which SDK this worker imported, and the runner options it uses (the report prints both)."""
    import anthropic

    options = runner_options(client) if ARGS.side == "sdk" else {}
    setting = ", ".join(f"{key}={value!r}" for key, value in options.items()) or "defaults"
    return {"anthropic": anthropic.__version__, "runner": setting}


async def serve_sdk(client: Any, sessions: list[str], kind: ToolKind, stop: anyio.Event, tally: Tally) -> None:
    """The competitor as its docs show it: one `tool_runner` per session, drained until told to stop."""
    tools = sdk_tools(kind)
    options = runner_options(client)

    async def one(session_id: str) -> None:
        own = make_client(4) if ARGS.pool_per_session else client
        runner = own.beta.sessions.events.tool_runner(session_id, tools=tools, max_idle=None, **options)
        async for call in runner:
            tally.dispatched += 1
            if call.is_error or not call.posted:
                tally.errors.append(f"{call.name}: is_error={call.is_error} posted={call.posted}")

    async with anyio.create_task_group() as tg:
        for session_id in sessions:
            tg.start_soon(one, session_id)
        await stop.wait()
        tg.cancel_scope.cancel()


async def serve_bridge(
    client: Any,
    sessions: list[str],
    kind: ToolKind,
    journal_kind: str,
    limits: dict[str, Any],
    stop: anyio.Event,
    tally: Tally,
) -> None:
    """Ours: one Bridge in this process serving every session (`limits`: `Limits` fields, default when empty)."""
    from bridge import Bridge, Limits
    from bridge.journal import MemoryJournal

    with tempfile.TemporaryDirectory(prefix="bench-journal-") as tmp:
        journal: Any
        if journal_kind == "sqlite":
            from bridge.journal import SqliteJournal

            journal = SqliteJournal(Path(tmp) / "journal.db")
        else:
            journal = MemoryJournal()
        async with Bridge(client, bridge_tools(kind), journal=journal, limits=Limits(**limits)) as bridge:
            bridge.attach(*sessions)
            await stop.wait()
            stats = bridge.stats()
            tally.dispatched = stats.posted
            tally.errors += [f"{stats.failed} failed"] * bool(stats.failed) + [f"{stats.timed_out} timed out"] * bool(
                stats.timed_out
            )


async def serve_floor(client: Any, sessions: list[str], stop: anyio.Event, tally: Tally) -> None:
    """The floor: the least any client must do. Per session, one stream; at each `requires_action` idle, one POST
    answering every call it lists, with no tool code (no validation, dispatch, journal or per-call task).

    The one concession to the tools is time: a turn of the 50 ms tool is answered 50 ms after its idle (the longest
    `seconds` among the calls, waited once), since no client can return a tool's result before the tool could have
    finished, even running every call at once.
    """
    from bench._tools import SLEEP_SECONDS

    async def one(session_id: str) -> None:
        uses: dict[str, float] = {}  # unanswered call id -> the tool's own time
        stream = await client.beta.sessions.events.stream(session_id)
        async with stream:
            async for event in stream:
                if event.type == "agent.custom_tool_use":
                    seconds = event.input.get("seconds", SLEEP_SECONDS) if event.name == "sleep" else 0.0
                    uses[event.id] = float(seconds)
                    continue
                if event.type != "session.status_idle" or event.stop_reason.type != "requires_action":
                    continue
                due = [i for i in event.stop_reason.event_ids if i in uses]
                if not due:
                    continue
                wait = max(uses[i] for i in due)
                if wait > 0:
                    await anyio.sleep(wait)
                results = [{"type": "user.custom_tool_result", "custom_tool_use_id": i,
                            "content": [{"type": "text", "text": "ok"}]} for i in due]  # fmt: skip
                for i in due:
                    del uses[i]
                await client.beta.sessions.events.send(session_id, events=results)
                tally.dispatched += len(due)

    async with anyio.create_task_group() as tg:
        for session_id in sessions:
            tg.start_soon(one, session_id)
        await stop.wait()
        tg.cancel_scope.cancel()


async def journal_micro(calls: int, concurrency: list[int]) -> list[dict[str, float]]:
    """The journal-only microbenchmark from `bench/journal_cost.py` (memory vs SQLite, no HTTP, no tools)."""
    from bench import journal_cost

    rows = []
    for level in concurrency:
        memory, sqlite, fsyncs = await journal_cost.compare(calls, level)
        rows.append({"concurrency": level, "memory_per_s": memory, "sqlite_per_s": sqlite, "fsyncs_per_call": fsyncs})
    return rows


def say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def main() -> None:
    client = make_client(ARGS.connections)
    say({"ready": True, "rss_kb": rss_kb(), "pid": os.getpid(), **describe_sdk(client)})
    async with client, anyio.create_task_group() as tg:
        stop: anyio.Event | None = None
        done: anyio.Event | None = None
        tally = Tally()
        cpu_start, gc_start, gc_counts = 0.0, 0.0, [0, 0, 0]
        while True:
            line = await anyio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
            if not line:
                break
            command = json.loads(line)
            op = command["op"]
            if op == "serve":
                # Start every serving period from a collected heap, on both sides: otherwise a full collection left
                # over from earlier repetitions lands on whichever arm the alternation puts next, every time.
                gc.collect()
                stop, done, tally = anyio.Event(), anyio.Event(), Tally()
                cpu_start, gc_start, gc_counts = cpu_seconds(), GC.seconds, list(GC.collections)
                tg.start_soon(run_side, client, command, stop, done, tally)
                say({"serving": True})
            elif op == "stop":
                if stop is None or done is None:
                    say({"error": "not serving"})
                    continue
                stop.set()
                with anyio.move_on_after(30):
                    await done.wait()
                if not done.is_set():
                    tally.errors.append("did not stop within 30 s")
                say(
                    {
                        "dispatched": tally.dispatched,
                        "errors": tally.errors[:20],
                        "error_count": len(tally.errors),
                        "cpu_s": cpu_seconds() - cpu_start,
                        "gc_s": GC.seconds - gc_start,
                        "gc_collections": [a - b for a, b in zip(GC.collections, gc_counts, strict=True)],
                        "rss_kb": rss_kb(),
                        "maxrss_kb": peak_rss_kb(),
                    }
                )
            elif op == "journal_micro":
                say({"rows": await journal_micro(command["calls"], command["concurrency"])})
            elif op == "exit":
                break
        tg.cancel_scope.cancel()


async def run_side(client: Any, command: dict[str, Any], stop: anyio.Event, done: anyio.Event, tally: Tally) -> None:
    """Serve until `stop`, recording a failure of the side instead of dying (the driver reports it)."""
    try:
        kind: ToolKind = command.get("tool_kind", "async")
        if ARGS.side == "sdk":
            await serve_sdk(client, command["sessions"], kind, stop, tally)
        elif ARGS.side == "floor":
            await serve_floor(client, command["sessions"], stop, tally)
        else:
            journal, limits = command.get("journal", "memory"), command.get("limits", {})
            await serve_bridge(client, command["sessions"], kind, journal, limits, stop, tally)
    except Exception as exc:  # reported, not raised: one failing side must not hide the other's numbers
        logging.getLogger("bench").exception("side %s failed", ARGS.side)
        tally.errors.append(f"side failed: {exc!r}")
    finally:
        done.set()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench._worker")
    parser.add_argument("--side", choices=["sdk", "bridge", "floor"], required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--connections", type=int, default=0, help="connection pool size (0: the SDK's default)")
    parser.add_argument("--pool-per-session", action="store_true", help="(investigation) one HTTP pool per session")
    parser.add_argument(
        "--runner-setting",
        choices=["default", "best"],
        default="default",
        help="the SDK side's tool_runner: as its docs show it, or with its concurrency options at their best",
    )
    return parser.parse_args(argv)


ARGS = argparse.Namespace()

if __name__ == "__main__":
    ARGS = parse_args()
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr, format="worker %(name)s: %(message)s")
    anyio.run(main, backend=ARGS.backend)
