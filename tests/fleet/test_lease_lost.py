"""The runtime's lease-lost path and hand-over, in process: the real SDK against the emulator, real journals, and
real leases in PostgreSQL. A fenced session posts nothing more; its new owner answers from the journal."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import anyio
import pytest
from pg import PgServer

from bridge import Bridge, Toolset, tool
from bridge.fleet import fleet_http_client
from bridge.journal import CallState, PostgresJournal, SessionLeases, SqliteJournal
from bridge.testing import AgentTurn, Emulator

pytestmark = pytest.mark.anyio

IN_DOUBT = "outcome is unknown"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # psycopg's LISTEN and the fleet's HTTP client are exercised on asyncio, as the daemon runs


class Charges:
    """A non-idempotent `charge` tool whose runs the test can see and hold."""

    def __init__(self) -> None:
        self.runs: list[str] = []
        self.started = anyio.Event()
        self.release = anyio.Event()
        self.cancelled = anyio.Event()

        @tool
        async def charge(order: str) -> str:
            """Charge an order once.

            Args:
                order: The order to charge.
            """
            self.runs.append(order)
            self.started.set()
            try:
                await self.release.wait()
            except BaseException:
                self.cancelled.set()
                raise
            return f"charged {order}"

        self.tool = charge


async def charging(agent: AgentTurn) -> None:
    result = await agent.call_tool("charge", {"order": agent.text})
    await agent.say(result.text)


async def setup(api: Emulator, charges: Charges) -> tuple[Any, str]:
    client = api.client()
    agent = await client.beta.agents.create(
        name="a", model="claude-opus-5", tools=Toolset([charges.tool]).definitions()
    )  # type: ignore[arg-type]
    env = await client.beta.environments.create(name="e")
    session = await client.beta.sessions.create(agent=agent.id, environment_id=env.id)
    return client, session.id


async def say(client: Any, session_id: str, text: str) -> None:
    content: Any = [{"type": "text", "text": text}]
    await client.beta.sessions.events.send(session_id, events=[{"type": "user.message", "content": content}])


def results(api: Emulator, session_id: str) -> list[dict[str, Any]]:
    return [e for e in api.control.events(session_id) if e["type"] == "user.custom_tool_result"]


async def test_a_post_refused_by_the_fence_stops_the_session_at_once_and_is_not_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A result post the fence refuses: logged once, counted fenced, never retried, serving stops; the stored result
    is posted by the next owner, and the tool is not run again."""
    charges = Charges()
    allowed = True
    journal = tmp_path / "journal.db"
    async with Emulator(script=charging) as api:
        client, session_id = await setup(api, charges)
        fenced_client = api.client(http_client=fleet_http_client(may_post=lambda s: allowed))
        with anyio.fail_after(20):
            async with Bridge(fenced_client, [charges.tool], journal=SqliteJournal(journal)) as bridge:
                async with bridge.watch(session_id) as events:
                    await say(client, session_id, "42")
                    await charges.started.wait()
                    allowed = False  # the lease is no longer sure when the result is ready
                    charges.release.set()
                    async for _ in events:
                        pass  # ends when serving ends
                stats = bridge.stats()
                assert bridge.sessions == []
            assert results(api, session_id) == [], "a fenced process posted"
            record = await _record(SqliteJournal(journal), session_id)
            assert record.state is CallState.COMPLETED, "the result waits in the journal for the next owner"

            async with Bridge(client, [charges.tool], journal=SqliteJournal(journal)) as heir:
                heir.attach(session_id)
                await api.control.wait_idle(session_id, timeout=15)
        report = api.control.invariants(session_id)
    report.assert_ok()
    assert (stats.fenced, stats.sessions_fenced, stats.post_retries, stats.posted) == (1, 1, 0, 0)
    assert charges.runs == ["42"], "the stored result was posted, the tool not run again"
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, "logged once"
    assert "lease lost (not posting to session" in warnings[0]


