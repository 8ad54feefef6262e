"""Alternating repetitions of one timed turn on two or more arms, and the numbers that come out of them.

An arm is a worker process plus how it serves (tool kind, journal). Each repetition runs every arm once, in an order
that alternates (A B, B A, A B, ...) so that drift in the machine's load (two cores shared with other work) falls on
both arms alike; the figure reported is the median over repetitions. One unrecorded warm-up turn per arm first pays
for lazy imports and pydantic's first model builds.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from bench._host import Host, Worker

LATENCY_ROUTE = "POST /v1/sessions/*/events"


@dataclass
class Arm:
    """One side of a comparison: a label, its worker, and what its `serve` command adds."""

    label: str
    worker: Worker
    serve: dict[str, Any] = field(default_factory=dict)


@dataclass
class Sample:
    """One repetition of one arm."""

    seconds: float
    calls: int
    cpu_s: float
    result_posts: int
    history_gets: int
    errors: int
    unanswered: int
    notes: list[str] = field(default_factory=list)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), nearest-rank: p99 of 100 values is the 99th smallest."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5 - 1e-9)))
    return ordered[rank - 1]


def summarize(samples: list[Sample]) -> dict[str, Any]:
    """Median wall time, throughput and CPU per call of an arm's samples, plus every sample."""
    good = [s for s in samples if not s.unanswered]
    seconds = median([s.seconds for s in good])
    calls = good[0].calls if good else 0
    return {
        "median_s": seconds,
        "calls_per_s": calls / seconds if good and seconds > 0 else float("nan"),
        "cpu_ms_per_call": median([1000 * s.cpu_s / s.calls for s in good]) if good else float("nan"),
        "result_posts": median([float(s.result_posts) for s in good]) if good else float("nan"),
        "history_gets": median([float(s.history_gets) for s in good]) if good else float("nan"),
        "failed_reps": len(samples) - len(good),
        "samples": [asdict(s) for s in samples],
    }


async def one_turn(
    host: Host,
    arm: Arm,
    spec: dict[str, Any],
    *,
    post_latency: float | None = None,
    timeout: float = 120,  # noqa: ASYNC109
) -> Sample:
    """Serve a fresh session with `arm`, have the agent make the calls of `spec` in one turn, time it."""
    (session_id,) = await host.new_sessions(1)
    control = host.api.control
    mark = host.request_mark()
    await arm.worker.call({"op": "serve", "sessions": [session_id], **arm.serve})
    notes: list[str] = []
    try:
        await host.wait_connected([session_id])
        # Let the client finish attaching (its first history read) before the turn: otherwise that read races the
        # turn's events, which then arrive twice (listed and streamed), and the figure mixes set-up into the calls.
        await host.settle(quiet=0.15)
        if post_latency:
            control.latency(LATENCY_ROUTE, post_latency)
        await host.send([session_id], spec)
        turns = await host.recorder.wait_turns([session_id], timeout)
    finally:
        if post_latency:
            control.latency(LATENCY_ROUTE, None)
        stats = await arm.worker.call({"op": "stop"})
    counts = host.count_requests(mark, {session_id})
    if stats.get("error_count"):
        notes.append(f"{stats['error_count']} client errors, first: {stats['errors'][:1]}")
    if not turns:
        return Sample(timeout, spec["calls"], stats["cpu_s"], 0, 0, 0, spec["calls"], [*notes, "turn not finished"])
    turn = turns[0]
    return Sample(
        seconds=turn.seconds,
        calls=turn.calls,
        cpu_s=stats["cpu_s"],
        result_posts=counts.get("POST /v1/sessions/*/events", 1) - 1,  # minus the message that asked for the turn
        history_gets=counts.get("GET /v1/sessions/*/events", 0),
        errors=turn.errors,
        unanswered=turn.unanswered,
        notes=notes,
    )


async def alternate(
    host: Host,
    arms: list[Arm],
    spec: dict[str, Any],
    *,
    reps: int,
    post_latency: float | None = None,
    timeout: float = 120,  # noqa: ASYNC109
    log: Any = None,
) -> dict[str, list[Sample]]:
    """Warm each arm up once, then `reps` repetitions in alternating order; samples per arm label."""
    warm = {**spec, "calls": min(spec["calls"], 4)}
    for arm in arms:
        await one_turn(host, arm, warm, timeout=timeout)
    samples: dict[str, list[Sample]] = {arm.label: [] for arm in arms}
    for rep in range(reps):
        order = arms if rep % 2 == 0 else arms[::-1]
        for arm in order:
            sample = await one_turn(host, arm, spec, post_latency=post_latency, timeout=timeout)
            samples[arm.label].append(sample)
            if log is not None:
                log(f"  rep {rep + 1}/{reps} {arm.label:>8}: {sample.seconds * 1000:8.1f} ms"
                    f"  ({sample.result_posts} result POSTs, cpu {sample.cpu_s * 1000:.0f} ms)"
                    + (f"  {'; '.join(sample.notes)}" if sample.notes else ""))  # fmt: skip
    return samples
