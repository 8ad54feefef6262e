"""The `Journal` conformance suite: every backend in conftest.BACKENDS must pass all of it, on asyncio and trio."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import pytest
from journal_backends import Backend

from bridge.journal import (
    ApprovalOutcome,
    ApprovalRecord,
    CallRecord,
    CallState,
    Journal,
    MemoryJournal,
    PostgresJournal,
    SqliteJournal,
    StoredResult,
)

pytestmark = pytest.mark.anyio

S = CallState
RESULT = StoredResult(content=({"type": "text", "text": "4 rows, café ☕"},), is_error=False)
ERROR = StoredResult(content=({"type": "text", "text": "boom"},), is_error=True)
IN_DOUBT = StoredResult(content=({"type": "text", "text": "outcome unknown"},), is_error=True, in_doubt=True)
ASKED = ApprovalRecord(ApprovalOutcome.PENDING, requested_at=1000.0, deadline=4600.0)
DENIED = ApprovalRecord(
    ApprovalOutcome.DENIED, requested_at=1000.0, deadline=4600.0, by="alice", reason="not today", decided_at=1001.5
)


async def bring_to(journal: Journal, state: CallState, session_id: str = "s", tool_use_id: str = "t") -> None:
    """Drive a new call to `state` through the normal transitions."""
    assert await journal.receive(session_id, tool_use_id, "lookup", {"order": 42, "tags": ["a", "b"]})
    if state is S.ABANDONED:
        assert await journal.abandon(session_id, [tool_use_id]) == 1
        return
    if state is S.RECEIVED:
        return
    if state is S.AWAITING_APPROVAL:
        assert await journal.await_approval(session_id, tool_use_id, ASKED)
        return
    assert await journal.start(session_id, tool_use_id)
    if state is S.STARTED:
        return
    assert await journal.complete(session_id, tool_use_id, IN_DOUBT if state is S.IN_DOUBT else RESULT)
    if state in (S.COMPLETED, S.IN_DOUBT):
        return
    await journal.mark_posted(session_id, [tool_use_id])
    if state is S.POSTED:
        return
    assert await journal.mark_acked(session_id, tool_use_id, "sevt_echo")


async def state_of(journal: Journal, session_id: str = "s", tool_use_id: str = "t") -> CallState:
    record = await journal.get(session_id, tool_use_id)
    assert record is not None
    return record.state


Transition = Callable[[Journal, str, str], Awaitable[Any]]
UNFINISHED = frozenset(s for s in S if not s.finished)

# name: (apply, states it may leave, state it leads to)
TRANSITIONS: dict[str, tuple[Transition, frozenset[CallState], CallState]] = {
    "start": (lambda j, s, t: j.start(s, t), frozenset({S.RECEIVED}), S.STARTED),
    "complete": (
        lambda j, s, t: j.complete(s, t, RESULT),
        frozenset({S.RECEIVED, S.AWAITING_APPROVAL, S.STARTED}),
        S.COMPLETED,
    ),
    "complete_in_doubt": (
        lambda j, s, t: j.complete(s, t, IN_DOUBT),
        frozenset({S.RECEIVED, S.AWAITING_APPROVAL, S.STARTED}),
        S.IN_DOUBT,
    ),
    "requeue": (lambda j, s, t: j.requeue(s, t), frozenset({S.STARTED}), S.RECEIVED),
    "await_approval": (lambda j, s, t: j.await_approval(s, t, ASKED), frozenset({S.RECEIVED}), S.AWAITING_APPROVAL),
    "decide": (lambda j, s, t: j.decide(s, t, DENIED), frozenset({S.RECEIVED, S.AWAITING_APPROVAL}), S.RECEIVED),
    "mark_posted": (lambda j, s, t: j.mark_posted(s, [t]), frozenset({S.COMPLETED, S.IN_DOUBT}), S.POSTED),
    "mark_acked": (lambda j, s, t: j.mark_acked(s, t, "e"), frozenset({S.COMPLETED, S.IN_DOUBT, S.POSTED}), S.ACKED),
    "abandon": (lambda j, s, t: j.abandon(s, [t]), UNFINISHED, S.ABANDONED),
}


@pytest.mark.parametrize("name", list(TRANSITIONS))
async def test_transition_is_a_compare_and_set(journal: Journal, name: str) -> None:
    """From every state, a transition either moves the call to its target or returns False and changes nothing."""
    apply, allowed, target = TRANSITIONS[name]
    for state in S:
        tool_use_id = f"from_{state.value}"
        await bring_to(journal, state, tool_use_id=tool_use_id)
        before = await journal.get("s", tool_use_id)
        outcome = await apply(journal, "s", tool_use_id)
        after = await journal.get("s", tool_use_id)
        assert after is not None
        assert before is not None
        if state in allowed:
            assert after.state is target, (name, state)
            assert outcome in (True, 1, None), (name, state)
            assert after.updated_at >= before.updated_at
        else:
            assert after == before, (name, state)
            assert outcome in (False, 0, None), (name, state)


async def test_transitions_on_unknown_calls_do_nothing(journal: Journal) -> None:
    """Every transition on a call the journal never received reports failure and creates nothing."""
    assert not await journal.start("s", "nope")
    assert not await journal.complete("s", "nope", RESULT)
    assert not await journal.requeue("s", "nope")
    await journal.mark_posted("s", ["nope"])
    assert not await journal.mark_acked("s", "nope", "sevt_1")
    assert await journal.abandon("s", ["nope"]) == 0
    assert await journal.get("s", "nope") is None
    assert (await journal.stats()).calls == 0


async def test_approval_is_kept_with_the_call_and_parks_it(journal: Journal) -> None:
    """A parked call cannot start; its decision (outcome, who, when, why) is stored and it may start once approved."""
    await journal.receive("s", "t", "refund", {"order": 42})
    assert await journal.await_approval("s", "t", ASKED)
    assert not await journal.start("s", "t")
    parked = await journal.get("s", "t")
    assert parked is not None
    assert (parked.state, parked.approval) == (S.AWAITING_APPROVAL, ASKED)
    assert [r.tool_use_id for r in await journal.unfinished("s")] == ["t"]
    approved = ApprovalRecord(ApprovalOutcome.APPROVED, 1000.0, 4600.0, by="bob", decided_at=1002.0)
    assert await journal.decide("s", "t", approved)
    assert await journal.start("s", "t")
    assert await journal.complete("s", "t", RESULT)
    await journal.mark_posted("s", ["t"])
    assert await journal.mark_acked("s", "t", "sevt_echo")
    record = await journal.get("s", "t")
    assert record is not None
    assert (record.state, record.approval) == (S.ACKED, approved)


async def test_approval_survives_reopening(backend: Backend) -> None:
    """A parked call and a recorded decision are still there after close and reopen (durable backends)."""
    if not backend.durable:
        pytest.skip("nothing survives close")
    journal = backend.make()
    await journal.open()
    await journal.receive("s", "parked", "refund", {"order": 1})
    await journal.await_approval("s", "parked", ASKED)
    await journal.receive("s", "denied", "refund", {"order": 2})
    await journal.await_approval("s", "denied", ASKED)
    await journal.decide("s", "denied", DENIED)
    await journal.close()
    again = backend.make()
    await again.open()
    try:
        parked, denied = await again.get("s", "parked"), await again.get("s", "denied")
        assert parked is not None
        assert denied is not None
        assert (parked.state, parked.approval) == (S.AWAITING_APPROVAL, ASKED)
        assert (denied.state, denied.approval) == (S.RECEIVED, DENIED)
        assert {r.tool_use_id for r in await again.unfinished()} == {"parked", "denied"}
    finally:
        await again.close()


async def test_decision_inbox_is_read_in_order_after_a_mark(journal: Journal) -> None:
    """Decisions submitted to the inbox come back oldest first, each once past the last sequence seen."""
    first = await journal.submit_decision("t1", approve=True, by="alice")
    second = await journal.submit_decision("t2", approve=False, by="bob", reason="no", session_id="s")
    assert second > first > 0
    found = await journal.decisions()
    assert [(d.tool_use_id, d.approve, d.by, d.reason, d.session_id) for d in found] == [
        ("t1", True, "alice", None, None),
        ("t2", False, "bob", "no", "s"),
    ]
    assert [d.seq for d in await journal.decisions(after=first)] == [second]
    assert await journal.decisions(after=second) == []


async def test_receive_records_a_call_once(journal: Journal) -> None:
    """The first receive stores the call; a replayed one returns False and keeps the original record."""
    assert await journal.receive("s", "t", "lookup", {"order": 42}, thread_id="th_1")
    assert not await journal.receive("s", "t", "other", {"order": 7})
    record = await journal.get("s", "t")
    assert record is not None
    assert (record.tool_name, dict(record.input), record.thread_id) == ("lookup", {"order": 42}, "th_1")
    assert (record.state, record.attempt, record.result, record.posted_at) == (S.RECEIVED, 0, None, None)
    assert record.created_at > 0
    assert record.updated_at >= record.created_at
    assert await journal.receive("s2", "t", "lookup", {}), "the key is (session, call), not the call id alone"


async def test_lifecycle_records_result_attempts_and_ack(journal: Journal) -> None:
    """A full lifecycle keeps the result exactly, counts attempts across requeues, and records post and ack."""
    await journal.receive("s", "t", "lookup", {"q": "x"})
    assert await journal.start("s", "t")
    assert await journal.requeue("s", "t")
    assert await journal.start("s", "t")
    assert await journal.complete("s", "t", ERROR)
    await journal.mark_posted("s", ["t"])
    posted = await journal.get("s", "t")
    assert posted is not None
    assert posted.posted_at is not None
    assert await journal.mark_acked("s", "t", "sevt_echo")
    record = await journal.get("s", "t")
    assert record is not None
    assert (record.state, record.attempt, record.result, record.acked_event_id) == (S.ACKED, 2, ERROR, "sevt_echo")
    assert not await journal.mark_acked("s", "t", "sevt_other")
    assert (await journal.get("s", "t")) == record


async def test_in_doubt_result_is_kept_through_delivery(journal: Journal) -> None:
    """An in-doubt result is stored as such and keeps its flag once posted and acked."""
    await bring_to(journal, S.ACKED)
    await bring_to(journal, S.IN_DOUBT, tool_use_id="d")
    await journal.mark_posted("s", ["d"])
    assert await journal.mark_acked("s", "d", "sevt_d")
    record = await journal.get("s", "d")
    assert record is not None
    assert record.result == IN_DOUBT
    assert record.result.in_doubt


async def test_mark_posted_moves_only_postable_calls_of_a_batch(journal: Journal) -> None:
    """A posted batch moves its completed and in-doubt calls; other ids in it are left alone."""
    await bring_to(journal, S.COMPLETED, tool_use_id="a")
    await bring_to(journal, S.IN_DOUBT, tool_use_id="b")
    await bring_to(journal, S.STARTED, tool_use_id="c")
    await journal.mark_posted("s", ["a", "b", "c", "unknown"])
    assert [await state_of(journal, "s", t) for t in "abc"] == [S.POSTED, S.POSTED, S.STARTED]


async def test_abandon_a_whole_session(journal: Journal) -> None:
    """abandon(session) ends every unfinished call of that session only, and counts them."""
    for state in (S.RECEIVED, S.STARTED, S.COMPLETED, S.POSTED, S.ACKED):
        await bring_to(journal, state, tool_use_id=state.value)
    await bring_to(journal, S.RECEIVED, session_id="other")
    assert await journal.abandon("s") == 4
    assert await state_of(journal, "s", "acked") is S.ACKED
    assert await state_of(journal, "other") is S.RECEIVED
    assert await journal.unfinished("s") == []
    assert await journal.abandon("s") == 0


async def test_unfinished_lists_calls_in_arrival_order(journal: Journal) -> None:
    """unfinished() returns open calls in the order received, whatever happened to them since, filtered by session."""
    for session_id, tool_use_id in [("s1", "a"), ("s2", "b"), ("s1", "c"), ("s2", "d"), ("s1", "e")]:
        await journal.receive(session_id, tool_use_id, "lookup", {})
    await journal.start("s1", "e")
    await journal.complete("s1", "e", RESULT)
    await journal.start("s1", "a")
    await journal.abandon("s2", ["d"])
    await journal.start("s1", "c")
    await journal.complete("s1", "c", RESULT)
    await journal.mark_posted("s1", ["c"])
    await journal.mark_acked("s1", "c", "sevt_c")
    assert [r.tool_use_id for r in await journal.unfinished()] == ["a", "b", "e"]
    assert [r.tool_use_id for r in await journal.unfinished("s1")] == ["a", "e"]
    assert [r.state for r in await journal.unfinished("s1")] == [S.STARTED, S.COMPLETED]
    assert await journal.unfinished("nobody") == []


async def test_prune_removes_only_finished_calls(journal: Journal) -> None:
    """prune() deletes acked and abandoned calls past the age, never unfinished ones."""
    for state in S:
        await bring_to(journal, state, tool_use_id=state.value)
    assert await journal.prune(older_than=3600) == 0
    assert await journal.prune(older_than=0) == 2
    assert await journal.get("s", "acked") is None
    assert await journal.get("s", "abandoned") is None
    assert {r.tool_use_id for r in await journal.unfinished()} == {s.value for s in UNFINISHED}
    assert (await journal.stats()).calls == len(UNFINISHED)


async def test_stats_count_states_and_age(journal: Journal, backend: Backend) -> None:
    """stats() counts calls by state and reports the oldest unfinished call's age (None when all are finished)."""
    empty = await journal.stats()
    assert (empty.calls, dict(empty.by_state), empty.oldest_unfinished_age) == (0, {}, None)
    await bring_to(journal, S.ACKED, tool_use_id="a")
    assert (await journal.stats()).oldest_unfinished_age is None
    await bring_to(journal, S.STARTED, tool_use_id="b")
    await bring_to(journal, S.STARTED, tool_use_id="c")
    stats = await journal.stats()
    assert (stats.calls, dict(stats.by_state)) == (3, {"acked": 1, "started": 2})
    assert stats.oldest_unfinished_age is not None
    assert stats.oldest_unfinished_age >= 0
    if backend.durable:
        assert stats.size_bytes is not None
        assert stats.size_bytes > 0