async def test_fencing_a_session_cancels_its_running_calls_and_the_new_owner_answers_outcome_unknown(
    tmp_path: Path,
) -> None:
    """`Bridge.fence` mid-call: the tool is cancelled, nothing journaled or posted; the next owner answers the
    started non-idempotent call "outcome unknown" and never runs it again."""
    charges = Charges()
    journal = tmp_path / "journal.db"
    async with Emulator(script=charging) as api:
        client, session_id = await setup(api, charges)
        with anyio.fail_after(20):
            async with Bridge(client, [charges.tool], journal=SqliteJournal(journal)) as bridge:
                async with bridge.watch(session_id) as events:
                    await say(client, session_id, "7")
                    await charges.started.wait()
                    bridge.fence(session_id, "lease lost (test)")
                    async for _ in events:
                        pass
                    await charges.cancelled.wait()
                stats = bridge.stats()
            assert results(api, session_id) == []
            record = await _record(SqliteJournal(journal), session_id)
            assert record.state is CallState.STARTED, "left as it was, for the new owner"

            async with Bridge(client, [charges.tool], journal=SqliteJournal(journal)) as heir:
                heir.attach(session_id)
                await api.control.wait_idle(session_id, timeout=15)
        posted = results(api, session_id)
        report = api.control.invariants(session_id)
    report.assert_ok()
    assert (stats.fenced, stats.sessions_fenced, stats.cancelled, stats.posted) == (1, 1, 0, 0)
    assert charges.runs == ["7"]
    assert len(posted) == 1
    assert posted[0]["is_error"]
    assert IN_DOUBT in posted[0]["content"][0]["text"]


async def test_a_member_whose_lease_is_taken_over_stops_the_session_at_once(
    pg_cluster: PgServer, fleet_db: str
) -> None:
    """Leases in PostgreSQL: another owner takes the lease mid-call; the next heartbeat finds it lost, the call is
    cancelled, and nothing is journaled or posted by the old owner."""
    charges = Charges()
    dsn = pg_cluster.url(fleet_db)
    async with Emulator(script=charging) as api:
        client, session_id = await setup(api, charges)
        leases = SessionLeases(dsn, ttl=2.0)
        journal = PostgresJournal(dsn, leases=leases)
        with anyio.fail_after(30):
            async with Bridge(client, [charges.tool], journal=journal, leases=leases) as bridge:
                assert bridge.fleet is not None
                await bridge.fleet.offer([session_id])
                await say(client, session_id, "9")
                await charges.started.wait()
                pg_cluster.scalar(
                    "UPDATE bridge_leases SET owner_id = 'someone-else', fence = nextval('bridge_fence_seq'), "
                    "expires_at = clock_timestamp() + interval '1 hour' WHERE session_id = %s",
                    (session_id,),
                    dbname=fleet_db,
                )
                await charges.cancelled.wait()
                stats = bridge.stats()
        state = pg_cluster.scalar(
            "SELECT state FROM bridge_tool_calls WHERE session_id = %s", (session_id,), dbname=fleet_db
        )
        assert results(api, session_id) == []
    assert state == "started"
    assert (stats.sessions_fenced, stats.fenced, stats.leases_lost, stats.leases_claimed) == (1, 1, 1, 1)


async def test_leaving_the_fleet_hands_sessions_over_at_once_not_after_the_ttl(
    pg_cluster: PgServer, fleet_db: str
) -> None:
    """A member leaving (drain, then release) hands its sessions to a running member well within the TTL (60 s):
    its in-flight call finishes and posts first; the next turn is served by the other member."""
    charges = Charges()
    dsn = pg_cluster.url(fleet_db)
    async with Emulator(script=charging) as api:
        client, session_id = await setup(api, charges)
        first = SessionLeases(dsn, ttl=60.0)
        second = SessionLeases(dsn, ttl=60.0)
        with anyio.fail_after(20):
            async with Bridge(client, [charges.tool], journal=PostgresJournal(dsn, leases=second), leases=second) as b:
                async with Bridge(
                    client, [charges.tool], journal=PostgresJournal(dsn, leases=first), leases=first
                ) as a:
                    assert a.fleet is not None
                    await a.fleet.offer([session_id])
                    await say(client, session_id, "1")
                    await charges.started.wait()
                    assert first.held
                    assert not second.held
                    charges.release.set()  # leaving now: the drain lets the call finish and post first
                a_stats = a.stats()
                await api.control.wait_idle(session_id, timeout=10)
                charges.release = anyio.Event()
                charges.release.set()
                await say(client, session_id, "2")
                await api.control.wait_idle(session_id, timeout=10)
                b_stats = b.stats()
        report = api.control.invariants(session_id)
    report.assert_ok()
    assert charges.runs == ["1", "2"]
    assert (a_stats.posted, a_stats.leases_released, a_stats.leases_held) == (1, 1, 0)
    assert (b_stats.received, b_stats.leases_claimed, b_stats.leases_held) == (1, 1, 1)


async def _record(journal: Any, session_id: str) -> Any:
    async with journal:
        (record,) = await journal.unfinished(session_id)
        return record
