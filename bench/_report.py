"""The report: a markdown table (the README's), per-workload details, and the optional PNG chart."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

START, END = "<!-- bench:start -->", "<!-- bench:end -->"
NAMES = {"w1": "1", "w2": "2", "w2s": "2s", "w3": "3", "w4": "4", "w5": "5", "w6": "6", "w7": "7"}


def _ok(value: float) -> bool:
    return isinstance(value, int | float) and not math.isnan(value)


def _ms(seconds: float) -> str:
    if not _ok(seconds):
        return "n/a"
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1000:.0f} ms"


def _met(met: bool | None) -> str:
    return "n/a" if met is None else ("**yes**" if met else "**no**")


def _turn_cell(arm: dict[str, Any] | None) -> str:
    if not arm or not _ok(arm["median_s"]):
        return "n/a"
    return f"{_ms(arm['median_s'])} ({arm['calls_per_s']:,.0f} calls/s, {arm['result_posts']:.0f} POSTs)"


def _row(key: str, result: dict[str, Any]) -> list[str]:
    name = f"{NAMES.get(key, key)}. {result.get('title', key)}"
    if "error" in result:
        return [name, "failed", "failed", "n/a", "", "n/a", "", "", ""]
    return [*_cells(name, result), _floor_cell(result), *_newest_cells(result)]


def _newest_cells(result: dict[str, Any]) -> list[str]:
    """The newest SDK's arm at its best setting, and SDK time / bridge time for it (turn workloads), else blank."""
    arm = result.get("arms", {}).get("sdk_newest") if result.get("kind") == "turn" else None
    if not arm:
        return ["", ""]
    ratio = result.get("newest_ratio", float("nan"))
    return [_turn_cell(arm), f"**{ratio:.1f}x**" if _ok(ratio) else "n/a"]


def sdk_line(report: dict[str, Any]) -> str:
    """Which `anthropic` each SDK arm's worker imported, and how its runner was set."""
    labels = {"sdk": "oldest supported", "sdk_newest": "newest"}
    parts = []
    for label, sdk in report.get("sdks", {}).items():
        if "skipped" in sdk:
            parts.append(f"{labels.get(label, label)}: not run ({sdk['skipped']})")
        else:
            parts.append(
                f"{labels.get(label, label)}: anthropic {sdk['anthropic']}, `tool_runner` with {sdk['runner']}"
            )
    return "; ".join(parts)


def _floor_cell(result: dict[str, Any]) -> str:
    """Bridge time / floor time for the workloads that ran the floor arm (`bench/turns.py`), else blank."""
    ratio = result.get("floor_ratio")
    if ratio is None:
        return ""
    floor = result.get("arms", {}).get("floor", {}).get("median_s", float("nan"))
    return f"**{ratio:.2f}** (floor {_ms(floor)})" if _ok(ratio) else "n/a"


