"""Workloads 1-3: one session, one turn of N parallel tool calls, the SDK runner against the Bridge.

1. 200 calls of a 50 ms async tool: the SDK runs them one after another (each also waiting for its own POST), the
   bridge runs them together, so the ratio is about how much waiting the bridge overlaps.
2. 200 trivial calls: no tool time at all, so this is the per-call cost of each client (event parsing, dispatch,
   result posting); batching results into few POSTs is what the bridge has over the SDK here.
3. 20 trivial calls with 50 ms added to every `POST /events` (the emulator's latency knob): the SDK pays the latency
   once per call, the bridge about once per batch.

Workloads 1-3 also run a third arm, the **floor** (`_worker.serve_floor`): the least any client must do on the same
emulator, through the same SDK over HTTP: wait for the `requires_action` idle and answer every call it lists in one
POST, with no tool code (for workload 1 it waits the tool's 50 ms once, as if every call ran at once). Bridge time /
floor time is what the bridge costs above that; the aim is within 15% (<= 1.15).

They also run the **newest SDK** (`bench/_sdks.py`) at its best setting, beside the oldest supported one that the
ratios are taken against. Under `--quick` only workload 3 does: the newest runner still runs one thread's calls one
at a time (10 s a repetition for workload 1) and, as measured with 2.16, spends tens of milliseconds of CPU per call
in a 200-call turn (workload 2: tens of seconds a repetition).
"""

from __future__ import annotations

from typing import Any

from bench._context import Context, bridge_available, comparison
from bench._measure import Arm, alternate

W3_LATENCY = 0.05
FLOOR_TARGET = 1.15
NAN = float("nan")


async def _sdk_vs_bridge(
    ctx: Context,
    spec: dict[str, Any],
    *,
    reps: int,
    tool_kind: str = "async",
    post_latency: float | None = None,
    floor: bool = True,
    newest: bool = True,
) -> dict[str, Any]:
    arms = [Arm("sdk", await ctx.worker("sdk"), {"tool_kind": tool_kind})]
    notes = []
    if newest and ctx.sdk_arm("sdk_newest") is not None:
        arms.append(Arm("sdk_newest", await ctx.worker("sdk_newest"), {"tool_kind": tool_kind}))
    elif newest:
        notes.append(f"newest SDK arm not run: {ctx.sdks['sdk_newest']['skipped']}")
    if bridge_available():
        arms.append(Arm("bridge", await ctx.worker("bridge"), {"tool_kind": tool_kind, "journal": "memory"}))
    else:
        notes.append("bridge.Bridge is not in this checkout yet: SDK side only")
    if floor:
        arms.append(Arm("floor", await ctx.worker("floor")))
    samples = await alternate(ctx.host, arms, spec, reps=reps, post_latency=post_latency, log=ctx.log)
    result = comparison(samples, "sdk", "bridge", reps=reps, notes=notes)
    if "sdk_newest" in result["arms"] and "bridge" in result["arms"]:
        newest, bridge = result["arms"]["sdk_newest"]["median_s"], result["arms"]["bridge"]["median_s"]
        result["newest_ratio"] = newest / bridge if bridge == bridge and bridge > 0 else NAN
    if floor:
        result["floor_ratio"], result["floor_target"] = over_floor(result["arms"]), FLOOR_TARGET
    return result


def over_floor(arms: dict[str, Any]) -> float:
    """Bridge time / floor time (medians): 1.0 is as fast as any client can be, 1.15 is 15% above it."""
    bridge, floor = arms.get("bridge", {}).get("median_s", NAN), arms.get("floor", {}).get("median_s", NAN)
    return float(bridge / floor) if floor == floor and floor > 0 else NAN


async def w1(ctx: Context) -> dict[str, Any]:
    """200 calls of a 50 ms async tool in one turn."""
    ctx.log("w1: 200 calls of a 50 ms async tool in one turn")
    result = await _sdk_vs_bridge(ctx, {"calls": 200, "tool": "sleep"}, reps=ctx.reps_for(3, 5), newest=not ctx.quick)
    return {"kind": "turn", "title": "200 calls of a 50 ms async tool, one turn", "target": 25.0, **result}


async def w2(ctx: Context) -> dict[str, Any]:
    """200 trivial async calls in one turn."""
    ctx.log("w2: 200 trivial calls in one turn")
    result = await _sdk_vs_bridge(ctx, {"calls": 200, "tool": "noop"}, reps=ctx.reps_for(5, 7), newest=not ctx.quick)
    return {"kind": "turn", "title": "200 trivial calls, one turn", "target": 5.0, **result}


async def w2_sync(ctx: Context) -> dict[str, Any]:
    """200 trivial sync calls (`@beta_tool` / sync `@tool`: a worker thread per call)."""
    ctx.log("w2s: 200 trivial sync calls in one turn")
    spec = {"calls": 200, "tool": "noop"}
    result = await _sdk_vs_bridge(ctx, spec, reps=ctx.reps_for(3, 5), tool_kind="sync", floor=False)
    return {"kind": "turn", "title": "200 trivial sync calls, one turn", "target": 5.0, **result}


async def w3(ctx: Context) -> dict[str, Any]:
    """20 trivial calls with 50 ms of latency on every POST /events."""
    ctx.log("w3: 20 trivial calls, 50 ms added to every POST /events")
    result = await _sdk_vs_bridge(ctx, {"calls": 20, "tool": "noop"}, reps=ctx.reps_for(3, 7), post_latency=W3_LATENCY)
    # No client is answered before one POST has landed, so SDK time / latency bounds the ratio for any client.
    ceiling = result["arms"]["sdk"]["median_s"] / W3_LATENCY
    result["notes"].append(
        f"ceiling: no result lands before one POST's {W3_LATENCY * 1000:.0f} ms, so no client can beat the SDK by "
        f"more than SDK time / {W3_LATENCY * 1000:.0f} ms = {ceiling:.1f}x here (about N = 20 calls plus the SDK's own "
        "per-call cost); the 25x target is above that ceiling"
    )
    title = "20 trivial calls, +50 ms on every POST"
    return {"kind": "turn", "title": title, "target": 25.0, "ceiling": ceiling, **result}
