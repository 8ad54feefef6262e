"""Session leases with fencing tokens: which bridge of a fleet serves which session, in PostgreSQL.

A fleet is N bridge processes on one database. Each session that should be served has a row in `bridge_leases`; a
process serves a session only while it holds that row's lease, which it renews (heartbeat) every `ttl / 4`. A lease
that was not renewed for `ttl` seconds of database time may be taken over by any process, so a dead holder's sessions
are served again within `ttl`. Every claim stamps the row with a new fencing token from one global sequence, so tokens
only ever grow: whoever holds the highest token for a session is its owner, and any write made with a lower one is
stale. The journal checks the token in the same statement as each write (see `_postgres.py`), so the database itself
refuses a stale holder; posting is checked locally (`token()`), because the API knows nothing of our tokens.

Claiming is the job-queue fetch (procrastinate, River): `SELECT ... FOR UPDATE SKIP LOCKED` picks unheld rows that no
concurrent claimer is looking at, so processes claiming at once never wait on one another and never claim the same
session twice. Claims are balanced: a process takes at most its fair share, `ceil(active sessions / live
processes)`, counting as live every process whose heartbeat is younger than `ttl`; `excess()` names what a process
holds beyond its share (after a new process joined) so it can drain and `release()` those.

Hand-over is immediate, not after `ttl`: `release()` and `step_down()` (a member leaving: deregistered first, so the
others' fair share counts it out, then everything released) send a `NOTIFY bridge_leases`, and every member's
`watch()` (a `LISTEN` on its own connection) wakes its claim loop at once.

The local view is conservative. `token()` answers only until `sent + ttl - margin`, where `sent` is this process's
monotonic clock *before* the claim or renewal that granted the lease was sent: the database's `expires_at` is later
than that by at least the round trip, and the margin covers clock-rate drift and a post already on the wire. A
process that was paused (SIGSTOP, a long GC, a VM migration) finds on waking that its monotonic clock has moved past
the deadline, so it posts nothing until a renewal succeeds, and renewal fails if anyone took the session meanwhile.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskStatus

from ._pg import Database, describe_dsn

if TYPE_CHECKING:
    import psycopg

__all__ = ["Lease", "LeaseStats", "SessionLeases"]

_log = logging.getLogger("bridge.leases")

_TTL = "%(ttl)s * interval '1 second'"
_LIVE = f"SELECT greatest(count(*), 1) AS n FROM bridge_processes WHERE heartbeat_at > clock_timestamp() - {_TTL}"
_FAIR = (
    f"SELECT ceil(count(*)::float8 / (SELECT n FROM ({_LIVE}) live))::int FROM bridge_leases WHERE status = 'active'"
)

_REGISTER = (
    "INSERT INTO bridge_processes (owner_id, host, pid) VALUES (%(me)s, %(host)s, %(pid)s) "
    "ON CONFLICT (owner_id) DO UPDATE SET heartbeat_at = clock_timestamp()"
)
_RENEW = (
    f"WITH beat AS ({_REGISTER} RETURNING 1) "
    f"UPDATE bridge_leases l SET expires_at = clock_timestamp() + {_TTL} "
    "FROM unnest(%(sessions)s::text[], %(fences)s::bigint[]) AS h (session_id, fence) "
    "WHERE l.session_id = h.session_id AND l.fence = h.fence AND l.owner_id = %(me)s AND l.status = 'active' "
    "RETURNING l.session_id"
)
_CLAIM = (
    f"WITH want AS (SELECT greatest(0, least(%(limit)s, CASE WHEN %(balanced)s THEN ({_FAIR}) - %(mine)s "
    "ELSE %(limit)s END)) AS n), "
    "picked AS (SELECT session_id FROM bridge_leases WHERE status = 'active' "
    "AND (owner_id IS NULL OR expires_at <= clock_timestamp()) "
    "ORDER BY offered_at, session_id LIMIT (SELECT n FROM want) FOR UPDATE SKIP LOCKED) "
    "UPDATE bridge_leases l SET owner_id = %(me)s, fence = nextval('bridge_fence_seq'), "
    f"expires_at = clock_timestamp() + {_TTL}, claimed_at = clock_timestamp() "
    "FROM picked WHERE l.session_id = picked.session_id RETURNING l.session_id, l.fence"
)
_OFFER = (
    "INSERT INTO bridge_leases (session_id) SELECT unnest(%(sessions)s::text[]) "
    "ON CONFLICT (session_id) DO NOTHING RETURNING session_id"
)
_RELEASE = (
    "UPDATE bridge_leases l SET owner_id = NULL, expires_at = NULL "
    "FROM unnest(%(sessions)s::text[], %(fences)s::bigint[]) AS h (session_id, fence) "
    "WHERE l.session_id = h.session_id AND l.fence = h.fence AND l.owner_id = %(me)s"
)
_NOTIFY = "SELECT pg_notify('bridge_leases', %(me)s)"
_DEREGISTER = "DELETE FROM bridge_processes WHERE owner_id = %(me)s"
_FINISH = (
    "UPDATE bridge_leases SET status = 'done', owner_id = NULL, expires_at = NULL WHERE session_id = ANY(%(sessions)s)"
)
_CHECK = (
    "SELECT 1 FROM bridge_leases WHERE session_id = %(s)s AND owner_id = %(me)s AND fence = %(fence)s "
    "AND status = 'active' AND expires_at > clock_timestamp()"
)


@dataclass(frozen=True)
class Lease:
    """A session this process now serves, and the fencing token it serves it under."""

    session_id: str
    fence: int


@dataclass(frozen=True)
class LeaseStats:
    """What this process holds and has done, for `stats()` and metrics."""

    held: int
    claimed_total: int
    lost_total: int
    released_total: int
    renewals_total: int


class SessionLeases:
    """This process's leases on sessions, in the fleet's PostgreSQL database.

    ```python
    async with SessionLeases(dsn, ttl=15) as leases:
        await leases.offer(["sesn_1", "sesn_2"])             # sessions the fleet should serve (any process may offer)
        for lease in await leases.claim():                     # this process's fair share of the unheld ones
            ...                                                # serve lease.session_id
        lost = await leases.renew()                            # the heartbeat (or run `leases.run` in a task group)
    ```

    Args:
        dsn: A libpq connection string or `postgresql://` URL.
        owner_id: This process's identity (default: a new uuid per start, so a restart never inherits a lease).
        ttl: Seconds a lease lasts without renewal; a dead holder's sessions are taken over after this long.
        margin: Seconds before the lease's end at which this process stops trusting it (default `ttl / 3`): how late
            a post checked against the lease may still reach the API, so keep it above the worst stall you expect.
        renew_every: Seconds between heartbeats in `run()` (default `ttl / 4`).
        pool_size: Connections at most.
        database: Share a pool with a `PostgresJournal` (both reference-count it).
    """

    def __init__(
        self,
        dsn: str,
        *,
        owner_id: str | None = None,
        ttl: float = 15.0,
        margin: float | None = None,
        renew_every: float | None = None,
        pool_size: int = 8,
        database: Database | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl <= 0:
            raise ValueError(f"ttl must be positive, got {ttl!r}")
        self.dsn = dsn
        self.owner_id = owner_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self.ttl = ttl
        self.margin = ttl / 3 if margin is None else margin
        self.renew_every = ttl / 4 if renew_every is None else renew_every
        self.db = database or Database(dsn, max_size=pool_size)
        self._clock = clock
        self._held: dict[str, int] = {}  # session -> fence
        self._valid_until: dict[str, float] = {}  # session -> local monotonic deadline
        self._wake = anyio.Event()
        self._renewed = anyio.Event()  # set (and replaced) after every renewal: the verdict `sure()` waits for
        self.claiming = True  # False once the process leaves the fleet: the loop renews but claims nothing more
        self._open = False
        self._claimed = self._lost = self._released = self._renewals = 0

    def __repr__(self) -> str:
        return f"SessionLeases({describe_dsn(self.dsn)!r}, owner={self.owner_id!r}, held={len(self._held)})"

    async def __aenter__(self) -> SessionLeases:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        with anyio.CancelScope(shield=True):
            await self.close()

    async def open(self) -> None:
        """Connect (creating the tables if needed) and register this process as live."""
        if self._open:
            return
        await self.db.open()
        self._open = True
        await self._execute(_REGISTER, host=socket.gethostname(), pid=os.getpid())

    async def close(self, *, release: bool = True) -> None:
        """Release every lease (unless `release=False`, as a crash would leave them) and deregister."""
        if not self._open:
            return
        try:
            if release:
                await self.step_down()
        finally:
            self._open = False
            self._held.clear()
            self._valid_until.clear()
            self._renewed.set()  # nobody waits for a verdict that will not come
            await self.db.close()

    # -- the local view ----------------------------------------------------------------------------------------------

    def token(self, session_id: str) -> int | None:
        """The fencing token this process may act under for the session now, or None (not held, or not sure)."""
        fence = self._held.get(session_id)
        if fence is None or self._clock() >= self._valid_until.get(session_id, 0.0):
            return None
        return fence

    async def sure(self, session_id: str) -> bool:
        """Whether this process surely holds the session's lease now. Held but not sure (a renewal is late: the
        database is slow, or this process was paused), it waits for the next renewal's verdict rather than guess."""
        while True:
            if self.token(session_id) is not None:
                return True
            if session_id not in self._held or not self._open:
                return False
            await self._renewed.wait()

    @property
    def is_open(self) -> bool:
        return self._open

    @property
    def held(self) -> dict[str, int]:
        """Sessions this process believes it holds, with their tokens (check `token()` before acting)."""
        return dict(self._held)

    def stats(self) -> LeaseStats:
        return LeaseStats(len(self._held), self._claimed, self._lost, self._released, self._renewals)

    # -- the database ------------------------------------------------------------------------------------------------

    async def _execute(self, query: str, **params: Any) -> list[tuple[Any, ...]]:
        params = {"me": self.owner_id, "ttl": self.ttl, **params}

        def work(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
            cursor = conn.execute(query, params)
            return list(cursor.fetchall()) if cursor.description else []

        return await self.db.run(work)

    async def offer(self, session_ids: Iterable[str]) -> int:
        """Ask the fleet to serve these sessions (known ones are left as they are). Returns how many were new."""
        sessions = list(dict.fromkeys(session_ids))
        if not sessions:
            return 0
        added = await self._execute(_OFFER, sessions=sessions)
        if added:
            self._wake.set()
        return len(added)

    async def claim(self, limit: int | None = None, *, balanced: bool = True) -> list[Lease]:
        """Take unheld (or expired) sessions: up to this process's fair share when `balanced`, and at most `limit`."""
        sent = self._clock()
        rows = await self._execute(
            _CLAIM, limit=2**31 - 1 if limit is None else limit, balanced=balanced, mine=len(self._held)
        )
        leases = [Lease(str(session_id), int(fence)) for session_id, fence in rows]
        for lease in leases:
            self._held[lease.session_id] = lease.fence
            self._valid_until[lease.session_id] = sent + self.ttl - self.margin
        self._claimed += len(leases)
        return leases

    async def renew(self) -> list[str]:
        """Heartbeat: extend every held lease; returns the sessions lost (taken over or finished) since last time."""
        sent = self._clock()
        sessions = list(self._held)
        rows = await self._execute(
            _RENEW,
            sessions=sessions,
            fences=[self._held[s] for s in sessions],
            host=socket.gethostname(),
            pid=os.getpid(),
        )
        kept = {str(row[0]) for row in rows}
        self._renewals += 1
        lost = [s for s in sessions if s not in kept]
        for session_id in sessions:
            if session_id in kept:
                self._valid_until[session_id] = sent + self.ttl - self.margin
        for session_id in lost:
            self._forget(session_id)
        self._renewed.set()
        self._renewed = anyio.Event()
        if lost:
            self._lost += len(lost)
            _log.warning("lost the lease on %d session(s): %s", len(lost), ", ".join(lost[:5]))
        return lost

    def _expired(self) -> list[str]:
        """After a failed renewal: the held sessions whose lease has surely expired in the database by now (another
        member may hold them), forgotten here so nothing more is done for them; wakes anyone waiting on a renewal."""
        now = self._clock()
        lost = [s for s in self._held if now >= self._valid_until.get(s, 0.0) + self.margin]
        for session_id in lost:
            self._forget(session_id)
        if lost:
            self._lost += len(lost)
        self._renewed.set()
        self._renewed = anyio.Event()
        return lost

    def _forget(self, session_id: str) -> None:
        self._held.pop(session_id, None)
        self._valid_until.pop(session_id, None)

    async def release(self, session_ids: Iterable[str]) -> None:
        """Give sessions back to the fleet now (stop serving them first): another process may claim them at once."""
        sessions = [s for s in session_ids if s in self._held]
        if not sessions:
            return
        fences = [self._held[s] for s in sessions]
        for session_id in sessions:
            self._forget(session_id)
        await self._execute(_RELEASE, sessions=sessions, fences=fences)
        self._released += len(sessions)
        await self._execute(_NOTIFY)  # the others claim them now, not at their next heartbeat

    async def step_down(self) -> None:
        """Leave the fleet gracefully (stop serving first): deregister, so the others' fair share no longer counts
        this process, then release every lease; the others are notified and take the sessions over at once."""
        if not self._open:
            return
        self.claiming = False
        await self._execute(_DEREGISTER)
        await self.release(list(self._held))

    async def watch(self, *, poll: float = 1.0) -> None:
        """Wake the claim loop (`run`) whenever a member releases sessions (`LISTEN bridge_leases`), until cancelled.

        Runs on its own connection, in a worker thread that waits at most `poll` seconds at a time.
        """
        while True:
            try:
                await self._listen(poll)
            except Exception as exc:  # the connection broke: the heartbeat still claims on its own schedule
                _log.warning("lease notifications lost (%s: %s); reconnecting", type(exc).__name__, exc)
                await anyio.sleep(self.renew_every)

    async def _listen(self, poll: float) -> None:
        import psycopg

        conn = await anyio.to_thread.run_sync(lambda: psycopg.connect(self.dsn, autocommit=True, connect_timeout=10))
        try:
            await anyio.to_thread.run_sync(conn.execute, "LISTEN bridge_leases")

            def wait() -> bool:
                return any(note.payload != self.owner_id for note in conn.notifies(timeout=poll, stop_after=1))

            while True:
                if await anyio.to_thread.run_sync(wait, abandon_on_cancel=True):
                    self._wake.set()
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(conn.close)

    async def finish(self, session_ids: Iterable[str]) -> None:
        """The sessions ended (terminated or deleted): nobody serves them again."""
        sessions = list(session_ids)
        if sessions:
            for session_id in sessions:
                self._forget(session_id)
            await self._execute(_FINISH, sessions=sessions)

    async def check(self, session_id: str, fence: int) -> bool:
        """Ask the database whether this process holds the session's lease under `fence` right now."""
        return bool(await self._execute(_CHECK, s=session_id, fence=fence))

    async def excess(self, slack: int = 1) -> list[str]:
        """Held sessions beyond this process's fair share plus `slack` (release them, once drained, to rebalance)."""
        rows = await self._execute(f"SELECT ({_FAIR})")
        fair = int(rows[0][0] or 0)
        over = len(self._held) - fair - slack
        return list(self._held)[-over:] if over > 0 else []

    async def live_processes(self) -> int:
        """Processes whose heartbeat is younger than `ttl` (at least 1)."""
        rows = await self._execute(_LIVE)
        return int(rows[0][0])

    # -- the loop ----------------------------------------------------------------------------------------------------

    def wake(self) -> None:
        """Run the next heartbeat and claim now rather than at the next period (new sessions were offered)."""
        self._wake.set()

    async def run(
        self,
        on_claimed: Callable[[list[Lease]], None],
        on_lost: Callable[[list[str]], None],
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Heartbeat and claim every `renew_every` seconds (or at once after `wake()`), until cancelled.

        `on_lost` is called with sessions whose lease was lost (stop serving them: their writes are refused
        anyway); `on_claimed` with newly claimed ones (start serving them). The first claim happens before
        `task_status.started()`, so a caller knows its initial share once this task has started.
        """
        claimed = await self.claim()
        if claimed:
            on_claimed(claimed)
        task_status.started()
        due = self._clock() + self.renew_every
        while True:
            with anyio.move_on_after(max(0.0, due - self._clock())):
                await self._wake.wait()
            self._wake = anyio.Event()
            try:
                if self._clock() >= due:  # a wake-up only claims: renewing every lease on each offer would contend
                    due = self._clock() + self.renew_every  # with the journal's writes on the same rows for nothing
                    lost = await self.renew()
                    if lost:
                        on_lost(lost)
                claimed = await self.claim() if self.claiming else []
            except Exception as exc:  # the database is unreachable or failing: keep trying, let the leases expire
                lost = self._expired()
                _log.warning(
                    "lease heartbeat failed (%s: %s); retrying in %.1f s%s",
                    type(exc).__name__,
                    exc,
                    self.renew_every,
                    f"; gave up {len(lost)} session(s) whose lease has expired" if lost else "",
                )
                if lost:
                    on_lost(lost)
                due = self._clock() + self.renew_every
                continue
            if claimed:
                on_claimed(claimed)
