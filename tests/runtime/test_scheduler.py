"""Scheduler: slots taken narrowest first, deadlines inside the call's task, cancellation, abandoned threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from bridge import Limits
from bridge.runtime._scheduler import Outcome, OutcomeKind, RunSync, Scheduler, Ticket

pytestmark = pytest.mark.anyio


class Gauge:
    """Counts bodies running at once and remembers the peak."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.entered = 0

    def body(self, gate: anyio.Event) -> Callable[[RunSync], Awaitable[str]]:
        async def run(_: RunSync) -> str:
            self.now += 1
            self.entered += 1
            self.peak = max(self.peak, self.now)
            try:
                await gate.wait()
            finally:
                self.now -= 1
            return "ok"

        return run


async def run_all(
    scheduler: Scheduler, tickets: list[Ticket], body: Callable[[RunSync], Awaitable[Any]]
) -> list[Outcome[Any]]:
    outcomes: list[Outcome[Any]] = []

    async def one(ticket: Ticket) -> None:
        outcomes.append(await scheduler.run(ticket, body))

    async with anyio.create_task_group() as tg:
        for ticket in tickets:
            tg.start_soon(one, ticket)
    return outcomes


async def _ok(_: RunSync) -> str:
    return "ok"


async def test_per_tool_limit_is_never_exceeded() -> None:
    """A tool with max_concurrency=2 never runs more than two calls at once, and all of them finish."""
    gauge, gate = Gauge(), anyio.Event()
    tickets = [Ticket("s", f"c{i}", "slow", tool_limit=2) for i in range(20)]
    async with Scheduler(Limits()) as scheduler, anyio.create_task_group() as tg:
        tg.start_soon(run_all, scheduler, tickets, gauge.body(gate))
        await anyio.wait_all_tasks_blocked()
        assert (gauge.now, scheduler.running, scheduler.queued) == (2, 2, 18)
        gate.set()
    assert (gauge.peak, gauge.entered) == (2, 20)
    assert (scheduler.running, scheduler.queued) == (0, 0)


@pytest.mark.parametrize(
    ("limits", "make", "expected"),
    [
        (Limits(max_concurrency=3), lambda i: Ticket(f"s{i}", "c", "t"), 3),
        (Limits(per_session=4), lambda i: Ticket("s", f"c{i}", "t"), 4),
        (Limits(), lambda i: Ticket("s", f"c{i}", "t", key=f"acct-{i % 2}", key_limit=1), 2),
    ],
    ids=["global", "per-session", "per-key"],
)
async def test_each_level_limits_running_calls(limits: Limits, make: Callable[[int], Ticket], expected: int) -> None:
    """The global, per-session and per-key limits each cap the calls that run at once."""
    gauge, gate = Gauge(), anyio.Event()
    async with Scheduler(limits) as scheduler, anyio.create_task_group() as tg:
        tg.start_soon(run_all, scheduler, [make(i) for i in range(10)], gauge.body(gate))
        await anyio.wait_all_tasks_blocked()
        assert gauge.now == expected
        gate.set()
    assert (gauge.peak, gauge.entered) == (expected, 10)


async def test_waiting_for_a_busy_tool_does_not_hold_the_session_slot() -> None:
    """Calls queued behind a busy tool leave the session's other slots to calls of other tools."""
    gauge, gate = Gauge(), anyio.Event()
    busy = [Ticket("s", f"b{i}", "busy", tool_limit=1) for i in range(5)]
    other = [Ticket("s", f"o{i}", "other") for i in range(2)]
    async with Scheduler(Limits(per_session=3)) as scheduler, anyio.create_task_group() as tg:
        tg.start_soon(run_all, scheduler, busy + other, gauge.body(gate))
        await anyio.wait_all_tasks_blocked()
        assert gauge.now == 3  # one busy + two others, although four busy calls wait
        gate.set()


async def test_async_deadline_fires_inside_the_call() -> None:
    """An async body past its deadline ends as TIMED_OUT promptly and sets the cancel flag."""
    ticket = Ticket("s", "c", "t", timeout=0.05)
    async with Scheduler(Limits()) as scheduler:
        outcome = await scheduler.run(ticket, lambda _: anyio.sleep_forever())
    assert (outcome.kind, outcome.started) == (OutcomeKind.TIMED_OUT, True)
    assert ticket.cancel_event.is_set()
    assert outcome.duration is not None
    assert outcome.duration < 1.0


async def test_abandoned_thread_keeps_its_slot_until_it_ends() -> None:
    """A sync body past its deadline is answered at once; its thread holds the slot and is counted until it ends."""
    released = anyio.Event()
    finish, saw_cancel = threading.Event(), threading.Event()
    ticket = Ticket("s", "c", "t", timeout=0.2)

    def blocking() -> str:
        finish.wait(10)
        if ticket.cancel_event.is_set():
            saw_cancel.set()
        return "late"

    async with Scheduler(Limits(max_concurrency=1), on_released=lambda _: released.set()) as scheduler:
        start = time.monotonic()
        outcome = await scheduler.run(ticket, lambda run_sync: run_sync(blocking))
        assert outcome.kind is OutcomeKind.TIMED_OUT
        assert time.monotonic() - start < 0.5
        assert scheduler.abandoned_threads == 1

        with anyio.move_on_after(0.05) as waited:  # the only global slot is still held by the thread
            await scheduler.run(Ticket("s", "d", "t"), _ok)
        assert waited.cancelled_caught

        finish.set()
        with anyio.fail_after(5):
            await released.wait()
        assert saw_cancel.is_set()
        assert scheduler.abandoned_threads == 0
        assert (await scheduler.run(Ticket("s", "e", "t"), _ok)).kind is OutcomeKind.COMPLETED


