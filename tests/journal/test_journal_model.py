"""Differential test: any sequence of journal operations gives the same answers on every backend as on the model.

The model is `MemoryJournal`, whose transitions are a few lines of dict code; the state machine drives a backend and
the model side by side and compares every return value, every record and `unfinished()` after every step.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test
from journal_backends import Backend

from bridge.journal import CallRecord, Journal, MemoryJournal, StoredResult

T = TypeVar("T")

SESSIONS = ("s1", "s2")
IDS = ("a", "b")
keys = st.tuples(st.sampled_from(SESSIONS), st.sampled_from(IDS))
results = st.builds(
    StoredResult,
    content=st.tuples(st.builds(lambda t: {"type": "text", "text": t}, st.text(max_size=5))),
    is_error=st.booleans(),
    in_doubt=st.booleans(),
)


def comparable(record: CallRecord | None) -> tuple[Any, ...] | None:
    """A record without its timestamps, which the two journals take at slightly different moments."""
    if record is None:
        return None
    return (
        record.session_id,
        record.tool_use_id,
        record.tool_name,
        dict(record.input),
        record.state,
        record.thread_id,
        record.attempt,
        record.result,
        record.acked_event_id,
        record.posted_at is None,
    )


def machine_for(factory: Callable[[Path], Journal], portal: BlockingPortal) -> type[RuleBasedStateMachine]:
    class JournalAgreesWithModel(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.root = Path(tempfile.mkdtemp(prefix="journal-model-"))
            self.model = MemoryJournal()
            self.real = factory(self.root)

        def both(self, call: Callable[[Journal], Awaitable[T]]) -> T:
            async def run(journal: Journal) -> T:
                return await call(journal)

            expected = portal.call(run, self.model)
            actual = portal.call(run, self.real)
            assert actual == expected
            return actual

        @initialize()
        def open(self) -> None:
            self.both(lambda j: j.open())

        @rule(key=keys, name=st.sampled_from(["pay", "read"]), n=st.integers(0, 3), thread=st.none() | st.just("th"))
        def receive(self, key: tuple[str, str], name: str, n: int, thread: str | None) -> None:
            self.both(lambda j: j.receive(*key, name, {"n": n}, thread_id=thread))

        @rule(key=keys)
        def start(self, key: tuple[str, str]) -> None:
            self.both(lambda j: j.start(*key))

        @rule(key=keys, result=results)
        def complete(self, key: tuple[str, str], result: StoredResult) -> None:
            self.both(lambda j: j.complete(*key, result))

        @rule(key=keys)
        def requeue(self, key: tuple[str, str]) -> None:
            self.both(lambda j: j.requeue(*key))

        @rule(session=st.sampled_from(SESSIONS), ids=st.lists(st.sampled_from(IDS), max_size=3))
        def mark_posted(self, session: str, ids: list[str]) -> None:
            self.both(lambda j: j.mark_posted(session, ids))

        @rule(key=keys, event=st.sampled_from(["e1", "e2"]))
        def mark_acked(self, key: tuple[str, str], event: str) -> None:
            self.both(lambda j: j.mark_acked(*key, event))

        @rule(session=st.sampled_from(SESSIONS), ids=st.none() | st.lists(st.sampled_from(IDS), max_size=2))
        def abandon(self, session: str, ids: list[str] | None) -> None:
            self.both(lambda j: j.abandon(session, ids))

        @rule(older_than=st.sampled_from([0.0, 3600.0]))
        def prune(self, older_than: float) -> None:
            self.both(lambda j: j.prune(older_than))

        @invariant()
        def same_records(self) -> None:
            async def snapshot(journal: Journal) -> tuple[Any, ...]:
                records = [comparable(await journal.get(s, i)) for s in SESSIONS for i in IDS]
                unfinished = [comparable(r) for r in await journal.unfinished()]
                per_session = [[r.tool_use_id for r in await journal.unfinished(s)] for s in SESSIONS]
                stats = await journal.stats()
                return records, unfinished, per_session, stats.calls, dict(stats.by_state)

            assert portal.call(snapshot, self.real) == portal.call(snapshot, self.model)

        def teardown(self) -> None:
            portal.call(self.real.close)
            shutil.rmtree(self.root, ignore_errors=True)

    return JournalAgreesWithModel


def test_backend_agrees_with_the_model(backend: Backend) -> None:
    """Random sequences of receive/start/complete/requeue/post/ack/abandon/prune give model-identical results."""
    if backend.name == "memory":
        pytest.skip("the model itself")
    with start_blocking_portal("trio") as portal:  # the loop does not matter here; the other suites run both
        run_state_machine_as_test(
            machine_for(backend.factory, portal),
            settings=settings(
                max_examples=30, stateful_step_count=25, deadline=None, suppress_health_check=list(HealthCheck)
            ),
        )
