"""Result batching end to end: the results of one `requires_action` idle leave together, a slow call holds back the
others no longer than `Timeouts.post_linger`."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from e2e_support import BOTH_BACKENDS, Calls, world

from bridge import Bridge, CallEventKind, Timeouts, tool
from bridge.testing import AgentTurn

pytestmark = pytest.mark.anyio

EVENTS_ROUTE = "POST /v1/sessions/*/events"


@tool
async def quick(n: int) -> int:
    """Answer at once.

    Args:
        n: Echoed back.
    """
    return n


@BOTH_BACKENDS
async def test_the_calls_of_one_idle_are_answered_in_one_post() -> None:
    """20 fast calls of one idle go out in a single POST: the poster waits for the idle and the last result, not
    for its linger (set far beyond the test's bound, so only the idle can release them)."""

    async def script(agent: AgentTurn) -> None:
        results = await agent.call_tools([("quick", {"n": i}) for i in range(20)])
        await agent.say(",".join(r.text for r in results))

    async with world([quick], script) as w:
        session_id = await w.session()
        async with Bridge(w.client, [quick], timeouts=Timeouts(post_linger=600)) as bridge:
            with anyio.fail_after(30):  # a poster waiting out its linger would still be waiting here
                reply = await bridge.ask(session_id, "go")
        w.api.control.invariants(session_id).assert_ok()
        posts = len(w.api.control.requests(EVENTS_ROUTE)) - 1  # minus the user message
    assert reply == ",".join(str(i) for i in range(20))
    assert posts == 1


@BOTH_BACKENDS
async def test_a_slow_call_does_not_hold_back_the_others_beyond_the_linger() -> None:
    """Fast results held for a still-running slow call of the same idle are posted once the linger ends, while the
    slow call still runs (it only finishes after the test has seen them posted)."""
    release = anyio.Event()

    @tool
    async def slow() -> str:
        """Wait until the test says so."""
        await release.wait()
        return "slow done"

    async def script(agent: AgentTurn) -> None:
        results = await agent.call_tools([("quick", {"n": 1}), ("quick", {"n": 2}), ("quick", {"n": 3}), ("slow", {})])
        await agent.say(",".join(r.text for r in results))

    calls = Calls()
    async with world([quick, slow], script) as w:
        session_id = await w.session()
        timeouts = Timeouts(post_linger=0.05)
        async with Bridge(w.client, [quick, slow], timeouts=timeouts, on_call=calls.listen) as bridge:
            bridge.attach(session_id)
            message: Any = {"type": "user.message", "content": [{"type": "text", "text": "go"}]}
            await w.client.beta.sessions.events.send(session_id, events=[message])
            with anyio.fail_after(30):  # a poster holding them until the slow call ends would deadlock here
                posted = await calls.wait(CallEventKind.POSTED, 3)
            assert {e.tool for e in posted} == {"quick"}
            release.set()
            with anyio.fail_after(30):
                await calls.wait(CallEventKind.POSTED, 4)
        w.api.control.invariants(session_id).assert_ok()
