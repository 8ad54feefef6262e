"""The network fault matrix: each fault, then the emulator's invariant checker (I1 no lost result, I3 exactly one
result, I5 answered in bounded time) and a count of tool executions (no call is ever run twice)."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest
from e2e_support import BOTH_BACKENDS, Calls, World, serve_turn, world

from bridge import APIAccessError, Bridge, CallEventKind, Timeouts, tool
from bridge.journal import Journal, MemoryJournal, SqliteJournal
from bridge.testing import AgentTurn, Control

pytestmark = pytest.mark.anyio

EVENTS_ROUTE = "POST /v1/sessions/*/events"
FAST = Timeouts(stream_idle=0.3, reconnect_max=0.2, post_backoff_max=0.2)


class Tools:
    """`work` counts its runs; it waits on `gate` so a test can place a fault while calls are in flight."""

    def __init__(self, *, gated: bool = False) -> None:
        self.runs: Counter[int] = Counter()
        self.gate = anyio.Event()
        if not gated:
            self.gate.set()

        @tool
        async def work(n: int) -> str:
            """Do some work.

            Args:
                n: Which piece.
            """
            await self.gate.wait()
            self.runs[n] += 1
            return f"done {n}"

        self.work = work


async def two_steps(agent: AgentTurn) -> None:
    first = await agent.call_tools([("work", {"n": i}) for i in range(3)])
    second = await agent.call_tools([("work", {"n": i}) for i in range(3, 5)])
    await agent.say(" / ".join(r.text for r in first + second))


def assert_clean(control: Control, session_id: str, tools: Tools, calls: int = 5) -> None:
    report = control.invariants(session_id)
    report.assert_ok()
    assert len(report.calls) == calls
    assert report.max_time_to_answer < 5.0
    assert all(count == 1 for count in tools.runs.values()), tools.runs


async def test_stream_drops_at_random_points_lose_nothing() -> None:
    """50 seeded runs, each session's stream cut after a random number of events (twice): every call answered once."""
    tools = Tools()
    rng = random.Random(20240611)
    async with world([tools.work], two_steps) as w:
        sessions = [await w.session() for _ in range(50)]
        for session_id in sessions:
            for _ in range(2):
                w.api.control.drop_next_stream(session_id, after_events=rng.randrange(0, 14))
        async with Bridge(w.client, [tools.work], timeouts=FAST) as bridge:
            with anyio.fail_after(30):
                async with anyio.create_task_group() as tg:
                    for session_id in sessions:
                        tg.start_soon(bridge.ask, session_id, "go")
            stats = bridge.stats()
        for session_id in sessions:
            report = w.api.control.invariants(session_id)
            report.assert_ok()
            assert len(report.calls) == 5
            assert w.api.control.stream_connects(session_id) >= 2
    assert sum(tools.runs.values()) == 250
    assert stats.reconnects >= 50


async def run_with_fault(w: World, tools: Tools, fault: Any, **bridge_options: Any) -> tuple[str, Calls]:
    """Serve one session; once its first calls are running, apply `fault(session_id)`, then let the tools finish."""
    session_id = await w.session()
    calls = Calls()
    async with Bridge(w.client, [tools.work], timeouts=FAST, on_call=calls.listen, **bridge_options) as bridge:
        bridge.attach(session_id)
        await w.say(session_id)
        with anyio.fail_after(10):
            await calls.wait(CallEventKind.STARTED, 3)
            fault(session_id)
            tools.gate.set()
            await w.api.control.wait_idle(session_id, "end_turn")
    return session_id, calls


def reconnected(c: Control, s: str) -> bool:
    return c.stream_connects(s) >= 2


def statuses(*codes: int) -> Any:
    return lambda c, s: set(codes) <= {r.status for r in c.requests(EVENTS_ROUTE)}


