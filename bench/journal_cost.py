"""What durability costs: the SQLite journal against the in-memory one, on trivial calls.

Each call makes the five transitions the runtime makes (receive, start, complete, mark_posted, mark_acked) with no
tool work in between, so this is the worst case: the journal is all there is. `concurrency` calls are in flight at
once, as when a bridge serves that many calls together; group commit shares one fsync among them.

    python bench/journal_cost.py            # from the repository root
    python bench/journal_cost.py --calls 5000 --concurrency 1 32 256
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import anyio

try:
    import bridge  # noqa: F401
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bridge.journal import Journal, MemoryJournal, SqliteJournal, StoredResult

RESULT = StoredResult(content=({"type": "text", "text": "ok"},), is_error=False)


async def lifecycle_rate(journal: Journal, calls: int, concurrency: int) -> float:
    """Calls per second through the full lifecycle with `concurrency` calls in flight."""
    remaining = iter(range(calls))

    async def worker() -> None:
        for i in remaining:
            tool_use_id = f"toolu_{i}"
            await journal.receive("sesn_bench", tool_use_id, "echo", {"i": i})
            await journal.start("sesn_bench", tool_use_id)
            await journal.complete("sesn_bench", tool_use_id, RESULT)
            await journal.mark_posted("sesn_bench", [tool_use_id])
            await journal.mark_acked("sesn_bench", tool_use_id, f"sevt_{i}")

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(worker)
    return calls / (time.perf_counter() - started)


async def measure(make: Callable[[], Journal], calls: int, concurrency: int) -> tuple[float, float]:
    """(calls per second, commits per call) for a fresh journal from `make`."""
    journal = make()
    async with journal:  # type: ignore[attr-defined]
        rate = await lifecycle_rate(journal, calls, concurrency)
        commits = getattr(journal, "fsyncs", 0) / calls
    return rate, commits


async def compare(calls: int, concurrency: int) -> tuple[float, float, float]:
    """(memory calls/s, sqlite calls/s, sqlite commits per call) at one concurrency."""
    with tempfile.TemporaryDirectory() as tmp:
        memory, _ = await measure(MemoryJournal, calls, concurrency)
        sqlite, commits = await measure(lambda: SqliteJournal(Path(tmp) / "journal.db"), calls, concurrency)
    return memory, sqlite, commits


def table(rows: list[tuple[int, float, float, float]]) -> str:
    lines = [
        "| calls in flight | memory calls/s | sqlite calls/s | sqlite / memory | fsyncs per call |",
        "|---:|---:|---:|---:|---:|",
    ]
    for concurrency, memory, sqlite, commits in rows:
        lines.append(f"| {concurrency} | {memory:,.0f} | {sqlite:,.0f} | {sqlite / memory:.0%} | {commits:.2f} |")
    return "\n".join(lines)


async def main(calls: int, concurrencies: list[int], backend: str) -> None:
    rows = []
    for concurrency in concurrencies:
        memory, sqlite, commits = await compare(calls, concurrency)
        rows.append((concurrency, memory, sqlite, commits))
    print(f"Journal cost, {calls} trivial calls x 5 transitions each ({backend}, SQLite WAL + synchronous=FULL):\n")
    print(table(rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32, 256])
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = parser.parse_args()
    anyio.run(main, args.calls, args.concurrency, args.backend, backend=args.backend)
