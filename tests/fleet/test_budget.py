"""The request budget: GCRA reservations locally and shared in PostgreSQL, 429s that hold the fleet back, and the
SDK kept under the emulator's rate limit by a budgeted HTTP client."""

from __future__ import annotations

import anyio
import pytest
from pg import PgServer

from bridge.fleet import LocalBudget, PostgresBudget, fleet_http_client
from bridge.testing import Emulator

pytestmark = pytest.mark.anyio


def test_local_budget_admits_a_burst_then_spaces_requests_at_the_rate() -> None:
    """`burst` requests go at once; each later one waits one more `1 / rate` than the one before."""
    now = [0.0]
    budget = LocalBudget(rate=10, burst=3, clock=lambda: now[0])
    waits = [budget.reserve() for _ in range(6)]
    assert waits == pytest.approx([0, 0, 0, 0.1, 0.2, 0.3])
    now[0] = 10.0
    assert [budget.reserve() for _ in range(3)] == pytest.approx([0, 0, 0]), "an idle budget refills up to the burst"
    assert budget.reserve() == pytest.approx(0.1)


def test_penalty_holds_everyone_back_then_resumes_at_the_rate() -> None:
    """After a 429 asking for 2 s, the next request waits 2 s and the ones after it follow at the rate."""
    now = [0.0]
    budget = LocalBudget(rate=10, burst=5, clock=lambda: now[0])
    assert budget.reserve() == 0
    anyio.run(budget.penalize, 2.0)
    assert [budget.reserve() for _ in range(3)] == pytest.approx([2.0, 2.1, 2.2])
    assert budget.stats().throttled_total == 1


async def test_acquire_waits_its_reservation_and_counts_it() -> None:
    """`acquire()` sleeps what it reserved and reports it in the stats."""
    budget = LocalBudget(rate=100, burst=1)
    assert await budget.acquire() == 0
    waited = await budget.acquire()
    assert 0 < waited <= 0.01
    stats = budget.stats()
    assert (stats.acquired_total, stats.waited_total) == (2, 1)


@pytest.mark.postgres
async def test_postgres_budget_is_shared_by_every_process(pg_cluster: PgServer) -> None:
    """Two budgets on one row draw from one bucket: what one took, the other waits for; a penalty holds both."""
    dsn = pg_cluster.url(pg_cluster.create_database("budget"))
    async with PostgresBudget(dsn, rate=1, burst=2) as first, PostgresBudget(dsn, rate=1, burst=2) as second:
        assert [await first.reserve(), await first.reserve()] == [0, 0]
        assert 0.8 < await second.reserve() <= 1.0, "the burst was spent by the other process"
        await first.penalize(5.0)
        assert 4.8 < await second.reserve() <= 5.0
        async with PostgresBudget(dsn, rate=1, burst=2, name="other") as other:
            assert await other.reserve() == 0, "budgets with other names are independent"


async def test_budgeted_client_stays_under_the_emulators_limit() -> None:
    """Concurrent SDK requests through a budget under the API's limit never meet a 429."""
    # The emulator counts a request when its thread gets to it, sharing this process's GIL; its larger burst absorbs
    # a stall of up to half a second that would otherwise bunch the budget's spaced requests together.
    async with Emulator(rate_limit=20, rate_burst=10) as api:
        budget = LocalBudget(rate=16, burst=2)
        client = api.client(http_client=fleet_http_client(budget=budget), max_retries=0)

        async def call() -> None:
            await client.beta.agents.list()

        async with anyio.create_task_group() as tg:
            for _ in range(25):
                tg.start_soon(call)
        assert api.rate_limit is not None
        assert (api.rate_limit.accepted, api.rate_limit.limited) == (25, 0)
        assert budget.stats().acquired_total == 25


async def test_an_unbudgeted_burst_meets_429s_that_the_budget_then_absorbs() -> None:
    """Without a budget a burst past the limit gets 429 + retry-after; a budget told of it spaces the retries out."""
    async with Emulator(rate_limit=5, rate_burst=1) as api:
        bare = api.client(max_retries=0)
        outcomes: list[str] = []

        async def call() -> None:
            try:
                await bare.beta.agents.list()
                outcomes.append("ok")
            except Exception as exc:
                outcomes.append(type(exc).__name__)

        async with anyio.create_task_group() as tg:
            for _ in range(6):
                tg.start_soon(call)
        assert outcomes.count("RateLimitError") >= 3
        budget = LocalBudget(rate=1000)  # far above the API's: only the 429s can slow it
        client = api.client(http_client=fleet_http_client(budget=budget), max_retries=5)

        async def budgeted() -> None:
            await client.beta.agents.list()

        async with anyio.create_task_group() as tg:
            for _ in range(2):  # the API's bucket holds one token at most: one of these two meets a 429
                tg.start_soon(budgeted)
        assert budget.stats().throttled_total >= 1, "the budget learned of the 429s through the response hook"
