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

from ._sdk import Failure, classify, describe, mapped, recoverable

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
    try:
        await client.beta.agents.retrieve(agent_id, timeout=request_timeout)
    except Exception as exc:
        if classify(exc) in (Failure.ACCESS, Failure.NOT_FOUND):
            raise mapped(exc, f"agent {agent_id}") from exc
        raise
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
            recoverable(exc, f"the sessions of agent {agent_id}")
            logger.warning("listing the sessions of agent %s failed: %s", agent_id, describe(exc))
        await anyio.sleep(poll_interval)
