"""Tools the fleet's end-to-end tests serve from real `bridge run` processes.

`pay` is not idempotent and records every execution in an oracle ledger outside the bridge (a PostgreSQL table named
by FLEET_LEDGER_DSN), then NOTIFYs `effects` with the executing process's pid, so a test can wait for "process X is
running a call now" without polling, and afterwards count executions per call.
"""

from __future__ import annotations

import os
import time
from typing import Any

from bridge import ToolContext, Toolset, tool

_pool: Any = None


def _ledger() -> Any:
    global _pool
    if _pool is None:
        from psycopg_pool import ConnectionPool

        _pool = ConnectionPool(os.environ["FLEET_LEDGER_DSN"], min_size=1, max_size=4, kwargs={"autocommit": True})
    return _pool


@tool(timeout=30)
def pay(order: str, hold: float, ctx: ToolContext) -> str:
    """Charge an order once (not idempotent), then take `hold` seconds to confirm it.

    Args:
        order: The order to charge.
        hold: Seconds the payment provider takes after the charge.
    """
    with _ledger().connection() as conn:
        conn.execute(
            "INSERT INTO effects (tool_use_id, session_id, pid) VALUES (%s, %s, %s)",
            (ctx.tool_use_id, ctx.session_id, os.getpid()),
        )
        conn.execute("SELECT pg_notify('effects', %s)", (str(os.getpid()),))
    time.sleep(hold)
    return f"paid {order}"


toolset = Toolset([pay])
