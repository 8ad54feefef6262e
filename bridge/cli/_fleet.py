"""`bridge run` as a member of a fleet, and its webhook and rate-limit options.

With `--journal postgresql://...` the daemon is one member of a fleet (a fleet of one is fine): it hands its
`SessionLeases` to the `Bridge`, which serves only the sessions it claims (`bridge/runtime/_fleet.py`: balanced,
heartbeated, taken over within `--lease-ttl` when a member dies, handed over at once on SIGTERM and at idle points to
rebalance). Every session it is told about (`--session`, the sessions of `--agent`, webhooks) is *offered* to the
fleet. Journal writes are fenced by the leases in the database, and result posts both in the runtime and at the
socket (`fleet_http_client`), so a member that lost a session (paused, partitioned) changes and posts nothing for it.

`--webhook-port` starts a `WebhookReceiver` (key from `ANTHROPIC_WEBHOOK_SIGNING_KEY`, as the SDK reads it): a
`session.requires_action` offers the session to the fleet, or, without a fleet, attaches it.
Sessions nobody wakes hold no stream. `--rate-limit` puts every API request through a budget: shared by the fleet
in PostgreSQL, or this process's own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.abc import TaskStatus

from .._errors import ConfigError
from ..fleet import Budget, LocalBudget, PostgresBudget, WebhookEvent, WebhookReceiver
from ..journal import Database

__all__ = ["FleetPlan", "is_postgres_url", "make_budget", "serve_webhooks"]

log = logging.getLogger("bridge.fleet")

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