async def test_concurrent_lifecycles_all_land(journal: Journal) -> None:
    """Hundreds of calls moving through the lifecycle concurrently all end acked, each with its own result."""

    async def lifecycle(i: int) -> None:
        tool_use_id = f"t{i}"
        assert await journal.receive(f"s{i % 7}", tool_use_id, "echo", {"i": i})
        assert await journal.start(f"s{i % 7}", tool_use_id)
        result = StoredResult(content=({"type": "text", "text": str(i)},), is_error=False)
        assert await journal.complete(f"s{i % 7}", tool_use_id, result)
        await journal.mark_posted(f"s{i % 7}", [tool_use_id])
        assert await journal.mark_acked(f"s{i % 7}", tool_use_id, f"sevt_{i}")

    async with anyio.create_task_group() as tg:
        for i in range(300):
            tg.start_soon(lifecycle, i)
    stats = await journal.stats()
    assert dict(stats.by_state) == {"acked": 300}
    record = await journal.get("s5", "t12")
    assert record is not None
    assert record.result is not None
    assert record.result.content[0]["text"] == "12"


async def test_racing_transitions_have_one_winner(journal: Journal) -> None:
    """When many tasks race the same receive, start or complete, exactly one of each wins."""
    wins: dict[str, int] = {"receive": 0, "start": 0, "complete": 0}

    async def race(step: str, do: Callable[[], Awaitable[bool]]) -> None:
        if await do():
            wins[step] += 1

    for step, do in [
        ("receive", lambda: journal.receive("s", "t", "pay", {"cents": 100})),
        ("start", lambda: journal.start("s", "t")),
        ("complete", lambda: journal.complete("s", "t", RESULT)),
    ]:
        async with anyio.create_task_group() as tg:
            for _ in range(50):
                tg.start_soon(race, step, do)
    assert wins == {"receive": 1, "start": 1, "complete": 1}
    record = await journal.get("s", "t")
    assert record is not None
    assert record.attempt == 1


