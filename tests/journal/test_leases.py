"""Session leases and fencing on a real PostgreSQL: exclusive balanced claims, takeover, and stale writers refused.

Time passing is the database's `expires_at` / `heartbeat_at` moving into the past; the tests age those rows with SQL
instead of sleeping through a TTL, and inject a clock for the local (monotonic) view.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import anyio
import pytest
from pg import PgServer

from bridge import JournalSchemaError
from bridge.journal import Lease, PostgresJournal, SessionLeases, StoredResult

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

RESULT = StoredResult(content=({"type": "text", "text": "done"},), is_error=False)


@pytest.fixture
def db(pg_cluster: PgServer) -> str:
    return pg_cluster.create_database("leases")


@pytest.fixture
def make(pg_cluster: PgServer, db: str) -> Callable[..., SessionLeases]:
    def make(**options: object) -> SessionLeases:
        return SessionLeases(pg_cluster.url(db), pool_size=2, **options)  # type: ignore[arg-type]

    return make


@pytest.fixture
async def fleet(make: Callable[..., SessionLeases]) -> AsyncIterator[list[SessionLeases]]:
    members = [make(owner_id=f"p{i}") for i in range(3)]
    for member in members:
        await member.open()
    try:
        yield members
    finally:
        for member in members:
            await member.close()


def age(pg: PgServer, db: str, owner: str) -> None:
    """Let `ttl` pass for `owner`: its leases expire and its heartbeat goes stale."""
    pg.scalar(
        "UPDATE bridge_leases SET expires_at = clock_timestamp() - interval '1 s' WHERE owner_id = %s",
        (owner,),
        dbname=db,
    )
    pg.scalar(
        "UPDATE bridge_processes SET heartbeat_at = clock_timestamp() - interval '1 h' WHERE owner_id = %s",
        (owner,),
        dbname=db,
    )


async def test_concurrent_claims_are_exclusive_and_balanced(fleet: list[SessionLeases]) -> None:
    """Three processes claiming 30 sessions at once get 10 each, and no session twice."""
    await fleet[0].offer(f"s{i:02}" for i in range(30))
    got: dict[str, list[Lease]] = {}

    async def claim(member: SessionLeases) -> None:
        got[member.owner_id] = await member.claim()

    async with anyio.create_task_group() as tg:
        for member in fleet:
            tg.start_soon(claim, member)
    sessions = [lease.session_id for leases in got.values() for lease in leases]
    assert sorted(sessions) == [f"s{i:02}" for i in range(30)]
    assert sorted(len(leases) for leases in got.values()) == [10, 10, 10]
    assert all(member.token(s) is not None for member in fleet for s in member.held)
    assert await fleet[0].claim() == [], "a process at its fair share takes no more"


async def test_offer_is_idempotent_and_claims_respect_limit(fleet: list[SessionLeases]) -> None:
    """Offering a known session again changes nothing; `limit` caps a claim; unbalanced claims take everything."""
    assert await fleet[0].offer(["a", "b", "c", "d"]) == 4
    assert await fleet[1].offer(["a", "b", "e"]) == 1
    assert [lease.session_id for lease in await fleet[0].claim(limit=1)] == ["a"]
    rest = await fleet[1].claim(balanced=False)
    assert [lease.session_id for lease in rest] == ["b", "c", "d", "e"]


async def test_fencing_tokens_only_grow_across_takeovers(
    fleet: list[SessionLeases], pg_cluster: PgServer, db: str
) -> None:
    """Each takeover of an expired lease issues a higher token; the loser learns at its next renewal."""
    first, second, third = fleet
    await first.offer(["s"])
    (lease1,) = await first.claim()
    age(pg_cluster, db, first.owner_id)
    (lease2,) = await second.claim()
    age(pg_cluster, db, second.owner_id)
    (lease3,) = await third.claim()
    assert lease1.fence < lease2.fence < lease3.fence
    assert await first.renew() == ["s"]
    assert first.token("s") is None
    assert await second.renew() == ["s"]
    assert await third.renew() == []
    assert third.token("s") == lease3.fence
    assert (first.stats().lost_total, third.stats().held) == (1, 1)


async def test_a_live_lease_is_never_taken(fleet: list[SessionLeases]) -> None:
    """While the holder renews, other processes claim nothing of it, balanced or not."""
    await fleet[0].offer(["s"])
    assert await fleet[0].claim()
    assert await fleet[1].claim(balanced=False) == []
    assert await fleet[0].renew() == []
    assert await fleet[2].claim(balanced=False) == []


async def test_stale_holder_cannot_write_the_journal(
    make: Callable[..., SessionLeases], pg_cluster: PgServer, db: str
) -> None:
    """After a takeover the old holder's journal writes are refused in the database; the new holder's apply."""
    async with (
        make(owner_id="old") as old,
        make(owner_id="new") as new,
        PostgresJournal(pg_cluster.url(db), leases=old) as stale,
        PostgresJournal(pg_cluster.url(db), leases=new) as fresh,
    ):
        await old.offer(["s"])
        assert await old.claim()
        assert await stale.receive("s", "t1", "pay", {"cents": 5})
        assert await stale.start("s", "t1")
        assert not await fresh.receive("s", "t2", "pay", {}), "no lease, no write"
        age(pg_cluster, db, "old")
        assert await new.claim()
        assert old.token("s") is not None, "the old holder's local view has not caught up yet"
        assert not await stale.complete("s", "t1", RESULT)
        assert not await stale.receive("s", "t3", "pay", {})
        await stale.mark_posted("s", ["t1"])
        assert await stale.abandon("s") == 0
        assert stale.fenced == 4
        record = await fresh.get("s", "t1")
        assert record is not None
        assert record.state == "started"
        assert await fresh.complete("s", "t1", RESULT), "the new holder answers (in doubt, in the runtime)"
        assert fresh.fenced == 1


async def test_local_view_expires_before_the_lease(make: Callable[..., SessionLeases]) -> None:
    """`token()` stops answering `margin` before the lease could end, measured from before the claim was sent."""
    now = [100.0]
    async with make(ttl=10.0, margin=2.0, clock=lambda: now[0]) as leases:
        await leases.offer(["s"])
        (lease,) = await leases.claim()
        now[0] = 107.9
        assert leases.token("s") == lease.fence
        now[0] = 108.0
        assert leases.token("s") is None, "paused past the deadline: acts on nothing until a renewal"
        assert await leases.renew() == []
        assert leases.token("s") == lease.fence


async def test_excess_is_released_to_a_newcomer(make: Callable[..., SessionLeases]) -> None:
    """A process holding more than its share after another joins names the excess; released, the newcomer claims it."""
    async with make(owner_id="a") as a:
        await a.offer(f"s{i}" for i in range(10))
        assert len(await a.claim()) == 10
        async with make(owner_id="b") as b:
            excess = await a.excess(slack=0)
            assert len(excess) == 5
            await a.release(excess)
            assert sorted(lease.session_id for lease in await b.claim()) == sorted(excess)
            assert await a.excess(slack=0) == []
            assert a.stats().released_total == 5


async def test_finished_sessions_are_never_claimed_again(fleet: list[SessionLeases]) -> None:
    """A session marked finished leaves the pool, and its holder's lease with it."""
    await fleet[0].offer(["s", "t"])
    await fleet[0].claim(balanced=False)
    await fleet[0].finish(["s"])
    assert "s" not in fleet[0].held
    await fleet[0].release(["t"])
    assert [lease.session_id for lease in await fleet[1].claim(balanced=False)] == ["t"]


