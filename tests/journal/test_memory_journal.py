"""The default journal's bounds: its size stops growing, and forgetting a finished call never re-runs it."""

from __future__ import annotations

import enum
import gc
import sys
import types
from collections import Counter
from typing import Any

import anyio
import pytest

from bridge import Bridge, Toolset, tool
from bridge.journal import CallState, MemoryJournal, StoredResult
from bridge.testing import AgentTurn, Emulator

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    """asyncio only: these tests are about sizes and the runtime's filters, not the event loop."""
    return "asyncio"


def deep_size(root: object) -> int:
    """Bytes of every object reachable from `root`, each counted once (classes, modules and enum members excluded)."""
    seen: set[int] = set()
    stack = [root]
    total = 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type | types.ModuleType | types.FunctionType | enum.Enum):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        stack.extend(gc.get_referents(obj))
    return total


async def test_default_journal_size_is_bounded_over_120_000_calls() -> None:
    """120,000 calls with 2 kB of input and result each leave the default journal at its bounds: 100,000 calls
    remembered, 1,000 whole, under 45 MB in all (the calls carried 240 MB)."""
    journal = MemoryJournal()
    session_id = "sesn_011CZkZbDZ9vd4QGzWmvbVNR"
    for i in range(120_000):
        tool_use_id = f"sevt_011CZkZd{i:016d}"
        await journal.receive(session_id, tool_use_id, "lookup", {"query": f"{i:>1000}"})
        if i % 10 == 9:
            await journal.abandon(session_id, [tool_use_id])
            continue
        result = StoredResult(content=({"type": "text", "text": f"{i:>1000}"},), is_error=False)
        await journal.complete(session_id, tool_use_id, result)
        await journal.mark_posted(session_id, [tool_use_id])
        await journal.mark_acked(session_id, tool_use_id, f"sevt_011CZkZe{i:016d}")
    stats = await journal.stats()
    assert (len(journal), stats.calls, journal.forgotten) == (100_000, 100_000, 20_000)
    assert sum(stats.by_state.values()) == 100_000
    assert stats.oldest_unfinished_age is None
    whole = [await journal.get(session_id, f"sevt_011CZkZd{i:016d}") for i in range(119_000, 120_000)]
    assert all(r is not None and (r.result is not None or r.state is CallState.ABANDONED) for r in whole)
    slim = await journal.get(session_id, f"sevt_011CZkZd{118_998:016d}")
    assert slim is not None
    assert (slim.state, slim.result, dict(slim.input)) == (CallState.ACKED, None, {})
    assert await journal.get(session_id, f"sevt_011CZkZd{19_999:016d}") is None
    assert deep_size(journal) < 45_000_000


async def test_windows_are_validated() -> None:
    """A negative window, or more whole records than remembered calls, is refused with both values named."""
    with pytest.raises(ValueError, match="keep_results=-1"):
        MemoryJournal(keep_results=-1)
    with pytest.raises(ValueError, match="keep_results=10, keep_finished=5"):
        MemoryJournal(keep_finished=5, keep_results=10)


async def test_a_zero_window_forgets_finished_calls_at_once() -> None:
    """With both windows at 0 a call is forgotten as it finishes, and unfinished calls are all still kept."""
    journal = MemoryJournal(keep_finished=0, keep_results=0)
    await journal.receive("s", "open", "lookup", {})
    await journal.receive("s", "done", "lookup", {})
    await journal.abandon("s", ["done"])
    assert await journal.get("s", "done") is None
    assert [r.tool_use_id for r in await journal.unfinished()] == ["open"]
    assert (len(journal), journal.forgotten) == (1, 1)


async def test_prune_reaches_both_windows() -> None:
    """prune() forgets finished calls by age whether they are kept whole or as a state only."""
    journal = MemoryJournal(keep_finished=10, keep_results=2)
    for i in range(6):
        await journal.receive("s", f"t{i}", "lookup", {})
        await journal.abandon("s", [f"t{i}"])
    await journal.receive("s", "open", "lookup", {})
    assert await journal.prune(older_than=3600) == 0
    assert await journal.prune(older_than=0) == 6
    assert len(journal) == 1


# -- the runtime never re-runs a call the journal forgot ---------------------------------------------------------

runs: Counter[str] = Counter()
turns: list[int] = []


@tool
async def pay(ref: str) -> str:
    """Move money (not idempotent: must run once per call).

    Args:
        ref: Which payment.
    """
    runs[ref] += 1
    return f"paid {ref}"


async def script(agent: AgentTurn) -> None:
    turns.append(len(turns))
    for batch in range(3):
        await agent.call_tools([("pay", {"ref": f"turn{turns[-1]}-{batch}-{i}"}) for i in range(4)])
    await agent.say("done")


async def test_calls_the_journal_forgot_are_not_run_again_when_redelivered() -> None:
    """With a journal that forgets every call as it finishes, a duplicated stream event, a call the stream skipped
    (read back from the history) and a second bridge re-reading the whole history still run each call once."""
    runs.clear()
    turns.clear()
    journal = MemoryJournal(keep_finished=0, keep_results=0)
    async with Emulator(script=script) as api:
        client = api.client()
        definitions: Any = Toolset([pay]).definitions()
        agent = await client.beta.agents.create(name="forgetful", model="claude-opus-5", tools=definitions)
        env = await client.beta.environments.create(name="env")
        session = await client.beta.sessions.create(agent=agent.id, environment_id=env.id)
        api.control.duplicate_next_event(session.id, "agent.custom_tool_use")
        api.control.skip_next_event(session.id, "agent.custom_tool_use")
        with anyio.fail_after(20):
            async with Bridge(client, [pay], journal=journal) as bridge:
                assert await bridge.ask(session.id, "first") == "done"
            assert (len(journal), journal.forgotten) == (0, 12)
            async with Bridge(client, [pay], journal=journal) as bridge:  # a new runner reads the whole history
                assert await bridge.ask(session.id, "second") == "done"
        api.control.invariants(session.id).assert_ok()
    assert len(runs) == 24
    assert set(runs.values()) == {1}
    assert (len(journal), journal.forgotten) == (0, 24)


def test_a_fast_transition_copy_equals_dataclasses_replace() -> None:
    """The memory journal's record copy (`_evolve`, which skips `__init__`) gives exactly what `replace` gives; it
    relies on `CallRecord` having no `__post_init__` and no slots, which this also pins down."""
    from dataclasses import replace

    from bridge.journal import CallRecord
    from bridge.journal._memory import _evolve

    assert not hasattr(CallRecord, "__post_init__")
    assert not hasattr(CallRecord, "__slots__")
    record = CallRecord("s", "c", "t", {"i": 1}, CallState.RECEIVED, thread_id="th", created_at=1.0)
    result = StoredResult(({"type": "text", "text": "ok"},), False)
    changes: dict[str, Any] = {"state": CallState.COMPLETED, "result": result, "updated_at": 2.0}
    moved = _evolve(record, **changes)
    assert moved == replace(record, **changes)
    assert record.state is CallState.RECEIVED  # the original is untouched
