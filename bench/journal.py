"""Workload 5: what durability costs. The Bridge with the in-memory journal against the SQLite one, trivial tools.

End to end: the same Bridge worker serves a turn of 200 trivial calls with `MemoryJournal` and with `SqliteJournal`
(in a fresh temporary directory each time), alternating; the ratio is SQLite throughput / memory throughput, and the
target is that durability costs at most 20% (ratio >= 0.80). Trivial tools are the worst case: no tool time hides the
journal's fsyncs. When `bench/journal_cost.py` (the journal engineer's microbenchmark: the five journal transitions of
a call and nothing else) is in the checkout, its figures are reported beside, from the same worker process.
"""

from __future__ import annotations

from typing import Any

from bench._context import Context, bridge_available, comparison, journal_micro_available, sqlite_journal_available
from bench._measure import Arm, alternate

TARGET = 0.80


async def w5(ctx: Context) -> dict[str, Any]:
    """Memory vs SQLite journal, through the Bridge end to end, plus the journal-only microbenchmark."""
    ctx.log("w5: journal cost, in-memory vs SQLite, 200 trivial calls through the Bridge")
    notes: list[str] = []
    result: dict[str, Any] = {"kind": "journal", "title": "journal: SQLite vs in-memory, 200 trivial calls",
                              "target": TARGET}  # fmt: skip
    if not bridge_available() or not sqlite_journal_available():
        missing = "bridge.Bridge" if not bridge_available() else "bridge.journal.SqliteJournal"
        notes.append(f"{missing} is not in this checkout yet: end-to-end comparison skipped")
    else:
        worker = await ctx.worker("bridge")
        arms = [Arm("memory", worker, {"journal": "memory"}), Arm("sqlite", worker, {"journal": "sqlite"})]
        samples = await alternate(ctx.host, arms, {"calls": 200, "tool": "noop"}, reps=ctx.reps_for(5, 7), log=ctx.log)
        # comparison() divides baseline time by candidate time: memory / sqlite = sqlite throughput / memory's.
        result.update(comparison(samples, "memory", "sqlite", reps=ctx.reps_for(5, 7)))
    if journal_micro_available():
        calls = 2000 if ctx.quick else 5000
        levels = [1, 32, 256]
        ctx.log(f"  journal-only microbenchmark: {calls} calls at {levels} in flight")
        worker = await ctx.worker("bridge")
        reply = await worker.call({"op": "journal_micro", "calls": calls, "concurrency": levels}, timeout=300)
        result["micro"] = reply.get("rows", [])
    else:
        notes.append("bench/journal_cost.py is not in this checkout yet: microbenchmark skipped")
    result["notes"] = [*result.get("notes", []), *notes]
    return result