async def test_a_dead_process_is_not_counted_in_the_share(
    fleet: list[SessionLeases], pg_cluster: PgServer, db: str
) -> None:
    """Once a process's heartbeat is stale its sessions are split between the live ones."""
    await fleet[0].offer(f"s{i}" for i in range(12))
    for member in fleet:
        assert len(await member.claim()) == 4
    age(pg_cluster, db, fleet[2].owner_id)
    assert await fleet[2].live_processes() == 2
    assert len(await fleet[0].claim()) == 2
    assert len(await fleet[1].claim()) == 2


async def test_run_claims_at_start_and_when_woken(make: Callable[..., SessionLeases]) -> None:
    """`run()` claims before reporting started, and claims newly offered sessions as soon as it is woken."""
    claimed: list[str] = []
    more = anyio.Event()

    def on_claimed(leases: list[Lease]) -> None:
        claimed.extend(lease.session_id for lease in leases)
        if len(claimed) == 3:
            more.set()

    async with make(renew_every=3600.0) as leases:
        await leases.offer(["a", "b"])
        async with anyio.create_task_group() as tg:
            await tg.start(leases.run, on_claimed, lambda lost: None)
            assert claimed == ["a", "b"]
            await leases.offer(["c"])
            with anyio.fail_after(10):
                await more.wait()
            tg.cancel_scope.cancel()
    assert claimed == ["a", "b", "c"]


