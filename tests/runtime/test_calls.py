"""The call table: every rule of the session protocol as event sequences and the effects they must produce."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.runtime._calls import (
    Ack,
    CallTable,
    Cancel,
    Completed,
    Drop,
    Effect,
    End,
    Input,
    LeaseLost,
    Phase,
    Post,
    Posted,
    PostFenced,
    Rejected,
    Shutdown,
    Start,
    Withdraw,
)
from bridge.runtime._events import Event, parse_event

T = "2026-05-01T12:00:00.000001Z"


def _event(data: dict[str, Any]) -> Event:
    event = parse_event({"processed_at": T, **data})
    assert event is not None, data
    return event


def use(i: str, thread: str | None = None, name: str = "t") -> Event:
    extra = {"session_thread_id": thread} if thread else {}
    return _event({"id": i, "type": "agent.custom_tool_use", "name": name, "input": {}, **extra})


def echo(i: str) -> Event:
    return _event({"id": f"r-{i}", "type": "user.custom_tool_result", "custom_tool_use_id": i})


def idle(*ids: str, thread: str | None = None) -> Event:
    reason = {"type": "requires_action", "event_ids": list(ids)} if ids else {"type": "end_turn"}
    if thread:
        return _event(
            {
                "id": f"idle-{thread}-{'-'.join(ids)}",
                "type": "session.thread_status_idle",
                "session_thread_id": thread,
                "agent_name": "a",
                "stop_reason": reason,
            }
        )
    return _event({"id": f"idle-{'-'.join(ids)}", "type": "session.status_idle", "stop_reason": reason})


def interrupt(thread: str | None = None) -> Event:
    return _event({"id": f"x-{thread}", "type": "user.interrupt", "session_thread_id": thread})


def thread_ended(thread: str) -> Event:
    return _event(
        {
            "id": f"end-{thread}",
            "type": "session.thread_status_terminated",
            "session_thread_id": thread,
            "agent_name": "a",
        }
    )


def terminated() -> Event:
    return _event({"id": "term", "type": "session.status_terminated"})


def deleted() -> Event:
    return _event({"id": "del", "type": "session.deleted"})


def show(effect: Effect) -> str:
    """An effect as a short line, so the table below reads like the protocol."""
    match effect:
        case Start(tool_use_id=i, stop=None):
            return f"start {i}"
        case Start(tool_use_id=i, stop=stop):
            return f"start {i} ({stop})"
        case Cancel(tool_use_id=i, reason=reason):
            return f"cancel {i} ({reason})"
        case Post(tool_use_id=i):
            return f"post {i}"
        case Withdraw(tool_use_id=i):
            return f"withdraw {i}"
        case Drop(tool_use_id=i, reason=reason):
            return f"drop {i} ({reason})"
        case Ack(tool_use_id=i):
            return f"ack {i}"
        case End(reason=reason):
            return f"end ({reason})"


def run(*batches: list[Input], owns: Callable[[str], bool] = lambda name: True) -> list[list[str]]:
    table = CallTable(owns=owns)
    return [[show(e) for e in table.apply(batch)] for batch in batches]


GONE = "no longer awaited by the session"

RULES: list[tuple[str, list[list[Input]], list[list[str]]]] = [
    (
        "a call runs, its result is posted, its echo acks it",
        [[use("a")], [Completed("a")], [Posted(("a",))], [echo("a")]],
        [["start a"], ["post a"], [], ["ack a"]],
    ),
    (
        "calls of one batch start at its end, in order",
        [[use("a"), use("b"), idle("a", "b")]],
        [["start a", "start b"]],
    ),
    ("a call answered later in the same batch never starts", [[use("a"), idle("a"), echo("a")]], [["ack a"]]),
    ("a call whose interrupt's idle drops it in the batch never starts", [[use("a"), interrupt(), idle()]], [[]]),
    (
        "a call interrupted with no idle yet is answered as cancelled without running",
        [[use("a"), interrupt()]],
        [["start a (interrupted)"]],
    ),
    (
        "a call interrupted then listed by the next idle in the batch runs",
        [[use("a"), interrupt(), idle("a")]],
        [["start a"]],
    ),
    (
        "an interrupted call's result is held until the next idle lists it",
        [[use("a")], [interrupt()], [Completed("a")], [idle("a")]],
        [["start a"], ["cancel a (interrupted)"], [], ["post a"]],
    ),
    (
        "an interrupted call's result is dropped when the next idle does not list it",
        [[use("a")], [interrupt()], [Completed("a")], [idle()]],
        [["start a"], ["cancel a (interrupted)"], [], [f"drop a ({GONE})"]],
    ),
    (
        "an interrupted call still running is dropped by the idle; its late result is ignored",
        [[use("a")], [interrupt()], [idle()], [Completed("a")]],
        [["start a"], ["cancel a (interrupted)"], [f"drop a ({GONE})"], []],
    ),
    (
        "an idle listing an interrupted call still running keeps it wanted: its result is posted",
        [[use("a")], [interrupt()], [idle("a")], [Completed("a")]],
        [["start a"], ["cancel a (interrupted)"], [], ["post a"]],
    ),
    (
        "an interrupt takes back a result waiting in the poster; the next idle re-posts it",
        [[use("a")], [Completed("a")], [interrupt()], [idle("a")]],
        [["start a"], ["post a"], ["withdraw a"], ["post a"]],
    ),
    (
        "a thread's interrupt touches only that thread's calls",
        [[use("a", "t"), use("b")], [interrupt("t")], [idle("b", thread="t")]],
        [["start a", "start b"], ["cancel a (interrupted)"], [f"drop a ({GONE})"]],
    ),
    (
        "another thread's idle does not decide; the session's idle does",
        [[use("a", "t1")], [interrupt("t1")], [idle(thread="t2")], [idle()]],
        [["start a"], ["cancel a (interrupted)"], [], [f"drop a ({GONE})"]],
    ),
    (
        "an idle without an interrupt before it changes nothing",
        [[use("a")], [idle()], [Completed("a")]],
        [["start a"], [], ["post a"]],
    ),
    (
        "a result already posted is unaffected by an interrupt and its idle",
        [[use("a")], [Completed("a")], [Posted(("a",))], [interrupt()], [idle()], [echo("a")]],
        [["start a"], ["post a"], [], [], [], ["ack a"]],
    ),
    (
        "a thread's end drops its calls and ignores its later ones",
        [[use("a", "t"), use("b")], [thread_ended("t")], [use("c", "t")]],
        [["start a", "start b"], ["drop a (thread terminated)"], []],
    ),
    (
        "the session's end drops every call and ends; nothing happens after",
        [[use("a"), use("b")], [Completed("a")], [terminated()], [use("c"), Completed("b")]],
        [
            ["start a", "start b"],
            ["post a"],
            ["drop a (session terminated)", "drop b (session terminated)", "end (session terminated)"],
            [],
        ],
    ),
    (
        "a deleted session ends too",
        [[use("a")], [deleted()]],
        [["start a"], ["drop a (session deleted)", "end (session deleted)"]],
    ),
    (
        "an echo while the call runs means another client answered: cancel it",
        [[use("a")], [echo("a")], [Completed("a")]],
        [["start a"], ["ack a", "cancel a (answered by another client)"], []],
    ),
    (
        "an echo while the result waits in the poster takes it back",
        [[use("a")], [Completed("a")], [echo("a")]],
        [["start a"], ["post a"], ["ack a", "withdraw a"]],
    ),
    (
        "a duplicated or replayed tool use is ignored, also after the call closed",
        [[use("a"), use("a")], [use("a")], [Completed("a")], [Posted(("a",))], [echo("a")], [use("a"), echo("a")]],
        [["start a"], [], ["post a"], [], ["ack a"], ["ack a"]],
    ),
    (
        "an echo seen before its tool use (a replay) keeps the call from starting",
        [[echo("a")], [use("a")]],
        [["ack a"], []],
    ),
    (
        "a rejected result is dropped",
        [[use("a")], [Completed("a")], [Rejected("a", "HTTP 400")]],
        [["start a"], ["post a"], ["drop a (rejected by the API: HTTP 400)"]],
    ),
    (
        "shutdown cancels what runs and answers new calls without running them",
        [[use("a")], [Shutdown("shutdown")], [use("b")], [Completed("a")]],
        [["start a"], ["cancel a (shutdown)"], ["start b (shutdown)"], ["post a"]],
    ),
]


@pytest.mark.parametrize(("rule", "batches", "expected"), RULES, ids=[r[0] for r in RULES])
def test_protocol_rules(rule: str, batches: list[list[Input]], expected: list[list[str]]) -> None:
    """Each batch of the sequence yields exactly the listed effects, in order."""
    assert run(*batches) == expected


def test_calls_of_tools_this_bridge_does_not_serve_are_left_alone() -> None:
    """With `owns` refusing a tool, its calls produce no effect at all (another client serves them)."""
    assert run([use("a", name="theirs"), use("b")], [interrupt()], owns=lambda n: n != "theirs") == [
        ["start b"],
        ["cancel b (interrupted)"],
    ]


def test_settled_waits_for_the_idle_and_every_running_call() -> None:
    """`settled()` (the poster's cue to send what it holds) needs the idle after the newest call and no call still
    running towards a result; a held (interrupted) call does not count as running."""
    table = CallTable()
    table.apply([use("a"), use("b")])
    assert not table.settled()  # the agent may still be asking for more
    table.apply([Completed("a")])
    assert not table.settled()
    table.apply([idle("a", "b")])
    assert not table.settled()  # b still runs
    table.apply([Completed("b")])
    assert table.settled()
    table.apply([use("c")])
    assert not table.settled()  # a new burst began
    table.apply([idle("a", "b", "c"), interrupt()])
    assert table.settled()  # c is held, not running: nothing else is about to be ready
    table.apply([idle("c")])
    assert not table.settled()  # listed again: c runs on


def test_wanted_follows_the_phase() -> None:
    """The poster's `wanted` is true only while a result is with the poster."""
    table = CallTable()
    table.apply([use("a")])
    assert table.phase("a") is Phase.RUNNING
    assert not table.wanted("a")
    table.apply([Completed("a")])
    assert table.phase("a") is Phase.POSTING
    assert table.wanted("a")
    table.apply([interrupt()])
    assert table.phase("a") is Phase.HELD
    assert not table.wanted("a")
    table.apply([idle("a")])
    assert table.wanted("a")
    table.apply([Posted(("a",))])
    assert table.phase("a") is Phase.POSTED
    assert not table.wanted("a")
    table.apply([echo("a")])
    assert table.phase("a") is None
    assert len(table) == 0


# -- the property: random interleavings, I1-I4 checked on the effects alone --------------------------------------

THREADS = [None, "t1", "t2"]


class World:
    """The session's server side and the runtime around the table, reduced to what the effects say."""

    def __init__(self) -> None:
        self.table = CallTable(owns=lambda name: name != "theirs")
        self.history: list[Event] = []
        self.uses: dict[str, str | None] = {}  # tool use id -> thread, as the server emitted them
        self.results: Counter[str] = Counter()  # results stored in the session per call (ours and others')
        self.ours: set[str] = set()  # calls whose stored result came from us
        self.started: Counter[str] = Counter()
        self.completed: set[str] = set()
        self.handed: set[str] = set()
        self.dropped: set[str] = set()
        self.interrupted = False
        self.stopping = False

    def feed(self, batch: list[Input]) -> None:
        self.history.extend(i for i in batch if not isinstance(i, Completed | Posted | Rejected | Shutdown))
        effects = self.table.apply(batch)
        running = sum(self.table.phase(i) is Phase.RUNNING for i in self.uses)
        assert self.table._running == running, "the count behind `settled()` drifted from the phases"
        for effect in effects:
            match effect:
                case Start(tool_use_id=i, stop=stop):
                    assert self.started[i] == 0, f"I2: {i} started twice"
                    assert i in self.uses, f"{i} started though never used"
                    assert self.results[i] == 0, f"{i} started though answered"
                    assert stop is None or (stop == "interrupted" and self.interrupted) or self.stopping
                    self.started[i] += 1
                case Cancel(tool_use_id=i):
                    assert self.started[i] == 1, f"I4: cancel of {i}, which never started"
                case Post(tool_use_id=i):
                    assert i in self.completed, f"post of {i} without a result"
                    assert i not in self.dropped, f"post of {i} after it was dropped"
                    self.handed.add(i)
                case Withdraw(tool_use_id=i):
                    self.handed.discard(i)
                case Drop(tool_use_id=i):
                    assert self.started[i] == 1, f"drop of {i}, which never started"
                    self.dropped.add(i)
                    self.handed.discard(i)
                case Ack() | End():
                    pass

    def server(self, events: list[Event]) -> None:
        self.feed(list(events))

    def complete(self, i: str) -> None:
        if self.started[i] and i not in self.completed and i not in self.dropped:
            self.completed.add(i)
            self.feed([Completed(i)])

    def post(self, i: str) -> None:
        """The poster sends a handed result, asking `wanted` first; the server stores it and echoes it."""
        if i in self.handed and self.table.wanted(i):
            self.handed.discard(i)
            self.results[i] += 1
            self.ours.add(i)
            assert self.results[i] == 1, f"I1/I3: a second result for {i}"
            self.feed([Posted((i,))])
            self.server([echo(i)])

    def pending(self, thread: str | bool | None = False) -> list[str]:
        return [i for i, t in self.uses.items() if self.results[i] == 0 and (thread is False or t == thread)]

    def settle(self) -> None:
        """Run every call to its end: tools finish, the poster drains, the session idles without listing anyone."""
        for _ in range(3):
            for i in list(self.started):
                self.complete(i)
            for i in sorted(self.handed):
                self.post(i)
            if self.table.ended:
                break
            self.server([idle(*self.pending())])
            self.interrupted = True
            self.server([interrupt()])
            self.server([idle()])
        for i in list(self.started):
            self.complete(i)
        for i in sorted(self.handed):
            self.post(i)


def action() -> st.SearchStrategy[tuple[Any, ...]]:
    ids = st.sampled_from("abcdef")
    return st.one_of(
        st.tuples(st.just("use"), ids, st.sampled_from(THREADS), st.sampled_from(["t", "t", "theirs"])),
        st.tuples(st.just("complete"), ids),
        st.tuples(st.just("post"), ids),
        st.tuples(st.just("answered elsewhere"), ids),
        st.tuples(st.just("interrupt"), st.sampled_from(THREADS)),
        st.tuples(st.just("idle"), st.sampled_from(THREADS), st.booleans(), st.integers(0, 6)),
        st.tuples(st.just("thread ended"), st.sampled_from(["t1", "t2"])),
        st.tuples(st.just("replay"), st.integers(0, 40), st.integers(1, 8)),
        st.tuples(st.just("terminate")),
        st.tuples(st.just("shutdown")),
    )


def _server_events(world: World, step: tuple[Any, ...]) -> list[Input]:
    match step:
        case ("use", i, thread, name):
            if i in world.uses:
                return [use(i, world.uses[i], name)]  # a duplicate delivery of the same event
            world.uses[i] = thread
            return [use(i, thread, name)]
        case ("answered elsewhere", i) if i in world.uses and world.results[i] == 0 and i not in world.handed:
            world.results[i] += 1
            return [echo(i)]
        case ("interrupt", thread):
            world.interrupted = True
            return [interrupt(thread)]
        case ("idle", thread, listing, keep):
            waits = world.pending(thread if thread is not None else False)[:keep] if listing else []
            return [idle(*waits, thread=thread)]
        case ("thread ended", thread):
            return [thread_ended(thread)]
        case ("replay", start, length):
            return list(world.history[start : start + length])
        case ("terminate",):
            return [terminated()]
    return []


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(action(), min_size=1, max_size=4), max_size=25))
def test_any_interleaving_keeps_the_invariants(steps: list[list[tuple[Any, ...]]]) -> None:
    """Uses, results, echoes, interrupts, idles, thread ends, duplicates and replays in any order and batching:
    no call starts twice (I2), no call gets two results (I1/I3), cancels and drops hit only started calls (I4),
    and once everything settles every started call was answered once or deliberately dropped (I1)."""
    world = World()
    for batch in steps:
        events: list[Input] = []
        for step in batch:
            match step:
                case ("complete", i):
                    world.complete(i)
                case ("post", i):
                    world.post(i)
                case ("shutdown",):
                    world.stopping = True
                    world.feed([Shutdown("shutdown")])
                case _:
                    events.extend(_server_events(world, step))
        if events:
            world.feed(events)
    world.settle()
    for i, count in world.started.items():
        assert count == 1
        answered = world.results[i] == 1
        assert answered or i in world.dropped, f"I1: {i} started but neither answered nor dropped"
        assert not (i in world.ours and i in world.dropped and world.table.phase(i) is not None)
    assert all(world.table.phase(i) in (None, Phase.POSTED) for i in world.uses), "a call left open"
    assert all(n <= 1 for n in world.results.values())


@pytest.mark.parametrize("news", [LeaseLost("taken over"), PostFenced(("b",), "taken over")])
def test_a_lost_lease_closes_every_call_without_dropping_or_ending_anything(news: Input) -> None:
    """Lease lost (or a post fenced): running calls cancelled, waiting results withdrawn, every call closed with no
    Drop or End (nothing abandoned in the journal: the new owner answers), and nothing applied afterwards."""
    table = CallTable()
    table.apply([use("a"), use("b")])
    table.apply([Completed("b")])
    effects = table.apply([news])
    assert effects == [Cancel("a", "taken over"), Withdraw("b")]
    assert len(table) == 0
    assert table.fenced == table.ended == "lease lost (taken over)"
    assert table.wanted("b") is False
    assert table.apply([use("c"), Completed("a")]) == []