@pytest.mark.parametrize(
    ("fault", "hit"),
    [
        pytest.param(lambda c, s: c.stall_streams(s), reconnected, id="stall"),
        pytest.param(lambda c, s: c.duplicate_next_event(s), None, id="duplicated-event"),
        pytest.param(lambda c, s: c.duplicate_next_event(s, "agent.custom_tool_use"), None, id="duplicated-tool-use"),
        pytest.param(lambda c, s: c.fail_next(EVENTS_ROUTE, [503, 500, 502]), statuses(503, 500, 502), id="5xx"),
        pytest.param(
            lambda c, s: c.fail_next(EVENTS_ROUTE, 429, headers={"retry-after-ms": "50"}), statuses(429), id="429"
        ),
        pytest.param(
            lambda c, s: c.drop_responses(EVENTS_ROUTE, 2),
            lambda c, s: sum(r.dropped for r in c.requests(EVENTS_ROUTE)) == 2,
            id="response-dropped",
        ),
        pytest.param(lambda c, s: c.malformed_frame(s), reconnected, id="malformed-frame"),
        pytest.param(lambda c, s: c.stream_error(s), reconnected, id="in-stream-error"),
        pytest.param(lambda c, s: c.drop_streams(s), reconnected, id="stream-drop"),
    ],
)
async def test_fault_matrix(fault: Any, hit: Any) -> None:
    """After each network fault every call is answered exactly once, in bounded time, and run once."""
    tools = Tools(gated=True)
    async with world([tools.work], two_steps) as w:
        session_id, _ = await run_with_fault(w, tools, lambda s: fault(w.api.control, s))
        assert_clean(w.api.control, session_id, tools)
        assert hit is None or hit(w.api.control, session_id), "the fault did not happen"


@BOTH_BACKENDS
async def test_post_accepted_but_response_lost_is_not_posted_again() -> None:
    """A result POST stored by the API whose response is lost is found in the history, not re-posted."""
    tools = Tools(gated=True)
    async with world([tools.work], two_steps) as w:
        session_id, _calls = await run_with_fault(w, tools, lambda s: w.api.control.drop_responses(EVENTS_ROUTE, 1))
        assert_clean(w.api.control, session_id, tools)
        assert len(w.api.control.requests(EVENTS_ROUTE)) <= 4  # message, lost post, (history check), next batch


async def test_a_tool_that_raises_and_one_that_returns_10_mb() -> None:
    """A raising tool is answered with a masked error; a 10 MB result is cut to the output budget; both post once."""

    @tool
    def boom() -> str:
        """Fail."""
        raise RuntimeError("secret internals")

    @tool
    def huge() -> str:
        """Return far too much."""
        return "x" * 10_000_000

    results: dict[str, Any] = {}

    async def script(agent: AgentTurn) -> None:
        for result in await agent.call_tools([("boom", {}), ("huge", {})]):
            results[result.name] = result
        await agent.say("ok")

    async with world([boom, huge], script) as w:
        session_id = await w.session()
        async with Bridge(w.client, [boom, huge]) as bridge:
            await bridge.ask(session_id, "go")
        w.api.control.invariants(session_id).assert_ok()
    assert results["boom"].is_error
    assert "secret" not in results["boom"].text
    assert not results["huge"].is_error
    assert 0 < len(results["huge"].text) < 1_000_000


@BOTH_BACKENDS
@pytest.mark.parametrize("durable", [False, True], ids=["memory", "sqlite"])
async def test_401_mid_run_is_a_clear_error_and_a_restart_posts_without_rerunning(
    durable: bool, tmp_path: Path
) -> None:
    """A 401 on a result post stops serving with APIAccessError; a new bridge on the same journal posts the stored
    results without running any tool again."""
    tools = Tools(gated=True)
    journal: Journal = SqliteJournal(tmp_path / "journal.db") if durable else MemoryJournal()
    async with world([tools.work], two_steps) as w:
        session_id = await w.session()
        calls = Calls()
        async with Bridge(w.client, [tools.work], journal=journal, timeouts=FAST, on_call=calls.listen) as bridge:
            bridge.attach(session_id)
            await w.say(session_id)
            with anyio.fail_after(10):
                await calls.wait(CallEventKind.STARTED, 3)
                w.api.control.fail_next(EVENTS_ROUTE, 401)
                tools.gate.set()
                with pytest.raises(APIAccessError, match="401"):
                    await bridge.serve(session_id)
        assert sum(tools.runs.values()) == 3
        assert w.api.control.invariants(session_id).unanswered  # nothing was posted: the key was refused
        async with Bridge(w.client, [tools.work], journal=journal, timeouts=FAST) as bridge:
            with anyio.fail_after(10):
                await serve_turn(bridge, session_id)
        assert_clean(w.api.control, session_id, tools)
        await journal.open()
        assert not await journal.unfinished(session_id)
        await journal.close()
