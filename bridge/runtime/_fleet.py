"""A bridge as a member of a fleet: the sessions it serves are the ones it holds leases on.

`Bridge(..., leases=SessionLeases(dsn))` makes the runtime itself a fleet member (`FleetMember`, `bridge.fleet`):
sessions are *offered* to the fleet's lease table (`bridge.fleet.offer`, `serve_agent`) and served only once this
process claims them; the claim loop (heartbeat, fair-share claims, a `LISTEN` for hand-overs) runs in the bridge's
task group, so it outlives the drain and posts stay allowed until the last result is out.

What each way of losing or giving up a session does:

- **Lease lost** (taken over while this process was paused or partitioned, or expired): `SessionRunner.fence`, at
  once: running calls cancelled, results neither journaled nor posted, the stream closed. A post the fence refused
  takes the same path (the runtime's check waits for the next renewal's verdict when the lease is held but not sure;
  the HTTP client's last check at the socket cannot wait), and the lease, if still held, is released so the fleet
  (this process included) claims the session again at once, with the journal's recovery rules.
- **Rebalancing**: every heartbeat period a member holding more than its fair share plus one hands the excess over
  at idle points (`SessionRunner.hand_over`: no call open; never mid-call) and releases it; the others are notified
  and claim it at once.
- **Graceful exit** (leaving `async with Bridge`, the daemon's SIGTERM): no more claims; the drain lets in-flight
  calls finish and post while the heartbeat keeps the leases; then this member deregisters and releases every lease
  (`SessionLeases.step_down`), and the others take the sessions over at once rather than after the TTL.
- **Session ended** (terminated, deleted): marked finished in the lease table, so nobody claims it again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

import anyio
from anyio.abc import TaskStatus

from .._errors import SessionNotFoundError
from ..journal import Lease, SessionLeases

if TYPE_CHECKING:
    from ._bridge import Bridge

__all__ = ["FleetMember"]

log = logging.getLogger("bridge.fleet")

_LIVE: list[Literal["rescheduling", "running", "idle", "terminated"]] = ["idle", "running", "rescheduling"]


class FleetMember:
    """Serves the sessions this process holds leases on (see the module docstring); `bridge.fleet`.

    Args:
        bridge: The bridge (it starts the member when it opens, and stops it when it closes).
        leases: This process's leases (the bridge opens them; whoever made them closes them).
        rebalance: Hand sessions over at idle points when this process holds more than its fair share.
    """

    def __init__(self, bridge: Bridge, leases: SessionLeases, *, rebalance: bool = True) -> None:
        self.bridge = bridge
        self.leases = leases
        self.rebalance = rebalance
        self.stopping = False
        self.finished = 0
        self._started = False

    def __repr__(self) -> str:
        return f"FleetMember({self.leases!r}, stopping={self.stopping})"

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Heartbeat, claim, listen for hand-overs and rebalance until cancelled (the bridge's task group)."""
        async with anyio.create_task_group() as tg:
            await tg.start(self.leases.run, self._claimed, self._lost)
            tg.start_soon(self.leases.watch)
            if self.rebalance:
                tg.start_soon(self._rebalance)
            self._started = True
            for session_id in self.leases.held:
                self._start_serving(session_id)
            task_status.started()

    def stop(self) -> None:
        """Claim and serve nothing new (the bridge is leaving the fleet); the heartbeat goes on through the drain."""
        self.stopping = True
        self.leases.claiming = False

    async def offer(self, session_ids: Iterable[str]) -> None:
        """Ask the fleet to serve these sessions; whichever member has room claims them (this one at once)."""
        if await self.leases.offer(session_ids):
            self.leases.wake()

    async def offer_agent_sessions(self, agent_id: str, poll_interval: float) -> None:
        """Offer every live session of the agent, polled every `poll_interval` seconds, until cancelled."""
        client = self.bridge.client
        while True:
            try:
                found = [s.id async for s in client.beta.sessions.list(agent_id=agent_id, statuses=_LIVE)]
                await self.offer(found)
            except Exception as exc:
                log.warning("listing the sessions of agent %s failed: %s", agent_id, exc)
            await anyio.sleep(poll_interval)

    async def step_down(self) -> None:
        """After the drain: leave the fleet, releasing every lease so the others take the sessions over now."""
        held = len(self.leases.held)
        with anyio.CancelScope(shield=True):
            try:
                await self.leases.step_down()
            except Exception as exc:  # the database is gone: the leases expire after their TTL instead
                log.warning("could not release %d lease(s) on leaving the fleet: %s", held, exc)
                return
        if held:
            log.info("released %d lease(s) on leaving the fleet: the other members take them over now", held)

    def stats(self) -> dict[str, Any]:
        leases = self.leases.stats()
        return {
            "held": leases.held,
            "claimed_total": leases.claimed_total,
            "lost_total": leases.lost_total,
            "released_total": leases.released_total,
            "finished_total": self.finished,
        }

    # -- the claim loop's callbacks ----------------------------------------------------------------------------------

    def _claimed(self, leases: list[Lease]) -> None:
        if not self._started:
            return  # `run` starts them from `leases.held` once the loop is up
        for lease in leases:
            self._start_serving(lease.session_id)

    def _start_serving(self, session_id: str) -> None:
        if self.stopping:
            return
        self.bridge._spawn(self._serve, session_id)

    def _lost(self, session_ids: list[str]) -> None:
        for session_id in session_ids:
            log.warning("lease on session %s lost: no longer serving it", session_id, extra={"session": session_id})
            self.bridge.fence(session_id, "lease lost: taken over or expired")

    async def _rebalance(self) -> None:
        while True:
            await anyio.sleep(self.leases.renew_every)
            if self.stopping:
                continue
            try:
                excess = await self.leases.excess()
            except Exception as exc:
                log.warning("could not read the fleet's fair share: %s", exc)
                continue
            for session_id in excess:
                if self.bridge._hand_over(session_id):
                    log.info("handing session %s over to rebalance the fleet", session_id)

    async def _serve(self, session_id: str) -> None:
        """Serve a claimed session; then finish, release or leave its lease, as the way serving ended says."""
        log.info("serving session %s (lease %s)", session_id, self.leases.held.get(session_id))
        error: BaseException | None = None
        runner = None
        try:
            runner = await self.bridge._serving(session_id)
            await runner.done.wait()
            error = runner.error
        except Exception as exc:
            error = exc
        if session_id not in self.leases.held:
            return  # the lease was lost (the runner was fenced), or the bridge released it already
        fenced = runner is not None and runner.fenced is not None
        if self.stopping and not fenced:
            return  # the drain: every lease is released together once it is over
        with anyio.CancelScope(shield=True):
            if fenced:
                log.warning(
                    "lease on session %s not sure after a fenced post: released it for the fleet to claim again",
                    session_id,
                    extra={"session": session_id},
                )
                await self.leases.release([session_id])
            elif error is None and runner is not None and runner.table.ended is not None:
                self.finished += 1
                await self.leases.finish([session_id])
            elif isinstance(error, SessionNotFoundError):
                self.finished += 1  # deleted: ended as far as the fleet is concerned
                await self.leases.finish([session_id])
            else:
                if error is not None:
                    log.warning("serving session %s failed: %s; releasing it", session_id, error)
                await self.leases.release([session_id])  # handed over, detached or failed: any member claims it
