"""Run the benchmarks: tool-bridge against the SDK's session tool runner, same machine, same run.

    python bench/run.py --quick             # workloads 1, 2, 3 and 5, under 3 minutes on 2 cores
    python bench/run.py                     # all seven workloads (7, the fleet, needs PostgreSQL's binaries)
    python bench/run.py --only w4 w6        # some of them
    python bench/run.py --readme README.md  # also rewrite the README's benchmark table
    python bench/run.py --quick --json      # the results as JSON (on stdout) instead of the tables

How it measures:
    * The emulator (`bridge.testing.Emulator`, the real HTTP API surface on 127.0.0.1) runs in this process; each side
      runs in its own worker process (`bench/_worker.py`), the SDK's `tool_runner` with `@beta_async_tool` /
      `@beta_tool` tools, or our `Bridge` with the same tools as `@tool`. Both use the same `AsyncAnthropic` setup.
    * Two SDK arms (`bench/_sdks.py`): the oldest `anthropic` we support (2.10, the ratios' baseline) as its docs show
      it, and the newest at its best setting (`max_concurrent_calls=None`), each in a worker on an interpreter that
      has that SDK (a cached venv made on first use when this one has another). Workloads 1-3 and 2s run both
      (under `--quick` only 3: see `bench/turns.py`); the report prints each arm's version.
    * Workloads 1-3 also time a third arm, the floor (`bench/turns.py`): an ideal client, one stream and one POST per
      `requires_action` idle, no tool code; the report gives bridge time / floor time.
    * Time is the agent's: the scripted agent reads the clock when it emits a turn's calls and when the last result
      has arrived (`bench/_host.py`). Start-up and shutdown of either side are not in it.
    * Each workload alternates the sides (A B, B A, ...) over several repetitions after one warm-up each, and
      reports medians. A ratio is SDK time / bridge time for the same work, i.e. the throughput ratio.
    * Peak RSS (workload 4) is the high-water mark (`VmHWM`) of the worker process that served the sessions: a fresh
      process per measurement, holding nothing but that side (the emulator lives elsewhere). Not `ru_maxrss`: Linux
      carries it across fork and exec, so a worker would report the driver's peak. Not tracemalloc: it sees only
      Python allocations, not what the process really holds, and it slows every allocation, which would distort the
      timings taken in the same run.
    * The machine (2 cores, shared) is noisy: compare ratios within one run, not absolute times across runs.

Output: progress on stderr; the markdown report (tables) on stdout. `--json` prints the results as JSON instead,
`--json FILE` writes them to FILE beside the report.

Investigation knobs (environment, for the workers): `BENCH_PYSPY=dir` runs each worker under py-spy and writes its
collapsed stacks there (summarise with `python -m bench._profile dir/*.txt`); `BENCH_GC_THRESHOLD=100000` raises the
workers' first GC threshold; `BENCH_WORKER_ARGS=--pool-per-session` gives each SDK runner its own HTTP pool.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import fleet, fleet_pg, journal, reconnect, turns  # noqa: E402
from bench._context import Context  # noqa: E402
from bench._host import open_host  # noqa: E402
from bench._machine import describe  # noqa: E402
from bench._report import render, update_readme, write_chart  # noqa: E402

Workload = Callable[[Context], Awaitable[dict[str, Any]]]
WORKLOADS: dict[str, Workload] = {
    "w1": turns.w1,
    "w2": turns.w2,
    "w2s": turns.w2_sync,
    "w3": turns.w3,
    "w4": fleet.w4,
    "w5": journal.w5,
    "w6": reconnect.w6,
    "w7": fleet_pg.w7,
}
QUICK = ["w1", "w2", "w3", "w5"]
FULL = ["w1", "w2", "w2s", "w3", "w4", "w5", "w6", "w7"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python bench/run.py", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="workloads 1, 2, 3, 5 with fewer repetitions")
    parser.add_argument("--only", nargs="+", choices=sorted(WORKLOADS), help="run only these workloads")
    parser.add_argument("--reps", type=int, default=None, help="repetitions per workload (default: per workload)")
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio", help="the workers' event loop")
    parser.add_argument(
        "--json",
        nargs="?",
        const="-",
        default=None,
        metavar="FILE",
        help="the results as JSON: to FILE, or instead of the table on stdout when no FILE is given",
    )
    parser.add_argument("--readme", type=Path, default=None, help="rewrite this README's benchmark section")
    parser.add_argument("--chart", type=Path, default=None, help="PNG of throughput against sessions (matplotlib)")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    names = args.only or (QUICK if args.quick else FULL)
    started = time.perf_counter()
    machine_before = describe()
    api, host = await open_host()
    ctx = Context(host, quick=args.quick, reps=args.reps, backend=args.backend)
    results: dict[str, Any] = {}
    try:
        for name in names:
            try:
                results[name] = await WORKLOADS[name](ctx)
            except Exception as exc:  # one broken workload must not lose the others' numbers
                ctx.log(f"{name} failed: {exc!r}")
                results[name] = {"title": name, "error": repr(exc)}
    finally:
        await ctx.close()
        with anyio.CancelScope(shield=True):
            await api.__aexit__(None, None, None)
    machine = describe()
    machine["load_before"] = machine_before["load"]
    command = (
        "python bench/run.py"
        + (" --quick" if args.quick else "")
        + (" --only " + " ".join(args.only) if args.only else "")
    )
    return {
        "command": command,
        "backend": args.backend,
        "seconds": time.perf_counter() - started,
        "machine": machine,
        "sdks": ctx.sdks,
        "workloads": results,
    }


def output(report: dict[str, Any], args: argparse.Namespace) -> str:
    """Print the report: its tables, or with a bare `--json` the JSON instead; `--json FILE` also writes the JSON.

    Returns the markdown (for `--readme`).
    """
    markdown = render(report)
    as_json = json.dumps(report, indent=2, default=str) + "\n"
    if args.json == "-":
        sys.stdout.write(as_json)
    else:
        print(markdown)
        if args.json:
            Path(args.json).write_text(as_json)
    return markdown


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    report = anyio.run(run, args)
    markdown = output(report, args)
    if args.readme:
        update_readme(args.readme, markdown)
    if args.chart:
        print(write_chart(report, args.chart), file=sys.stderr)


if __name__ == "__main__":
    main()