def _cells(name: str, result: dict[str, Any]) -> list[str]:
    kind = result.get("kind")
    if kind == "turn":
        arms, ratio, target = result["arms"], result["ratio"], result["target"]
        met = ratio >= target if _ok(ratio) else None
        ratio_text = f"**{ratio:.1f}x**" if _ok(ratio) else "n/a"
        target_text = f">= {target:g}x"
        if _ok(result.get("ceiling", float("nan"))):
            target_text += f" (most possible: {result['ceiling']:.1f}x)"
        return [name, _turn_cell(arms.get("sdk")), _turn_cell(arms.get("bridge")), ratio_text, target_text,
                _met(met)]  # fmt: skip
    if kind == "journal":
        arms = result.get("arms", {})
        ratio = result.get("ratio", float("nan"))
        ratio_text = f"**{ratio:.2f}** (cost {1 - ratio:.0%})" if _ok(ratio) else "n/a"
        cells = [f"memory {_turn_cell(arms.get('memory'))}", f"SQLite {_turn_cell(arms.get('sqlite'))}"]
        met = ratio >= result["target"] if _ok(ratio) else None
        return [name, *cells, ratio_text, ">= 0.80 (cost <= 20%)", _met(met)]
    if kind == "fleet":
        largest = max(int(key.split()[1]) for key in result["results"])
        steady = result["results"].get(f"steady {largest}", {})
        burst = result["results"].get(f"burst {largest}", {})

        def cell(side: str) -> str:
            r, b = steady.get(side), burst.get(side)
            if not r:
                return "n/a"
            text = (f"steady: {r['answered']:.0f}/{r['calls']:.0f} answered, p99 overhead {_ms(r['p99_overhead_s'])}, "
                    f"peak RSS {r['peak_rss_mb']:.0f} MB")  # fmt: skip
            if b:
                text += f"; burst: {b['throughput']:,.0f} calls/s, p99 {_ms(b['p99_overhead_s'])}"
            return text

        ratio = float("nan")
        if "bridge" in steady and "sdk" in steady:
            ratio = steady["sdk"]["p99_overhead_s"] / steady["bridge"]["p99_overhead_s"]
        burst_ratio = float("nan")
        if "bridge" in burst and "sdk" in burst:
            burst_ratio = burst["bridge"]["throughput"] / burst["sdk"]["throughput"]
        parts = [f"**{ratio:.1f}x** lower p99 overhead" if _ok(ratio) else "",
                 f"**{burst_ratio:.1f}x** burst throughput" if _ok(burst_ratio) else ""]  # fmt: skip
        ratio_text = "; ".join(p for p in parts if p) or "n/a"
        return [name, cell("sdk"), cell("bridge"), ratio_text, result["target"], _met(result.get("met"))]
    if kind == "reconnect":
        arms = result["arms"]

        def cell(side: str) -> str:
            r = arms.get(side)
            if not r:
                return "n/a"
            return (f"{r['requests']:.0f} requests ({r['history_pages']:.0f} history pages), "
                    f"answered {_ms(r['reconnect_to_answer_s'])} after reconnecting")  # fmt: skip

        ratio = result.get("ratio", float("nan"))
        ratio_text = f"**{ratio:.1f}x** faster" if _ok(ratio) else "n/a"
        return [name, cell("sdk"), cell("bridge"), ratio_text, result["target"], _met(result.get("met"))]
    if kind == "fleetpg":
        results = result["results"]
        largest = max(int(key.split()[0]) for key in results)

        def fleet_cell(members: int) -> str:
            r = results.get(f"{largest} x{members}")
            if not r:
                return "n/a"
            return (f"{members} process(es): {r['answered']:.0f}/{r['sessions']:.0f} answered, "
                    f"{r['sessions_per_s']:,.0f} sessions/s, p99 overhead {_ms(r['p99_overhead_s'])}")  # fmt: skip

        one, three = results.get(f"{largest} x1"), results.get(f"{largest} x3")
        ratio = three["sessions_per_s"] / one["sessions_per_s"] if one and three else float("nan")
        ratio_text = f"**{ratio:.2f}x** sessions/s" if _ok(ratio) else "n/a"
        met = None if not (one and three) else not (one["duplicates"] or three["duplicates"])
        return [name, fleet_cell(1), fleet_cell(3), ratio_text, "all answered once", _met(met)]
    return [name, "?", "?", "?", "", "n/a"]


