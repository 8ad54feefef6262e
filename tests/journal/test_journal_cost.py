"""A printed (never asserted) measurement of what the SQLite journal costs against the in-memory one."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.anyio

BENCH = Path(__file__).resolve().parents[2] / "bench" / "journal_cost.py"


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("journal_cost_bench", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_print_sqlite_cost_against_memory(capsys: pytest.CaptureFixture[str]) -> None:
    """Prints sqlite/memory throughput on trivial lifecycles at a few concurrencies; speed is never asserted here."""
    bench = load_bench()
    rows = []
    for concurrency, calls in ((1, 200), (32, 1000), (256, 1000)):
        memory, sqlite, fsyncs = await bench.compare(calls, concurrency)
        assert memory > 0
        assert sqlite > 0
        rows.append((concurrency, memory, sqlite, fsyncs))
    with capsys.disabled():
        print("\n\nJournal cost on trivial calls (see bench/journal_cost.py):\n" + bench.table(rows) + "\n")
