"""`bridge demo` as a subprocess: the final answer is right and the emulator saw no invariant violation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bridge.cli._demo import expected_answer, read_facts
from toolkits.database import make_sample_db


def test_demo_answers_correctly_with_zero_invariant_violations(run_bridge: Any, tmp_path: Path) -> None:
    """The demo runs offline in well under 15 s, corrects its bad call, and its answer matches the data."""
    done = run_bridge("demo", env={"ANTHROPIC_API_KEY": "", "ANTHROPIC_BASE_URL": "http://203.0.113.1:9"}, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    expected = expected_answer(read_facts(make_sample_db(tmp_path / "shop.db")))
    assert f"agent   {expected}" in out.splitlines()
    assert "invariants   0 violation(s): unanswered 0, duplicates 0, late 0, unknown 0" in out
    assert "answer       as expected" in out
    assert "tool  ← shipping_quote error" in out  # the bad call was rejected ...
    assert "tool  ← shipping_quote ok" in out  # ... and the corrected one answered
    assert "up to 3 calls at once: 2 fast call(s) answered while the slow warehouse call was still running" in out
    seconds = float(out.split("time         ")[1].split(" s")[0])
    assert seconds < 15
