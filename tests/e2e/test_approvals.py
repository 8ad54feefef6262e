"""Approvals end to end: every decision path, a restart while a call waits, an interrupt while it waits."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest
from e2e_support import BOTH_BACKENDS, Calls, serve_turn, world

from bridge import (
    Approval,
    ApprovalRequest,
    ApprovalSettings,
    Bridge,
    CallEventKind,
    PendingApproval,
    Toolset,
    tool,
)
from bridge.journal import ApprovalOutcome, CallState, MemoryJournal, SqliteJournal
from bridge.testing import AgentTurn, Behavior

pytestmark = pytest.mark.anyio

runs: Counter[str] = Counter()
answers: list[tuple[str, bool]] = []


@tool
async def refund(order: str, cents: int) -> str:
    """Refund an order.

    Args:
        order: The order.
        cents: How much.
    """
    runs[order] += 1
    return f"refunded {cents} on {order}"


async def one_refund(agent: AgentTurn) -> None:
    result = await agent.call_tool("refund", {"order": agent.text, "cents": 500})
    answers.append((result.text, result.is_error))
    await agent.say(result.text)


def reset() -> None:
    runs.clear()
    answers.clear()


async def decided_by(
    policy: Any, decide: Any = None, *, settings: ApprovalSettings | None = None, order: str = "o1"
) -> tuple[str, bool]:
    """Serve one refund under `policy`; `decide(bridge, pending)` is called for a parked call. Returns the answer."""
    reset()
    tools = Toolset([refund], approval=policy)
    async with world(tools, one_refund) as w:
        session_id = await w.session()
        bridge = Bridge(w.client, tools, approvals=settings)
        async with bridge, bridge.approvals.subscribe() as requests:
            await w.say(session_id, order)
            with anyio.fail_after(10):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(serve_turn, bridge, session_id)
                    if decide is not None:
                        pending = await requests.receive()
                        decide(bridge, pending)
        w.api.control.invariants(session_id).assert_ok()
    assert len(answers) == 1
    return answers[0]


@BOTH_BACKENDS
async def test_allow_runs_the_call() -> None:
    """ "allow" runs the call as if no policy were set."""
    assert await decided_by("allow") == ("refunded 500 on o1", False)
    assert runs == {"o1": 1}


async def test_deny_answers_with_a_clear_error_and_never_runs() -> None:
    """ "deny" answers with an is_error "denied by policy" result; the tool does not run."""
    text, is_error = await decided_by(Approval.deny("refunds are closed today"))
    assert is_error
    assert text == "Denied by policy: refunds are closed today. The call did not run."
    assert runs == {}


@BOTH_BACKENDS
async def test_ask_then_approve_runs_once_and_journals_who_and_when() -> None:
    """A parked call runs once approved; the journal keeps the decision, who made it and when."""

    def approve(bridge: Bridge, pending: PendingApproval) -> None:
        assert (pending.tool_name, dict(pending.input)) == ("refund", {"order": "o1", "cents": 500})
        assert bridge.approvals.pending() == [pending]
        assert bridge.stats().awaiting_approval == 1
        assert bridge.approvals.approve(pending.call_id, by="alice")
        assert not bridge.approvals.deny(pending.call_id, "too late", by="bob"), "the first decision wins"

    assert await decided_by("ask", approve) == ("refunded 500 on o1", False)
    assert runs == {"o1": 1}


async def test_ask_then_deny_reaches_the_model_with_who_and_why() -> None:
    """A denied parked call is answered "Denied by <who>: <reason>" and never runs."""

    def deny(bridge: Bridge, pending: PendingApproval) -> None:
        assert bridge.approvals.deny(pending.call_id, "order already refunded", by="alice")

    text, is_error = await decided_by("ask", deny)
    assert is_error
    assert text == "Denied by alice: order already refunded. The call did not run."
    assert runs == {}


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_callable_policy_sees_validated_input_and_session(kind: str) -> None:
    """A policy function (sync or async) sees the tool, the validated input and the call's ids, and decides."""
    seen: list[ApprovalRequest] = []

    def decide(request: ApprovalRequest) -> Approval:
        seen.append(request)
        return Approval.allow() if request.input["cents"] < 1000 else Approval.deny("over the limit")

    async def adecide(request: ApprovalRequest) -> Approval:
        await anyio.lowlevel.checkpoint()
        return decide(request)

    policy = decide if kind == "sync" else adecide
    assert await decided_by(policy) == ("refunded 500 on o1", False)
    request = seen[0]
    assert (request.tool_name, dict(request.input), request.call_id.startswith("sevt_")) == (
        "refund",
        {"order": "o1", "cents": 500},
        True,
    )
    assert request.session_id.startswith("sesn_")