def _table(rows: list[list[str]], header: list[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def machine_line(report: dict[str, Any]) -> str:
    m = report["machine"]
    shown = ("pydantic", "anyio") if report.get("sdks") else ("anthropic", "pydantic", "anyio")  # else: "SDK arms"
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items() if k in shown)
    load = m.get("load_before")
    return (
        f"{m['usable_cores']} cores ({m['cpu']}), {m['os']}, {m['python']}, {versions}; workers on "
        f"{report['backend']}; load average {load[0] if load else '?'} at start, {m['load'][0] if m['load'] else '?'}"
        f" at end; git {m.get('git') or '?'}; {report['seconds']:.0f} s in all."
    )


def _details(key: str, result: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    kind = result.get("kind")
    if kind in ("turn", "journal") and "arms" in result:
        parts = []
        for label, arm in result["arms"].items():
            times = ", ".join(_ms(s["seconds"]) for s in arm["samples"])
            parts.append(f"{label}: {arm['cpu_ms_per_call']:.2f} ms CPU per call, reps [{times}]")
        lines.append(f"- {NAMES.get(key, key)}: " + "; ".join(parts) + ".")
    if kind == "fleet":
        for key, sides in result["results"].items():
            for side, r in sides.items():
                lines.append(
                    f"- 4 ({key} sessions, {side}): {r['answered']:.0f}/{r['calls']:.0f} answered, "
                    f"{r['throughput']:,.0f} calls/s, overhead p50 {_ms(r['p50_overhead_s'])} p99 "
                    f"{_ms(r['p99_overhead_s'])} max {_ms(r['max_overhead_s'])}, peak RSS {r['peak_rss_mb']:.0f} MB "
                    f"(idle process {r['rss_baseline_mb']:.0f} MB), client CPU {r['cpu_s']:.1f} s of which GC "
                    f"{r['gc_s']:.1f} s, emulator CPU {r['emulator_cpu_s']:.1f} s."
                )
    if kind == "reconnect":
        for side, r in result["arms"].items():
            routes = ", ".join(f"{route} x{n}" for route, n in r["runs"][0]["by_route"].items())
            lines.append(
                f"- 6 ({side}): {r['history_events']:.0f} events of history; call to answer "
                f"{_ms(r['call_to_answer_s'])}, cut to answer {_ms(r['cut_to_answer_s'])}; requests: {routes}."
            )
    if result.get("micro"):
        rows = [
            [f"{r['concurrency']}", f"{r['memory_per_s']:,.0f}", f"{r['sqlite_per_s']:,.0f}",
             f"{r['sqlite_per_s'] / r['memory_per_s']:.0%}", f"{r['fsyncs_per_call']:.2f}"]
            for r in result["micro"]
        ]  # fmt: skip
        lines.append("\nJournal only (`bench/journal_cost.py`, the five transitions of a call, no HTTP):\n")
        lines.append(_table(rows, ["calls in flight", "memory calls/s", "SQLite calls/s", "SQLite / memory",
                                   "fsyncs per call"]) + "\n")  # fmt: skip
    for note in result.get("notes", []):
        lines.append(f"- {NAMES.get(key, key)}: {note}")
    if "error" in result:
        lines.append(f"- {NAMES.get(key, key)}: failed: {result['error']}")
    return lines


def render(report: dict[str, Any]) -> str:
    """The markdown report: machine, the comparison table, then the details behind each row."""
    workloads = report["workloads"]
    rows = [_row(key, result) for key, result in workloads.items()]
    sdks = report.get("sdks", {})
    oldest = sdks.get("sdk", {}).get("anthropic")
    sdk = f"SDK {oldest} `tool_runner`" if oldest else "SDK `tool_runner`"
    header = [
        *("workload", sdk, "tool-bridge", "ratio", "target", "met", "bridge / floor"),
        *("newest SDK `tool_runner`, best setting", "ratio (newest)"),
    ]
    details = [line for key, result in workloads.items() for line in _details(key, result)]
    return "\n".join(
        [
            f"Command: `{report['command']}`",
            "",
            f"Machine: {machine_line(report)}",
            "",
            *([f"SDK arms: {sdk_line(report)}.", ""] if sdks else []),
            _table(rows, header),
            "",
            "Ratios are SDK time / bridge time for the same work (= throughput ratio), medians over alternating "
            "repetitions; times are the agent's, from emitting a turn's calls to receiving the last result. "
            "Bridge / floor is bridge time / the time of an ideal client on the same emulator (one POST per idle, "
            "no tool code; the 50 ms tool's time waited once), aim <= 1.15. The newest SDK runs at its best setting "
            "(`max_concurrent_calls=None`), which lets calls of different session threads run at once; calls of one "
            "thread, as in these turns, it still runs one at a time.",
            "",
            *details,
        ]
    )


def update_readme(path: Path, markdown: str) -> None:
    """Replace the README's benchmark block (between the bench markers), or append a Benchmarks section."""
    block = f"{START}\n{markdown}\n{END}"
    text = path.read_text() if path.exists() else ""
    if START in text and END in text:
        text = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n## Benchmarks\n\n" + block + "\n"
    path.write_text(text)


def write_chart(report: dict[str, Any], path: Path) -> str:
    """A PNG of throughput against concurrent sessions (workload 4), if matplotlib is installed."""
    fleet = report["workloads"].get("w4")
    if not fleet or "results" not in fleet:
        return "no chart: workload 4 was not run"
    try:
        import matplotlib  # type: ignore[import-not-found,unused-ignore]

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return "no chart: matplotlib is not installed (pip install matplotlib)"
    sizes = sorted({int(key.split()[1]) for key in fleet["results"]})
    figure, axes = plt.subplots(figsize=(6, 4))
    for side, label in (("sdk", "SDK tool_runner (one per session)"), ("bridge", "tool-bridge (one Bridge)")):
        burst = [fleet["results"].get(f"burst {s}", {}).get(side) for s in sizes]
        points = [(s, r["throughput"]) for s, r in zip(sizes, burst, strict=True) if r]
        if points:
            axes.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
    axes.set_xscale("log")
    axes.set_xlabel("sessions, one call each, released at once")
    axes.set_ylabel("calls answered per second")
    axes.legend()
    axes.grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return f"chart written to {path}"
