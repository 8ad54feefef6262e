"""The reconciliation sweep: a stream that silently skips events (no disconnect) never leaves a session hanging."""

from __future__ import annotations

from collections import Counter

import anyio
import pytest
from e2e_support import BOTH_BACKENDS, world

from bridge import Bridge, Timeouts, tool
from bridge.testing import AgentTurn

pytestmark = pytest.mark.anyio

HISTORY_ROUTE = "GET /v1/sessions/*/events"


class Tools:
    """`work` counts its runs per piece."""

    def __init__(self) -> None:
        self.runs: Counter[int] = Counter()

        @tool
        async def work(n: int) -> str:
            """Do some work.

            Args:
                n: Which piece.
            """
            self.runs[n] += 1
            return f"done {n}"

        self.work = work


async def two_steps(agent: AgentTurn) -> None:
    first = await agent.call_tools([("work", {"n": i}) for i in range(3)])
    second = await agent.call_tools([("work", {"n": i}) for i in range(3, 5)])
    await agent.say(" / ".join(r.text for r in first + second))


@BOTH_BACKENDS
async def test_a_tool_call_the_stream_skips_is_read_from_the_history_at_the_idle() -> None:
    """A call missing from the live stream is found when the idle names it: answered once, run once, one read."""
    tools = Tools()
    async with world([tools.work], two_steps) as w:
        session_id = await w.session()
        w.api.control.skip_next_event(session_id, "agent.custom_tool_use")
        async with Bridge(w.client, [tools.work]) as bridge:
            with anyio.fail_after(5):
                reply = await bridge.ask(session_id, "go")
            stats = bridge.stats()
        report = w.api.control.invariants(session_id)
        report.assert_ok()
        assert len(report.calls) == 5
        assert w.api.control.stream_connects(session_id) == 1  # no reconnect: the gap was silent
        reads = [r for r in w.api.control.requests(HISTORY_ROUTE) if "types" in r.query]
    assert reply == "done 0 / done 1 / done 2 / done 3 / done 4"
    assert tools.runs == Counter(range(5))
    assert stats.reconciled == 1
    assert len(reads) == 1


async def test_a_skipped_idle_and_call_are_found_by_the_periodic_sweep() -> None:
    """When the stream skips both a call and the idle naming it, the periodic sweep of a quiet session finds them."""
    tools = Tools()

    async def one_call(agent: AgentTurn) -> None:
        result = await agent.call_tool("work", {"n": 7})
        await agent.say(result.text)

    async with world([tools.work], one_call) as w:
        session_id = await w.session()
        w.api.control.skip_next_event(session_id, "agent.custom_tool_use")
        w.api.control.skip_next_event(session_id, "session.status_idle")
        async with Bridge(w.client, [tools.work], timeouts=Timeouts(sweep=0.1)) as bridge:
            with anyio.fail_after(5):
                reply = await bridge.ask(session_id, "go")
            stats = bridge.stats()
        w.api.control.invariants(session_id).assert_ok()
    assert reply == "done 7"
    assert tools.runs == Counter({7: 1})
    assert stats.reconciled == 1


async def test_a_quiet_session_that_waits_on_nothing_is_not_read_again() -> None:
    """A sweep of an idle session whose calls were all seen reads only its latest status, never the calls."""
    tools = Tools()
    async with world([tools.work], two_steps) as w:
        session_id = await w.session()
        async with Bridge(w.client, [tools.work], timeouts=Timeouts(sweep=0.05)) as bridge:
            with anyio.fail_after(5):
                await bridge.ask(session_id, "go")
                await w.api.control.wait_requests(HISTORY_ROUTE, 3)  # the first read, then two status sweeps
            stats = bridge.stats()
        queries = [r.query for r in w.api.control.requests(HISTORY_ROUTE)]
    assert stats.reconciled == 0
    assert all("custom_tool_use" not in q for q in queries), queries