async def test_callable_policy_may_ask_and_a_failing_policy_denies() -> None:
    """A policy function can return "ask"; one that raises denies the call (fail closed) without leaking why."""

    def broken(request: ApprovalRequest) -> Approval:
        raise RuntimeError("secret internals")

    text, is_error = await decided_by(broken)
    assert is_error
    assert text.startswith("Denied by policy: the approval policy failed (ref ")
    assert "secret" not in text

    def approve(bridge: Bridge, pending: PendingApproval) -> None:
        bridge.approvals.approve(pending.call_id)

    assert await decided_by(lambda request: "ask", approve) == ("refunded 500 on o1", False)


async def test_tool_policy_beats_the_toolset_and_the_bridge() -> None:
    """Precedence: the tool's own approval, then its toolset's, then the bridge's."""

    @tool(approval="allow")
    async def free() -> str:
        """Free."""
        return "ok"

    @tool
    async def plain() -> str:
        """Plain."""
        return "ok"

    inner = Toolset([free, plain], approval="ask")
    outer = Toolset([inner], prefix="x")
    assert outer.approval_for("x_free") == "allow"
    assert outer.approval_for("x_plain") == "ask"
    assert Toolset([plain]).approval_for("plain") is None
    assert outer.rename({"x_plain": "y"}).approval_for("y") == "ask"


async def test_timeout_denies_by_default_and_can_allow() -> None:
    """Nobody decides: the call is answered "denied by timeout" (or run, with on_timeout="allow")."""
    text, is_error = await decided_by("ask", None, settings=ApprovalSettings(timeout=0.2))
    assert is_error
    assert text == "Denied by timeout: no decision within 0.2 s. The call did not run."
    assert runs == {}
    allowed = await decided_by("ask", None, settings=ApprovalSettings(timeout=0.2, on_timeout="allow"))
    assert allowed == ("refunded 500 on o1", False)


@BOTH_BACKENDS
async def test_interrupt_withdraws_a_pending_approval_and_nothing_is_posted() -> None:
    """user.interrupt while a call waits for approval: withdrawn, journaled as such, no result posted, never run."""
    reset()
    tools = Toolset([refund], approval="ask")
    calls = Calls()
    async with world(tools, one_refund) as w:
        session_id = await w.session()
        async with Bridge(w.client, tools, on_call=calls.listen) as bridge:
            bridge.attach(session_id)
            await w.say(session_id, "o1")
            with anyio.fail_after(10):
                [parked] = await calls.wait(CallEventKind.AWAITING_APPROVAL)
                await w.client.beta.sessions.events.send(session_id, events=[{"type": "user.interrupt"}])
                await w.api.control.wait_idle(session_id, "end_turn")
                await calls.wait(CallEventKind.DROPPED)
            assert bridge.approvals.pending() == []
            assert not bridge.approvals.approve(parked.tool_use_id)
            record = await bridge.journal.get(session_id, parked.tool_use_id)
        report = w.api.control.invariants(session_id)
    assert record is not None
    assert record.state is CallState.ABANDONED
    assert record.approval is not None
    assert (record.approval.outcome, record.approval.by) == (ApprovalOutcome.WITHDRAWN, "interrupt")
    assert report.late == {}
    assert report.duplicates == {}
    assert set(report.abandoned) == {parked.tool_use_id}
    assert runs == {}