async def test_results_and_inputs_round_trip_exactly(journal: Journal) -> None:
    """Content blocks (unicode, images, nesting) and inputs come back equal to what was stored."""
    content = (
        {"type": "text", "text": 'naïve — 日本語 \u0000 "quoted"'},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "search_result", "source": "s", "title": "t", "content": [{"type": "text", "text": "x"}]},
    )
    result = StoredResult(content=content, is_error=False)
    payload = {"nested": {"list": [1, 2.5, None, True], "s": "é"}, "n": -3}
    await journal.receive("s", "t", "tool", payload)
    await journal.start("s", "t")
    await journal.complete("s", "t", result)
    record = await journal.get("s", "t")
    assert record is not None
    assert record.result == result
    assert dict(record.input) == payload


async def test_close_is_idempotent_and_context_manager_works(backend: Backend) -> None:
    """A journal works as an async context manager and may be closed twice."""
    journal = backend.make()
    assert isinstance(journal, MemoryJournal | SqliteJournal | PostgresJournal)
    async with journal:
        assert await journal.receive("s", "t", "tool", {})
    await journal.close()


async def test_every_state_survives_reopen(backend: Backend) -> None:
    """A durable journal reopened after close has every call exactly as it left it, in the same order."""
    if not backend.durable:
        pytest.skip(f"{backend.name} keeps nothing across close")
    journal = backend.make()
    await journal.open()
    for state in S:
        await bring_to(journal, state, tool_use_id=state.value)
    before: list[CallRecord | None] = [await journal.get("s", s.value) for s in S]
    unfinished = await journal.unfinished()
    await journal.close()

    reopened = backend.make()
    await reopened.open()
    try:
        assert [await reopened.get("s", s.value) for s in S] == before
        assert await reopened.unfinished() == unfinished
        assert await reopened.start("s", "received")  # and it carries on from there
    finally:
        await reopened.close()