async def test_close_releases_and_a_crash_does_not(make: Callable[..., SessionLeases]) -> None:
    """A clean close gives every session back at once; a process that dies leaves them held until they expire."""
    async with make(owner_id="clean") as clean, make(owner_id="other") as other:
        await clean.offer(["a", "b"])
        await clean.claim(balanced=False)
        crashed = make(owner_id="crashed")
        await crashed.open()
        await clean.release(["b"])
        assert await crashed.claim(balanced=False)
        await crashed.close(release=False)
        await clean.close()
        assert [lease.session_id for lease in await other.claim(balanced=False)] == ["a"]


async def test_newer_schema_is_refused(make: Callable[..., SessionLeases], pg_cluster: PgServer, db: str) -> None:
    """Tables written by a newer tool-bridge are refused at open, with what to do in the message."""
    async with make():
        pass
    pg_cluster.scalar("UPDATE bridge_schema SET version = 99", dbname=db)
    with pytest.raises(JournalSchemaError, match="newer tool-bridge"):
        await make().open()


async def test_a_failing_database_does_not_stop_the_heartbeat_and_expired_leases_are_given_up(
    pg_cluster: PgServer, db: str, make: Callable[..., SessionLeases]
) -> None:
    """A heartbeat that fails (the database errs) is retried, not raised; leases surely expired meanwhile are reported
    lost (nothing more is done for them); once the database answers again, claiming goes on."""
    now = [0.0]
    member = make(owner_id="p0", ttl=8.0, clock=lambda: now[0])
    await member.open()
    claimed: list[str] = []
    lost: list[str] = []
    changed = anyio.Event()

    def on_claimed(leases: list[Lease]) -> None:
        nonlocal changed
        claimed.extend(lease.session_id for lease in leases)
        changed.set()

    def on_lost(session_ids: list[str]) -> None:
        lost.extend(session_ids)
        changed.set()

    try:
        await member.offer(["s1", "s2"])
        async with anyio.create_task_group() as tg:
            await tg.start(member.run, on_claimed, on_lost)
            assert sorted(claimed) == ["s1", "s2"]
            pg_cluster.scalar("ALTER TABLE bridge_leases RENAME TO bridge_leases_away", dbname=db)
            now[0] += 100.0  # far past every lease's validity: the next heartbeat is due, and fails
            changed = anyio.Event()
            member.wake()  # the heartbeat runs now rather than in renew_every seconds
            with anyio.fail_after(10):
                await changed.wait()
            assert sorted(lost) == ["s1", "s2"]
            assert member.token("s1") is None
            assert not member.held
            pg_cluster.scalar("ALTER TABLE bridge_leases_away RENAME TO bridge_leases", dbname=db)
            changed = anyio.Event()
            await member.offer(["s3"])  # wakes the loop, which is still alive: it claims
            with anyio.fail_after(10):
                while "s3" not in claimed:
                    await changed.wait()
                    changed = anyio.Event()
            tg.cancel_scope.cancel()
    finally:
        await member.close()
