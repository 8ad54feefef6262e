"""Workload 6: a stream reconnect after 10,000 events of history.

Each side serves a session whose history already holds 10,000 events (filled by the agent before the client attaches)
and answers one warm-up call. Then the driver cuts the stream and, while the client is away, the agent makes one more
call. New streams are held back by `GAP` seconds (the emulator's latency knob on the stream route) so that the call
surely falls in the gap, for both sides alike. Reported: the requests the client made from the cut until the call was
answered (history pages above all: the SDK re-reads the whole history on every reconnect), the time from the call to
its answer, and from the new stream's opening to the answer (which leaves out each side's reconnect backoff).
"""

from __future__ import annotations

import time
from typing import Any

import anyio

from bench._context import Context, bridge_available
from bench._host import Host
from bench._measure import median

HISTORY = 10_000
GAP = 0.1
STREAM_ROUTE = "GET /v1/sessions/*/events/stream"


async def fill_history(host: Host, events: int) -> str:
    """A fresh session whose history holds at least `events` events (the agent says something that many times)."""
    (session_id,) = await host.new_sessions(1)
    await host.send([session_id], {"fill": events})
    await host.api.control.wait_idle(session_id, "end_turn", timeout=120)
    return session_id


async def reconnect_once(ctx: Context, side: str) -> dict[str, Any]:
    host, control = ctx.host, ctx.host.api.control
    session_id = await fill_history(host, HISTORY)
    history = len(control.events(session_id))
    worker = await ctx.worker(side)
    await worker.call({"op": "serve", "sessions": [session_id]})
    try:
        await host.wait_connected([session_id])
        await host.send([session_id], {"calls": 1, "tool": "noop", "tag": f"{session_id}:warm"})
        await host.recorder.wait_turns([f"{session_id}:warm"], 60)
        await control.wait_idle(session_id, "end_turn", timeout=30)
        connects = control.stream_connects(session_id)
        control.latency(STREAM_ROUTE, GAP)
        mark = host.request_mark()
        reconnected = float("nan")

        async def watch_reconnect() -> None:
            nonlocal reconnected
            await control.wait_streams(session_id, connects=connects + 1, timeout=60)
            reconnected = time.perf_counter()

        cut = time.perf_counter()
        async with anyio.create_task_group() as tg:
            control.drop_streams(session_id)
            tg.start_soon(watch_reconnect)
            await host.send([session_id], {"calls": 1, "tool": "noop", "tag": f"{session_id}:after"})
            turns = await host.recorder.wait_turns([f"{session_id}:after"], 60)
    finally:
        control.latency(STREAM_ROUTE, None)
        await worker.call({"op": "stop"})
    counts = host.count_requests(mark, {session_id})
    answered = turns[0].ended if turns and not turns[0].unanswered else float("nan")
    return {
        "history_events": history,
        "answered": bool(turns and not turns[0].unanswered),
        "call_to_answer_s": turns[0].seconds if turns else float("nan"),
        "cut_to_answer_s": answered - cut,
        "reconnect_to_answer_s": answered - reconnected,
        "history_pages": counts.get("GET /v1/sessions/*/events", 0),
        "stream_opens": counts.get(STREAM_ROUTE, 0),
        "requests": sum(counts.values()) - 1,  # the driver's own message
        "by_route": counts,
    }


async def w6(ctx: Context) -> dict[str, Any]:
    """Reconnect after 10,000 events: requests made and time until the next call is answered."""
    ctx.log(f"w6: reconnect after {HISTORY:,} events of history")
    sides = ["sdk", "bridge"] if bridge_available() else ["sdk"]
    reps = ctx.reps_for(1, 3)
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
    for rep in range(reps):
        for side in sides if rep % 2 == 0 else sides[::-1]:
            run = await reconnect_once(ctx, side)
            runs[side].append(run)
            ctx.log(
                f"  rep {rep + 1}/{reps} {side:>6}: {run['requests']} requests ({run['history_pages']} history pages), "
                f"call->answer {run['call_to_answer_s'] * 1000:.0f} ms, "
                f"reconnect->answer {run['reconnect_to_answer_s'] * 1000:.0f} ms"
            )
    arms: dict[str, dict[str, Any]] = {}
    for side, side_runs in runs.items():
        numeric = [k for k, v in side_runs[0].items() if isinstance(v, int | float) and not isinstance(v, bool)]
        arms[side] = {**{k: median([float(r[k]) for r in side_runs]) for k in numeric}, "runs": side_runs}
    met = None
    ratio = float("nan")
    if "bridge" in arms:
        met = all(r["answered"] and r["history_pages"] <= 1 for r in runs["bridge"])
        ratio = arms["sdk"]["reconnect_to_answer_s"] / arms["bridge"]["reconnect_to_answer_s"]
    return {
        "kind": "reconnect",
        "title": f"reconnect after {HISTORY:,} events of history",
        "arms": arms,
        "ratio": ratio,
        "reps": reps,
        "target": "reads only what it missed (1 history page)",
        "met": met,
    }
