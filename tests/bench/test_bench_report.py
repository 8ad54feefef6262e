"""The benchmark's report logic: percentiles, the markdown table, the README block (no timing here)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench._measure import Sample, percentile, summarize
from bench._report import END, START, render, update_readme
from bench.run import output, parse_args


def _report(sdk_s: float, bridge_s: float) -> dict[str, Any]:
    def arm(seconds: float) -> dict[str, Any]:
        return summarize([Sample(seconds, 200, 0.1, 3, 1, 0, 0)])

    machine = {
        "usable_cores": 2,
        "cpu": "cpu",
        "os": "Linux",
        "python": "CPython 3.11",
        "versions": {"anthropic": "2.10.0"},
        "load": [1.0],
        "load_before": [0.5],
        "git": "abc",
    }
    workload = {
        "kind": "turn",
        "title": "200 trivial calls, one turn",
        "target": 5.0,
        "arms": {"sdk": arm(sdk_s), "bridge": arm(bridge_s)},
        "ratio": sdk_s / bridge_s,
        "notes": [],
    }
    return {"command": "python bench/run.py", "backend": "asyncio", "seconds": 1.0, "machine": machine,
            "workloads": {"w2": workload}}  # fmt: skip


def test_percentile_is_nearest_rank() -> None:
    """p50 and p99 pick actual samples by nearest rank, so p99 of 100 values is the 99th smallest."""
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([3.0], 99) == 3.0


def test_table_shows_ratio_and_verdict() -> None:
    """A turn workload renders its ratio and whether it meets the target."""
    text = render(_report(0.5, 0.05))
    assert "**10.0x**" in text
    assert "**yes**" in text
    assert "**no**" in render(_report(0.5, 0.25))


def test_readme_block_is_replaced_in_place(tmp_path: Path) -> None:
    """Re-running replaces the marked block instead of appending a second one."""
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\nintro\n")
    update_readme(readme, "first")
    update_readme(readme, "second")
    text = readme.read_text()
    assert text.count(START) == 1
    assert text.count(END) == 1
    assert "second" in text
    assert "first" not in text
    assert text.startswith("# x\n\nintro\n")


def test_table_shows_bridge_over_floor_for_turn_workloads() -> None:
    """A turn workload that ran the floor arm shows bridge time / floor time beside the SDK ratio."""
    report = _report(0.5, 0.06)
    workload = report["workloads"]["w2"]
    workload["arms"]["floor"] = summarize([Sample(0.05, 200, 0.01, 1, 0, 0, 0)])
    workload["floor_ratio"] = 0.06 / 0.05
    text = render(report)
    assert "bridge / floor" in text
    assert "**1.20** (floor 50 ms)" in text
    assert "**1.20**" not in render(_report(0.5, 0.06)), "no floor arm, no floor cell"


def test_the_report_prints_tables_and_json_only_when_asked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without --json stdout is the markdown table; a bare --json prints JSON instead; --json FILE writes it too."""
    report = _report(0.5, 0.05)
    output(report, parse_args(["--quick"]))
    table = capsys.readouterr().out
    assert "| " in table
    assert "{" not in table
    output(report, parse_args(["--quick", "--json"]))
    assert json.loads(capsys.readouterr().out)["workloads"]["w2"]["ratio"] == 10.0
    output(report, parse_args(["--quick", "--json", str(tmp_path / "r.json")]))
    assert capsys.readouterr().out == table
    assert json.loads((tmp_path / "r.json").read_text())["command"] == "python bench/run.py"


def test_the_report_renders_both_sdk_arms_and_their_versions() -> None:
    """The oldest supported SDK and the newest at its best setting both appear, each with the version its worker ran."""
    report = _report(0.5, 0.05)
    workload = report["workloads"]["w2"]
    workload["arms"]["sdk_newest"] = summarize([Sample(0.4, 200, 0.1, 200, 1, 0, 0)])
    workload["newest_ratio"] = 0.4 / 0.05
    report["sdks"] = {
        "sdk": {"anthropic": "2.10.0", "runner": "defaults"},
        "sdk_newest": {"anthropic": "2.16.0", "runner": "max_concurrent_calls=None"},
    }
    text = render(report)
    assert "| workload | SDK 2.10.0 `tool_runner` | tool-bridge |" in text
    assert "newest SDK `tool_runner`, best setting | ratio (newest) |" in text
    assert (
        "SDK arms: oldest supported: anthropic 2.10.0, `tool_runner` with defaults; "
        "newest: anthropic 2.16.0, `tool_runner` with max_concurrent_calls=None." in text
    )
    row = next(line for line in text.splitlines() if line.startswith("| 2. "))
    assert row.count("200 POSTs") == 1, "the newest arm's cell stands beside the 2.10 arm's"
    assert "**10.0x**" in row
    assert "**8.0x**" in row
    assert "sdk_newest: " in text  # its repetitions are in the details too


def test_an_sdk_arm_that_could_not_be_set_up_is_named_not_hidden() -> None:
    """An SDK arm whose venv could not be made is reported as not run, with the reason."""
    report = _report(0.5, 0.05)
    report["sdks"] = {"sdk": {"anthropic": "2.10.0", "runner": "defaults"}, "sdk_newest": {"skipped": "no network"}}
    assert "newest: not run (no network)" in render(report)
