"""Workload 4: 100 and 1,000 sessions, one call each in flight, served from one process.

Ours is one `Bridge` attached to every session; the SDK's is one `tool_runner` per session, all in one process (it has
no multi-session mode). Two shapes, each in a fresh worker process so that its peak RSS (`VmHWM`) is that of
serving this many sessions and nothing else:

* steady: every session keeps one call in flight. Its agent starts at a random moment within one tool time, then calls
  a 5 s tool back to back (`STEADY_ROUNDS` times), so calls arrive spread out, as from a real fleet. Overhead is time
  to answer minus the 5 s. This is the shape the target is judged on.
* burst: every session's agent parks at a barrier once its message has arrived; the driver releases them together,
  so all calls (of a 50 ms tool) are emitted at the same instant. The worst case: p99 is about sessions / throughput,
  which is the client's per-call CPU cost times the number of sessions.

Before the calls start, the driver waits for the client's set-up requests (session reads, first history reads) to
stop, so the timed window holds only the calls. Both sides get a connection pool large enough for one stream per
session plus the posts (the SDK's default pool, 1,000 connections, cannot hold 1,000 streams and post too), and the
Bridge a global concurrency limit of one call per session (its default, 256, would make 1,000 calls queue).
"""

from __future__ import annotations

from typing import Any, Literal

from bench._context import Context, bridge_available
from bench._measure import median, percentile
from bench._tools import SLEEP_SECONDS
from bench._worker import cpu_seconds

SIZES = (100, 1000)
STEADY_SECONDS = 5.0
STEADY_ROUNDS = 2
TARGET_P99_OVERHEAD = 0.250
TARGET_RSS_MB = 300.0
Mode = Literal["steady", "burst"]


async def fleet_once(ctx: Context, side: str, size: int, mode: Mode, timeout: float) -> dict[str, Any]:  # noqa: ASYNC109
    """Serve `size` fresh sessions from one fresh `side` worker and time their calls."""
    host, recorder = ctx.host, ctx.host.recorder
    worker = await ctx.start_worker(side, connections=2 * size + 100, daemon_gc=True)
    try:
        (warm,) = await host.new_sessions(1)
        await worker.call({"op": "serve", "sessions": [warm]})
        await host.wait_connected([warm])
        await host.send([warm], {"calls": 1, "tool": "sleep"})
        await recorder.wait_turns([warm], 60)
        await worker.call({"op": "stop"})

        ids = await host.new_sessions(size)
        recorder.reset()
        # One call per session must be able to run at once: the Bridge's default global limit (256) would queue the
        # rest. The SDK has no limit to raise (one runner per session).
        await worker.call({"op": "serve", "sessions": ids, "limits": {"max_concurrency": size + 1}})
        await host.wait_connected(ids, timeout)
        if mode == "steady":
            spec: dict[str, Any] = {"barrier": True, "steady": {"seconds": STEADY_SECONDS, "rounds": STEADY_ROUNDS}}
            tags = [f"{sid}:{k}" for sid in ids for k in range(STEADY_ROUNDS)]
            tool_seconds = STEADY_SECONDS
        else:
            spec, tags, tool_seconds = {"calls": 1, "tool": "sleep", "barrier": True}, ids, SLEEP_SECONDS
        await host.send(ids, spec)
        await recorder.wait_parked(size, timeout)
        await host.settle()
        server_cpu = cpu_seconds()
        recorder.release()
        turns = await recorder.wait_turns(tags, timeout)
        server_cpu = cpu_seconds() - server_cpu
        stats = await worker.call({"op": "stop"}, timeout=timeout)
    finally:
        await worker.close()
        recorder.reset()
    answered = [t for t in turns if not t.unanswered]
    overheads = [t.seconds - tool_seconds for t in answered]
    span = max(t.ended for t in turns) - min(t.started for t in turns) if turns else float("nan")
    return {
        "sessions": size,
        "calls": len(tags),
        "answered": len(answered),
        "errors": sum(t.errors for t in turns),
        "throughput": len(answered) / span if span == span and span > 0 else float("nan"),
        "p50_overhead_s": percentile(overheads, 50),
        "p99_overhead_s": percentile(overheads, 99),
        "max_overhead_s": max(overheads) if overheads else float("nan"),
        "rss_baseline_mb": worker.ready.get("rss_kb", 0) / 1024,
        "peak_rss_mb": stats.get("maxrss_kb", 0) / 1024,
        "cpu_s": stats.get("cpu_s", float("nan")),
        "gc_s": stats.get("gc_s", float("nan")),
        "emulator_cpu_s": server_cpu,
        "client_errors": stats.get("error_count", 0),
    }


def _median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [k for k, v in runs[0].items() if isinstance(v, int | float)]
    return {k: median([float(r[k]) for r in runs]) for k in keys}


async def w4(ctx: Context) -> dict[str, Any]:
    """Many sessions, one call each in flight, one process: steady and burst."""
    ctx.log("w4: 100 and 1,000 sessions, one call each in flight, one process")
    reps = ctx.reps_for(1, 1)
    sides = ["sdk", "bridge"] if bridge_available() else ["sdk"]
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for mode in ("steady", "burst"):
        for size in SIZES:
            runs: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
            for rep in range(reps):
                for side in sides if rep % 2 == 0 else sides[::-1]:
                    run = await fleet_once(ctx, side, size, mode, timeout=120 + size * 0.5)
                    runs[side].append(run)
                    ctx.log(
                        f"  {mode:>6} {size:>5} sessions {side:>6}: {run['answered']}/{run['calls']} answered, "
                        f"{run['throughput']:.0f} calls/s, overhead p50 {run['p50_overhead_s'] * 1000:.0f} ms "
                        f"p99 {run['p99_overhead_s'] * 1000:.0f} ms, peak RSS {run['peak_rss_mb']:.0f} MB, "
                        f"CPU {run['cpu_s']:.1f} s (GC {run['gc_s']:.1f} s), emulator CPU {run['emulator_cpu_s']:.1f} s"
                    )
            results[f"{mode} {size}"] = {side: {**_median_of(r), "runs": r} for side, r in runs.items()}
    largest = results[f"steady {SIZES[-1]}"]
    met = None
    if "bridge" in largest:
        ours = largest["bridge"]
        met = (
            ours["answered"] == ours["calls"]
            and ours["p99_overhead_s"] < TARGET_P99_OVERHEAD
            and ours["peak_rss_mb"] < TARGET_RSS_MB
        )
    return {
        "kind": "fleet",
        "title": f"{SIZES[-1]:,} sessions, one call each in flight (one process)",
        "results": results,
        "steady": {"seconds": STEADY_SECONDS, "rounds": STEADY_ROUNDS},
        "reps": reps,
        "target": "all answered, p99 overhead < 250 ms, RSS < 300 MB (steady)",
        "met": met,
        "notes": [
            "both workers run with the garbage-collector threshold `bridge run` sets for itself "
            "(gc.set_threshold(100_000, 50, 100)); with Python's defaults, collections on a 1,000-session heap pause "
            "every session at once on either side"
        ],
    }