# -- what a backend keeps and what it may forget (the protocol's module docstring) ---------------------------------

KEEP_FINISHED, KEEP_RESULTS = 40, 10


async def finish_calls(journal: Journal, count: int, prefix: str = "f") -> list[str]:
    """Drive `count` new calls to a finished state, acked and abandoned in turn; returns their ids, oldest first."""
    ids = [f"{prefix}{i}" for i in range(count)]
    for i, tool_use_id in enumerate(ids):
        await bring_to(journal, S.ACKED if i % 2 == 0 else S.ABANDONED, tool_use_id=tool_use_id)
    return ids


@pytest.fixture
async def bounded(backend: Backend) -> AsyncIterator[Journal]:
    journal = backend.make_bounded(KEEP_FINISHED, KEEP_RESULTS)
    await journal.open()
    try:
        yield journal
    finally:
        await journal.close()


async def test_unfinished_calls_are_never_forgotten(bounded: Journal) -> None:
    """However many calls finish after them, unfinished calls keep their whole record, their order, and their key."""
    for state in UNFINISHED:
        await bring_to(bounded, state, tool_use_id=state.value)
    before = await bounded.unfinished()
    await finish_calls(bounded, 3 * KEEP_FINISHED)
    assert await bounded.unfinished() == before
    for record in before:
        assert await bounded.get("s", record.tool_use_id) == record
        assert not await bounded.receive("s", record.tool_use_id, "lookup", {})