async def test_sync_results_and_exceptions_come_back_from_the_thread() -> None:
    """run_sync returns the function's value and re-raises its exception in the call's task."""

    def boom() -> None:
        raise ValueError("bad")

    async def body(run_sync: RunSync) -> Any:
        assert await run_sync(lambda: 42) == 42
        with pytest.raises(ValueError, match="bad"):
            await run_sync(boom)
        return "done"

    async with Scheduler(Limits()) as scheduler:
        outcome = await scheduler.run(Ticket("s", "c", "t"), body)
    assert (outcome.kind, outcome.value) == (OutcomeKind.COMPLETED, "done")
    assert scheduler.abandoned_threads == 0


async def test_cancel_reaches_queued_and_running_calls() -> None:
    """Cancelling tickets ends running and queued calls alike as CANCELLED, and queued ones never start."""
    gauge, gate = Gauge(), anyio.Event()
    tickets = [Ticket("s", f"c{i}", "t") for i in range(5)]
    outcomes: list[Outcome[Any]] = []
    async with Scheduler(Limits(max_concurrency=2)) as scheduler, anyio.create_task_group() as tg:

        async def go() -> None:
            outcomes.extend(await run_all(scheduler, tickets, gauge.body(gate)))

        tg.start_soon(go)
        await anyio.wait_all_tasks_blocked()
        for ticket in tickets:
            ticket.cancel("interrupted")
    assert [o.kind for o in outcomes] == [OutcomeKind.CANCELLED] * 5
    assert sorted(o.started for o in outcomes) == [False, False, False, True, True]
    assert {o.reason for o in outcomes} == {"interrupted"}
    assert gauge.entered == 2
    assert scheduler.running == scheduler.queued == 0


async def test_cancelled_sync_call_sees_ctx_cancelled() -> None:
    """Cancelling a running sync call returns at once and sets the flag the thread can watch."""
    ticket = Ticket("s", "c", "t")
    in_thread = threading.Event()
    outcomes: list[Outcome[Any]] = []

    def blocking() -> None:
        in_thread.set()
        ticket.cancel_event.wait(10)

    async with Scheduler(Limits()) as scheduler:

        async def go() -> None:
            outcomes.append(await scheduler.run(ticket, lambda run_sync: run_sync(blocking)))

        async with anyio.create_task_group() as tg:
            tg.start_soon(go)
            await anyio.to_thread.run_sync(in_thread.wait, 10)
            ticket.cancel("interrupted")
    assert (outcomes[0].kind, outcomes[0].started) == (OutcomeKind.CANCELLED, True)


async def test_start_refused_skips_the_body() -> None:
    """When the journal says the call was already started elsewhere, the body does not run."""
    ran: list[bool] = []

    async def refuse() -> bool:
        return False

    async def body(_: RunSync) -> None:
        ran.append(True)

    async with Scheduler(Limits()) as scheduler:
        outcome = await scheduler.run(Ticket("s", "c", "t"), body, on_start=refuse)
    assert outcome.kind is OutcomeKind.SKIPPED
    assert not ran


async def test_calls_beyond_max_queued_are_shed() -> None:
    """With the queue full, a new call is refused at once instead of waiting (bounded memory)."""
    gauge, gate = Gauge(), anyio.Event()
    async with Scheduler(Limits(max_concurrency=1, max_queued=2)) as scheduler, anyio.create_task_group() as tg:
        tg.start_soon(run_all, scheduler, [Ticket("s", "c0", "t")], gauge.body(gate))
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(run_all, scheduler, [Ticket("s", f"c{i}", "t") for i in (1, 2)], gauge.body(gate))
        await anyio.wait_all_tasks_blocked()
        assert (scheduler.running, scheduler.queued) == (1, 2)
        shed = await scheduler.run(Ticket("s", "x", "t"), gauge.body(gate))
        assert (shed.kind, shed.started) == (OutcomeKind.SHED, False)
        gate.set()
    assert gauge.entered == 3


async def test_threads_are_capped_separately_and_an_abandoned_one_keeps_its_thread_slot() -> None:
    """With max_threads=1, an abandoned thread blocks the next sync call, while async calls still run."""
    finish = threading.Event()

    def blocking() -> str:
        finish.wait(10)
        return "late"

    async with Scheduler(Limits(max_threads=1)) as scheduler:
        first = await scheduler.run(Ticket("s", "a", "t", timeout=0.05), lambda run_sync: run_sync(blocking))
        assert first.kind is OutcomeKind.TIMED_OUT
        second = await scheduler.run(Ticket("s", "b", "t", timeout=0.05), lambda run_sync: run_sync(lambda: "x"))
        assert second.kind is OutcomeKind.TIMED_OUT  # it waited for the only thread slot
        assert (await scheduler.run(Ticket("s", "c", "t"), _ok)).value == "ok"
        finish.set()
        with anyio.fail_after(5):
            assert (await scheduler.run(Ticket("s", "d", "t"), lambda run_sync: run_sync(lambda: "y"))).value == "y"
