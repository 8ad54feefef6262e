"""Which sessions to serve: explicit ids (`Bridge.attach`) or every session of an agent, found by polling.

Following an agent lists its live sessions once (idle, running, rescheduling), then polls `sessions.list` for those
created since the newest one seen (`created_at[gte]`, ascending; the overlap is skipped by id). Terminated sessions
are never attached; a served session that terminates ends its own runner. Webhook-driven wake-up
(`session.requires_action`) is a later source behind this same seam.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import anyio
from anthropic import AsyncAnthropic

from ._retry import Attempts, Retry, retrying

__all__ = ["follow_agent"]

logger = logging.getLogger("bridge.sessions")

_LIVE = ["idle", "running", "rescheduling"]


async def follow_agent(
    client: AsyncAnthropic,
    agent_id: str,
    attach: Callable[[str], None],
    *,
    poll_interval: float,
    request_timeout: float,
) -> None:
    """Attach every live and future session of `agent_id`, until cancelled.

    Raises:
        APIAccessError: The key cannot read the agent or its sessions.
        SessionNotFoundError: The agent does not exist.
    """
    what = f"agent {agent_id}"

    async def check_agent() -> object:
        return await client.beta.agents.retrieve(agent_id, timeout=request_timeout)

    await retrying(check_agent, Attempts(Retry(attempts=3), what, f"reading {what}", logger))
    listing = Attempts(
        Retry(start=poll_interval, cap=max(poll_interval, 60.0)), f"the sessions of {what}", "listing sessions", logger
    )
    newest: datetime | None = None
    known: set[str] = set()
    while True:
        params: dict[str, Any] = {"agent_id": agent_id, "order": "asc", "limit": 100, "timeout": request_timeout}
        if newest is None:
            params["statuses"] = _LIVE
        else:
            params["created_at_gte"] = newest
        try:
            async for session in client.beta.sessions.list(**params):
                if newest is None or session.created_at > newest:
                    newest = session.created_at
                if session.id in known:
                    continue
                known.add(session.id)
                if session.status != "terminated":
                    attach(session.id)
        except Exception as exc:
            await listing.failed(exc)  # raises what is fatal; waits (backing off) before the next poll
            continue
        listing.reset()
        await anyio.sleep(poll_interval)
