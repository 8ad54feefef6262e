"""Recovery from the journal when serving starts: each state is resumed without running a call twice (I2) or
posting twice (I3); a started call of a tool that is not idempotent is answered "outcome unknown" (I4)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import anyio
import pytest
from e2e_support import BOTH_BACKENDS, serve_turn, world

from bridge import Bridge, tool
from bridge.journal import CallState, Journal, MemoryJournal, SqliteJournal, StoredResult
from bridge.testing import AgentTurn

pytestmark = pytest.mark.anyio

runs: Counter[str] = Counter()


@tool
async def pay(ref: str) -> str:
    """Move money (not idempotent).

    Args:
        ref: Which payment.
    """
    runs[ref] += 1
    return f"paid {ref}"


@tool(idempotent=True)
async def lookup(ref: str) -> str:
    """Read something (safe to repeat).

    Args:
        ref: What to read.
    """
    runs[ref] += 1
    return f"found {ref}"


CALLS = [("pay", "received"), ("pay", "started"), ("lookup", "started-idem"), ("pay", "completed"),
         ("pay", "posted-lost"), ("pay", "posted-landed")]  # fmt: skip
answers: dict[str, str] = {}


async def script(agent: AgentTurn) -> None:
    for result in await agent.call_tools([(name, {"ref": ref}) for name, ref in CALLS]):
        answers[result.input["ref"]] = result.text
    await agent.say("done")


def stored(text: str) -> StoredResult:
    return StoredResult(({"type": "text", "text": text},), is_error=False)


@BOTH_BACKENDS
@pytest.mark.parametrize("durable", [False, True], ids=["memory", "sqlite"])
async def test_every_journal_state_resumes_correctly(durable: bool, tmp_path: Path) -> None:
    """received runs; started reruns only if idempotent, else "outcome unknown"; completed and lost posts are
    posted from the journal without running; a post that did land is only acknowledged."""
    runs.clear()
    answers.clear()
    journal: Journal = SqliteJournal(tmp_path / "journal.db") if durable else MemoryJournal()
    await journal.open()
    async with world([pay, lookup], script) as w:
        session_id = await w.session()
        await w.say(session_id)
        await w.api.control.wait_idle(session_id, "requires_action")
        events = w.api.control.events(session_id)
        uses = {e["input"]["ref"]: e["id"] for e in events if e["type"] == "agent.custom_tool_use"}
        for name, ref in CALLS:
            await journal.receive(session_id, uses[ref], name, {"ref": ref})
            if ref != "received":
                await journal.start(session_id, uses[ref])
            if ref in ("completed", "posted-lost", "posted-landed"):
                await journal.complete(session_id, uses[ref], stored(f"stored {ref}"))
            if ref.startswith("posted"):
                await journal.mark_posted(session_id, [uses[ref]])
        result = {"type": "user.custom_tool_result", "custom_tool_use_id": uses["posted-landed"],
                  "content": [{"type": "text", "text": "stored posted-landed"}]}  # fmt: skip
        await w.client.beta.sessions.events.send(session_id, events=[result])  # type: ignore[list-item]
        await journal.close()

        async with Bridge(w.client, [pay, lookup], journal=journal) as bridge:
            with anyio.fail_after(10):
                await serve_turn(bridge, session_id)
        w.api.control.invariants(session_id).assert_ok()
    assert runs == {"received": 1, "started-idem": 1}
    assert answers["received"] == "paid received"
    assert answers["started-idem"] == "found started-idem"
    assert "outcome is unknown" in answers["started"]
    assert answers["completed"] == "stored completed"
    assert answers["posted-lost"] == "stored posted-lost"
    assert answers["posted-landed"] == "stored posted-landed"
    await journal.open()
    assert not await journal.unfinished(session_id)
    in_doubt = await journal.get(session_id, uses["started"])
    await journal.close()
    assert in_doubt is not None
    assert in_doubt.state is CallState.ACKED
