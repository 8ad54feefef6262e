"""Workload 4: 100 and 1,000 sessions, one call each in flight at once, served from one process.

Ours is one `Bridge` attached to every session; the SDK's is one `tool_runner` per session, all in one process (it has
no multi-session mode). Every session's agent parks at a barrier once its message has arrived; the driver releases
them together, so all calls are in flight at the same moment. The tool waits 50 ms, so a call's overhead is its time
to answer minus 50 ms. Each measurement uses a fresh worker process, so its peak RSS (`ru_maxrss`) is that of serving
this many sessions (plus one warm-up call), and nothing else. Both sides get a connection pool large enough for one
stream per session plus the posts (the SDK's default pool, 1,000 connections, cannot hold 1,000 streams and post too).
"""

from __future__ import annotations

from typing import Any

from bench._context import Context, bridge_available
from bench._host import Worker
from bench._measure import median, percentile
from bench._tools import SLEEP_SECONDS
from bench._worker import cpu_seconds

SIZES = (100, 1000)
TARGET_P99_OVERHEAD = 0.250
TARGET_RSS_MB = 300.0


async def fleet_once(ctx: Context, side: str, size: int, timeout: float) -> dict[str, Any]:  # noqa: ASYNC109
    """Serve `size` fresh sessions from one fresh `side` worker; one barrier-released call each."""
    host, recorder = ctx.host, ctx.host.recorder
    worker = await Worker.start(side, host.api, connections=2 * size + 100, backend=ctx.backend)
    try:
        (warm,) = await host.new_sessions(1)
        await worker.call({"op": "serve", "sessions": [warm]})
        await host.wait_connected([warm])
        await host.send([warm], {"calls": 1, "tool": "sleep"})
        await recorder.wait_turns([warm], 60)
        await worker.call({"op": "stop"})

        ids = await host.new_sessions(size)
        recorder.reset()
        await worker.call({"op": "serve", "sessions": ids})
        await host.wait_connected(ids, timeout)
        await host.send(ids, {"calls": 1, "tool": "sleep", "barrier": True})
        await recorder.wait_parked(size, timeout)
        await host.settle()
        server_cpu = cpu_seconds()
        recorder.release()
        turns = await recorder.wait_turns(ids, timeout)
        server_cpu = cpu_seconds() - server_cpu
        stats = await worker.call({"op": "stop"}, timeout=timeout)
    finally:
        await worker.close()
        recorder.reset()
    answered = [t for t in turns if not t.unanswered]
    times = [t.seconds for t in answered]
    span = max(t.ended for t in turns) - min(t.started for t in turns) if turns else float("nan")
    return {
        "sessions": size,
        "answered": len(answered),
        "errors": sum(t.errors for t in turns),
        "throughput": len(answered) / span if span == span and span > 0 else float("nan"),
        "p50_s": percentile(times, 50),
        "p99_s": percentile(times, 99),
        "max_s": max(times) if times else float("nan"),
        "p99_overhead_s": percentile(times, 99) - SLEEP_SECONDS,
        "rss_baseline_mb": worker.ready.get("rss_kb", 0) / 1024,
        "peak_rss_mb": stats.get("maxrss_kb", 0) / 1024,
        "cpu_s": stats.get("cpu_s", float("nan")),
        "emulator_cpu_s": server_cpu,
        "gc_s": stats.get("gc_s", float("nan")),
        "gc_collections": stats.get("gc_collections"),
        "client_errors": stats.get("error_count", 0),
    }


def _median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [k for k, v in runs[0].items() if isinstance(v, int | float)]
    return {k: median([float(r[k]) for r in runs]) for k in keys}


async def w4(ctx: Context) -> dict[str, Any]:
    """Many sessions, one call each, one process."""
    ctx.log("w4: 100 and 1,000 sessions, one call each in flight, one process")
    reps = ctx.reps_for(1, 2)
    sides = ["sdk", "bridge"] if bridge_available() else ["sdk"]
    sizes: dict[str, dict[str, Any]] = {}
    for size in SIZES:
        runs: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
        for rep in range(reps):
            for side in sides if rep % 2 == 0 else sides[::-1]:
                run = await fleet_once(ctx, side, size, timeout=60 + size * 0.3)
                runs[side].append(run)
                ctx.log(
                    f"  {size:>5} sessions {side:>6}: {run['answered']}/{size} answered, "
                    f"{run['throughput']:.0f} calls/s, p50 {run['p50_s'] * 1000:.0f} ms, "
                    f"p99 {run['p99_s'] * 1000:.0f} ms, peak RSS {run['peak_rss_mb']:.0f} MB"
                )
        sizes[str(size)] = {side: {**_median_of(r), "runs": r} for side, r in runs.items()}
    largest = sizes[str(SIZES[-1])]
    met = None
    if "bridge" in largest:
        ours = largest["bridge"]
        met = (
            ours["answered"] == SIZES[-1]
            and ours["p99_overhead_s"] < TARGET_P99_OVERHEAD
            and ours["peak_rss_mb"] < TARGET_RSS_MB
        )
    return {
        "kind": "fleet",
        "title": "sessions served by one process, one call each",
        "sizes": sizes,
        "reps": reps,
        "target": "1,000 all answered, p99 overhead < 250 ms, RSS < 300 MB",
        "met": met,
    }