async def test_interrupted_pending_call_the_idle_still_lists_is_answered_as_cancelled() -> None:
    """If the session still waits after the interrupt, the withdrawn call is answered once, as cancelled."""
    reset()
    tools = Toolset([refund], approval="ask")
    calls = Calls()
    async with world(tools, one_refund, behavior=Behavior(interrupted_calls="keep")) as w:
        session_id = await w.session()
        async with Bridge(w.client, tools, on_call=calls.listen) as bridge:
            await w.say(session_id, "o1")
            with anyio.fail_after(10):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(serve_turn, bridge, session_id)
                    await calls.wait(CallEventKind.AWAITING_APPROVAL)
                    await w.client.beta.sessions.events.send(session_id, events=[{"type": "user.interrupt"}])
        w.api.control.invariants(session_id).assert_ok()
    assert answers == [("The call was cancelled before it started (interrupted); it did not run.", True)]
    assert runs == {}


@pytest.mark.parametrize("approve_while", ["running", "stopped"])
async def test_restart_while_waiting_keeps_the_call_pending_and_it_runs_once(
    approve_while: str, tmp_path: Path
) -> None:
    """A bridge stops while a call waits for approval: the next bridge on the same SQLite journal finds it still
    pending (same deadline), and it runs exactly once when approved, in-process or through the journal's inbox."""
    reset()
    path = tmp_path / "journal.db"
    tools = Toolset([refund], approval="ask")
    async with world(tools, one_refund) as w:
        session_id = await w.session()
        calls = Calls()
        async with Bridge(w.client, tools, journal=SqliteJournal(path), on_call=calls.listen) as first:
            first.attach(session_id)
            await w.say(session_id, "o1")
            with anyio.fail_after(10):
                [parked] = await calls.wait(CallEventKind.AWAITING_APPROVAL)
            [pending] = first.approvals.pending()
        assert runs == {}
        journal = SqliteJournal(path)
        async with journal:
            record = await journal.get(session_id, parked.tool_use_id)
            assert record is not None
            assert record.state is CallState.AWAITING_APPROVAL
            if approve_while == "stopped":  # like `bridge approvals approve` while no bridge runs
                await journal.submit_decision(parked.tool_use_id, approve=True, by="carol")
        settings = ApprovalSettings(poll_interval=0.05)
        second = Bridge(w.client, tools, journal=SqliteJournal(path), approvals=settings)
        async with second, second.approvals.subscribe() as requests:
            with anyio.fail_after(10):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(serve_turn, second, session_id)
                    again = await requests.receive()
                    assert (again.call_id, again.deadline) == (pending.call_id, pending.deadline)
                    if approve_while == "running":
                        assert second.approvals.approve(again.call_id, by="dave")
            record = await second.journal.get(session_id, parked.tool_use_id)
        w.api.control.invariants(session_id).assert_ok()
    assert answers == [("refunded 500 on o1", False)]
    assert runs == {"o1": 1}
    assert record is not None
    assert record.approval is not None
    assert record.approval.outcome is ApprovalOutcome.APPROVED
    assert record.approval.by == ("dave" if approve_while == "running" else "carol")
    assert record.approval.decided_at is not None


async def test_no_policy_costs_no_journal_writes() -> None:
    """Bench-neutral: with no policy, "allow", or a function that allows, a call makes exactly the journal writes it
    made before approvals existed (receive, start, complete, posted, acked) and nothing is evaluated twice."""

    class Counting(MemoryJournal):
        def __init__(self) -> None:
            super().__init__()
            self.ops: list[str] = []

        def _move(self, transition: str, key: tuple[str, str], **changes: Any) -> bool:
            self.ops.append(transition)
            return super()._move(transition, key, **changes)

    async def allow(request: ApprovalRequest) -> Approval:
        return Approval.allow()

    seen: dict[str, list[str]] = {}
    for label, policy in (("none", None), ("allow", "allow"), ("function", allow)):
        reset()
        tools = Toolset([refund], approval=policy)
        async with world(tools, one_refund) as w:
            session_id = await w.session()
            journal = Counting()
            async with Bridge(w.client, tools, journal=journal) as bridge:
                await w.say(session_id, "o1")
                with anyio.fail_after(10):
                    await serve_turn(bridge, session_id)
            w.api.control.invariants(session_id).assert_ok()
        seen[label] = sorted(journal.ops)  # the echo may overtake the post's response: order aside
    assert seen["none"] == sorted(["start", "complete", "mark_posted", "mark_acked"])
    assert seen["allow"] == seen["none"]
    assert seen["function"] == seen["none"]
