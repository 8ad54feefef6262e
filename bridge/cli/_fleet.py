"""`bridge run` as a member of a fleet, and its webhook and rate-limit options.

With `--journal postgresql://...` the daemon is one member of a fleet (a fleet of one is fine): every session it is
told about (`--session`, the sessions of `--agent`, webhooks) is *offered* to the fleet's lease table, and it serves
only the sessions it claims there (`SessionLeases`: balanced, heartbeated, taken over within `--lease-ttl` when a
member dies). Its journal writes are fenced by those leases in the database, and its result posts at the socket
(`fleet_http_client`), so a member that lost a session (paused, partitioned) changes and posts nothing for it.

The wiring uses only the `Bridge`'s public surface: a claimed session is served with `bridge.serve`, a lost one is
detached; a session that ends while held is marked finished, so nobody claims it again. On shutdown the member stops
claiming, drains (still heartbeating, so its posts stay allowed), then releases what it held for the others.

`--webhook-port` starts a `WebhookReceiver` (key from `ANTHROPIC_WEBHOOK_SIGNING_KEY`, as the SDK reads it): a
`session.requires_action` offers the session to the fleet, or, without a fleet, attaches it.
Sessions nobody wakes hold no stream. `--rate-limit` puts every API request through a budget: shared by the fleet
in PostgreSQL, or this process's own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import anyio
from anyio.abc import TaskGroup, TaskStatus

from .._errors import ConfigError, SessionNotFoundError
from ..fleet import Budget, LocalBudget, PostgresBudget, WebhookEvent, WebhookReceiver
from ..journal import Database, Lease, SessionLeases

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

__all__ = ["FleetMember", "FleetPlan", "is_postgres_url", "make_budget", "serve_webhooks"]

log = logging.getLogger("bridge.fleet")

_LIVE: list[Literal["rescheduling", "running", "idle", "terminated"]] = ["idle", "running", "rescheduling"]
_ENDED = {"session.status_terminated", "session.deleted", "session.archived"}


def is_postgres_url(choice: str | None) -> bool:
    return bool(choice) and str(choice).startswith(("postgresql://", "postgres://"))


@dataclass(frozen=True)
class FleetPlan:
    """The fleet options of `bridge run`."""

    dsn: str | None = None
    lease_ttl: float = 15.0
    webhook_port: int | None = None
    webhook_host: str = "127.0.0.1"
    webhook_key: str | None = None
    rate_limit: float | None = None
    rate_burst: float | None = None


def make_budget(plan: FleetPlan, database: Database | None) -> Budget | None:
    """The request budget `--rate-limit` asks for: the fleet's (in PostgreSQL) or this process's."""
    if plan.rate_limit is None:
        return None
    if plan.dsn is not None:
        return PostgresBudget(plan.dsn, plan.rate_limit, plan.rate_burst, database=database)
    return LocalBudget(plan.rate_limit, plan.rate_burst)


class FleetMember:
    """Serves the sessions this process holds leases on (see the module docstring).

    Args:
        bridge: The running `Bridge`.
        leases: This process's leases (open).
        client: For listing `agent`'s sessions to offer.
        agent: Offer every live session of this agent, polled every `poll_interval` seconds.
    """

    def __init__(
        self,
        bridge: Any,
        leases: SessionLeases,
        client: AsyncAnthropic,
        *,
        agent: str | None = None,
        poll_interval: float = 5.0,
    ) -> None:
        self.bridge = bridge
        self.leases = leases
        self.client = client
        self.agent = agent
        self.poll_interval = poll_interval
        self.stopping = False
        self._tg: TaskGroup | None = None
        self.finished = 0

    async def heartbeat(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Renew and claim until cancelled (run it where it outlives the drain)."""
        await self.leases.run(self._claimed, self._lost, task_status=task_status)

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve claimed sessions (and offer the agent's) until cancelled."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            for session_id in self.leases.held:
                tg.start_soon(self._serve, session_id)
            if self.agent is not None:
                tg.start_soon(self._offer_agent_sessions, self.agent)
            task_status.started()
            await anyio.sleep_forever()

    def _claimed(self, leases: list[Lease]) -> None:
        if self._tg is None:
            return  # `serve` picks them up from `leases.held` when it starts
        for lease in leases:
            self._tg.start_soon(self._serve, lease.session_id)

    def _lost(self, session_ids: list[str]) -> None:
        for session_id in session_ids:
            log.warning("lease on session %s lost: no longer serving it", session_id, extra={"session": session_id})
            self.bridge.detach(session_id)

    async def _serve(self, session_id: str) -> None:
        """Serve a claimed session; when it ends, nobody need serve it again; when serving failed, let it go."""
        if self.stopping:
            return
        log.info("serving session %s (lease %s)", session_id, self.leases.held.get(session_id))
        ended = True
        try:
            await self.bridge.serve(session_id)
        except SessionNotFoundError:
            pass  # deleted: ended as far as the fleet is concerned
        except Exception as exc:
            ended = False
            log.warning("serving session %s failed: %s; releasing it", session_id, exc, extra={"session": session_id})
        if self.stopping or session_id not in self.leases.held:
            return  # shutting down (the drain), or the lease was lost (detached)
        with anyio.CancelScope(shield=True):
            if ended:
                self.finished += 1
                await self.leases.finish([session_id])
            else:
                await self.leases.release([session_id])  # any member (this one included) claims it again

    async def offer(self, session_ids: list[str]) -> None:
        if await self.leases.offer(session_ids):
            self.leases.wake()

    async def _offer_agent_sessions(self, agent_id: str) -> None:
        while True:
            try:
                found = [s.id async for s in self.client.beta.sessions.list(agent_id=agent_id, statuses=_LIVE)]
                await self.offer(found)
            except Exception as exc:
                log.warning("listing the sessions of agent %s failed: %s", agent_id, exc)
            await anyio.sleep(self.poll_interval)

    def stats(self) -> dict[str, Any]:
        leases = self.leases.stats()
        return {
            "held": leases.held,
            "claimed_total": leases.claimed_total,
            "lost_total": leases.lost_total,
            "released_total": leases.released_total,
            "finished_total": self.finished,
        }


async def serve_webhooks(
    plan: FleetPlan,
    on_wake: Callable[[str], Any],
    on_end: Callable[[str], Any] | None = None,
    *,
    task_status: TaskStatus[WebhookReceiver] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Run the webhook receiver until cancelled; `on_wake(session_id)` (sync or async) for each waking event."""
    if plan.webhook_key is None:
        raise ConfigError("--webhook-port needs the signing key in ANTHROPIC_WEBHOOK_SIGNING_KEY (whsec_...)")

    async def handle(event: WebhookEvent) -> None:
        if not event.is_session:
            return
        if event.wakes:
            outcome = on_wake(event.resource_id)
        elif event.kind in _ENDED and on_end is not None:
            outcome = on_end(event.resource_id)
        else:
            return
        if outcome is not None:
            await outcome

    receiver = WebhookReceiver(plan.webhook_key, handle, host=plan.webhook_host, port=plan.webhook_port or 0)

    async def announce(*, task_status: TaskStatus[int]) -> None:
        await receiver.serve(task_status=task_status)

    async with anyio.create_task_group() as tg:
        await tg.start(announce)
        log.info("receiving webhooks on http://%s:%d%s", plan.webhook_host, receiver.port, receiver.path)
        task_status.started(receiver)
