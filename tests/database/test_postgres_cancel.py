"""A cancelled call stops its PostgreSQL statement on the server at once, and its connection goes back clean."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

pytest.importorskip("psycopg")

from pg import PgServer

from bridge import CallResult, ToolContext, Toolset
from toolkits.database import QueryLimits, postgres_toolset

pytestmark = pytest.mark.anyio

SLEEP = {"sql": "SELECT pg_sleep(30)", "timeout_ms": 30_000}
_SLEEPING = (
    "SELECT pid FROM pg_stat_activity WHERE usename = 'bridge_reader' AND state = 'active' AND wait_event = 'PgSleep'"
)


@pytest.fixture
async def sleeper(pg: PgServer) -> AsyncIterator[Toolset]:
    """A read-only toolset of one connection that may call pg_sleep, with a 30 s statement deadline allowed."""
    limits = QueryLimits(max_timeout=60.0)
    async with postgres_toolset(pg.reader, limits=limits, allow_functions=["pg_sleep"], pool_size=1) as toolset:
        yield toolset


async def sleeping_backend(pg: PgServer) -> int:
    """The pid of the reader's backend once it is inside pg_sleep (re-checked until it is, 10 s at most)."""
    with anyio.fail_after(10):
        while True:
            pid = await anyio.to_thread.run_sync(pg.scalar, _SLEEPING)
            if pid is not None:
                return int(pid)


def backend_state(pg: PgServer, pid: int) -> tuple[str, str]:
    """The backend's state and its last statement, as the server reports them."""
    state = pg.scalar("SELECT state || '|' || query FROM pg_stat_activity WHERE pid = %s", [pid])
    head, _, query = str(state).partition("|")
    return head, query


async def test_ctx_cancel_stops_the_server_statement(pg: PgServer, sleeper: Toolset) -> None:
    """ctx.cancel() (an interrupt) ends a running pg_sleep(30) on the server within a second; the call says so."""
    ctx = ToolContext(tool_name="db_query")
    results: list[CallResult] = []
    done = anyio.Event()

    async def call() -> None:
        results.append(await sleeper.call("db_query", SLEEP, ctx))
        done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        pid = await sleeping_backend(pg)
        ctx.cancel()
        with anyio.fail_after(5):
            await done.wait()
    assert results[0].is_error
    assert results[0].text.startswith("cancelled: the call was cancelled and the statement stopped")
    assert backend_state(pg, pid)[0] == "idle"


async def test_cancel_scope_stops_the_server_statement(pg: PgServer, sleeper: Toolset) -> None:
    """Cancelling the awaiting task (a deadline) flags the context and frees the server and the pool's connection."""
    ctx = ToolContext(tool_name="db_query")
    async with anyio.create_task_group() as tg:

        async def call() -> None:
            with anyio.CancelScope() as scope:
                scopes.append(scope)
                await sleeper.call("db_query", SLEEP, ctx)

        scopes: list[anyio.CancelScope] = []
        tg.start_soon(call)
        pid = await sleeping_backend(pg)
        scopes[0].cancel()
    assert ctx.cancelled
    # The pool holds one connection: the next call gets it only once the cancelled statement let go of it.
    with anyio.fail_after(5):
        result = await sleeper.call("db_query", {"sql": "SELECT pg_backend_pid() AS pid"})
    assert not result.is_error, result.text
    assert f"[{pid}]" in result.text  # the same backend, returned to the pool rather than discarded
    with anyio.fail_after(5):  # the pool resets a returned connection in its own worker thread
        while (state_query := backend_state(pg, pid)) != ("idle", "DISCARD ALL"):
            await anyio.lowlevel.checkpoint()
    assert state_query == ("idle", "DISCARD ALL")  # the pool's reset ran after the second call, as after any other
