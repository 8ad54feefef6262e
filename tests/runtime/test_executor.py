"""The executor: the call table's effects carried out against a real journal, scheduler and toolset (no HTTP)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import pytest
from anthropic import AsyncAnthropic
from test_calls import echo, idle, interrupt, use

from bridge import CallEvent, CallEventKind, Limits, Timeouts, tool
from bridge.journal import CallState, MemoryJournal, StoredResult
from bridge.runtime._calls import CallTable
from bridge.runtime._executor import IN_DOUBT_TEXT, Executor, ServeOptions
from bridge.runtime._observe import Observer
from bridge.runtime._poster import Poster
from bridge.runtime._scheduler import Scheduler
from bridge.tools import Toolset

pytestmark = pytest.mark.anyio

gate = anyio.Event()
runs: list[str] = []


@tool(name="t")
async def slow() -> str:
    """Wait for the gate."""
    runs.append("t")
    await gate.wait()
    return "done"


@tool(name="once")
async def once() -> str:
    """Run at most once."""
    runs.append("once")
    return "ok"


@dataclass
class Rig:
    executor: Executor
    table: CallTable
    journal: MemoryJournal
    poster: Poster
    events: list[CallEvent]

    def kinds(self, use_id: str) -> list[CallEventKind]:
        return [e.kind for e in self.events if e.tool_use_id == use_id]


@asynccontextmanager
async def rig() -> AsyncIterator[Rig]:
    global gate
    gate = anyio.Event()
    runs.clear()
    toolset = Toolset([slow, once])
    journal = MemoryJournal()
    observer = Observer()
    events: list[CallEvent] = []
    observer.add_listener(events.append)
    table = CallTable()
    client = AsyncAnthropic(api_key="unused", base_url="http://127.0.0.1:9")  # never reached: the poster never runs
    limits, timeouts = Limits(), Timeouts()
    poster = Poster(
        "s",
        send_events=client.beta.sessions.events,
        history=client.beta.sessions.events,
        journal=journal,
        observer=observer,
        limits=limits,
        timeouts=timeouts,
        wanted=table.wanted,
    )
    await journal.open()
    async with Scheduler(limits) as scheduler:
        executor = Executor(
            "s",
            table=table,
            toolset=toolset,
            scheduler=scheduler,
            journal=journal,
            poster=poster,
            observer=observer,
            options=ServeOptions(default_timeout=5),
        )
        async with executor:
            yield Rig(executor, table, journal, poster, events)
    await client.close()


async def test_a_call_runs_and_its_result_goes_to_the_poster() -> None:
    """A tool use is journaled, run, completed, and its stored result handed to the poster."""
    async with rig() as r:
        await r.executor.apply([use("a")])
        gate.set()
        await r.executor.wait_idle()
        record = await r.journal.get("s", "a")
        assert record is not None
        assert record.state is CallState.COMPLETED
        assert r.poster.backlog == 1
        assert r.kinds("a") == [CallEventKind.RECEIVED, CallEventKind.STARTED, CallEventKind.FINISHED]


async def test_an_interrupted_call_is_held_then_posted_when_the_idle_lists_it() -> None:
    """An interrupt cancels the running tool; its cancelled answer waits for the idle, which lists it: posted."""
    async with rig() as r:
        await r.executor.apply([use("a")])
        while not runs:
            await anyio.lowlevel.checkpoint()
        await r.executor.apply([interrupt()])
        await r.executor.wait_idle()
        assert r.poster.backlog == 0
        await r.executor.apply([idle("a")])
        assert r.poster.backlog == 1
        assert CallEventKind.CANCELLED in r.kinds("a")


async def test_a_call_dropped_while_running_is_abandoned_when_it_stops() -> None:
    """The session's end drops a running call: the tool is cancelled, the journal says abandoned, nothing is posted."""
    async with rig() as r:
        await r.executor.apply([use("a")])
        while not runs:
            await anyio.lowlevel.checkpoint()
        await r.executor.apply([interrupt(), idle()])
        await r.executor.wait_idle()
        record = await r.journal.get("s", "a")
        assert record is not None
        assert record.state is CallState.ABANDONED
        assert r.poster.backlog == 0
        assert r.kinds("a")[-1] is CallEventKind.DROPPED


async def test_recovery_posts_a_stored_result_without_running_the_tool() -> None:
    """A call the journal already completed (an earlier life) is re-posted from the journal, never re-run."""
    async with rig() as r:
        await r.journal.receive("s", "a", "once", {})
        await r.journal.start("s", "a")
        await r.journal.complete("s", "a", StoredResult(({"type": "text", "text": "ok"},), False))
        await r.executor.apply([use("a", name="once")], backfill=True)
        await r.executor.wait_idle()
        assert runs == []
        assert r.poster.backlog == 1


async def test_recovery_answers_a_started_non_idempotent_call_as_in_doubt() -> None:
    """A call that had started when the last life ended is not run again; its answer says the outcome is unknown."""
    async with rig() as r:
        await r.journal.receive("s", "a", "once", {})
        await r.journal.start("s", "a")
        await r.executor.apply([use("a", name="once")], backfill=True)
        await r.executor.wait_idle()
        record = await r.journal.get("s", "a")
        assert runs == []
        assert record is not None
        assert record.state is CallState.IN_DOUBT
        assert record.result is not None
        assert record.result.content[0]["text"] == IN_DOUBT_TEXT


async def test_the_backfill_abandons_journaled_calls_the_history_no_longer_waits_for() -> None:
    """After the first history read, an unfinished journaled call absent from it is abandoned; an answered one acked."""
    async with rig() as r:
        for use_id in ("gone", "done"):
            await r.journal.receive("s", use_id, "once", {})
            await r.journal.complete("s", use_id, StoredResult(({"type": "text", "text": "ok"},), False))
        await r.executor.apply([echo("done")], backfill=True)
        gone, done = await r.journal.get("s", "gone"), await r.journal.get("s", "done")
        assert gone is not None
        assert gone.state is CallState.ABANDONED
        assert done is not None
        assert done.state is CallState.ACKED