async def test_finished_calls_inside_the_window_are_known(bounded: Journal) -> None:
    """The last `keep_finished` finished calls are found finished and a re-delivery of one is not new; the last
    `keep_results` keep their result."""
    ids = await finish_calls(bounded, KEEP_FINISHED)
    for i, tool_use_id in enumerate(ids):
        record = await bounded.get("s", tool_use_id)
        assert record is not None, tool_use_id
        assert record.state is (S.ACKED if i % 2 == 0 else S.ABANDONED)
        if i % 2 == 0 and i >= KEEP_FINISHED - KEEP_RESULTS:
            assert record.result == RESULT
            assert dict(record.input) == {"order": 42, "tags": ["a", "b"]}
    for tool_use_id in ids:
        assert not await bounded.receive("s", tool_use_id, "lookup", {}), "a re-delivered finished call is not new"
    assert await bounded.unfinished() == []


async def test_finished_calls_past_the_window(bounded: Journal, backend: Backend) -> None:
    """Past the window the memory journal forgets the oldest finished calls (bounded size); SQLite keeps them
    until its retention age, which `prune()` applies."""
    ids = await finish_calls(bounded, KEEP_FINISHED + 15)
    oldest, newest = ids[:15], ids[15:]
    for tool_use_id in newest:
        assert (await state_of(bounded, "s", tool_use_id)).finished
    if backend.forgets_by_count:
        assert (await bounded.stats()).calls == KEEP_FINISHED
        assert [await bounded.get("s", t) for t in oldest] == [None] * 15
        assert await bounded.receive("s", oldest[0], "lookup", {}), "a forgotten call is taken as new"
    else:
        assert (await bounded.stats()).calls == KEEP_FINISHED + 15
        assert all([(await state_of(bounded, "s", t)).finished for t in oldest])
        assert await bounded.prune(older_than=0) == KEEP_FINISHED + 15
        assert await bounded.get("s", oldest[0]) is None
