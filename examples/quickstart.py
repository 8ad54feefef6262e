"""Quickstart: define a tool, print the definition the agent will see, and call it the way the bridge will.

Run: python examples/quickstart.py
"""

from __future__ import annotations

import json
from typing import Literal

import anyio
from pydantic import BaseModel

from bridge import ToolContext, ToolError, Toolset, tool


class Refund(BaseModel):
    order_id: str
    amount_cents: int
    status: Literal["pending", "done"]


@tool(timeout=10, max_concurrency=4)
async def refund(order_id: str, amount_cents: int, ctx: ToolContext, reason: str = "customer request") -> Refund:
    """Refund part of an order.

    Args:
        order_id: The order to refund, like "A-1001".
        amount_cents: How much to refund, in cents.
        reason: Why, in a few words.
    """
    if not order_id.startswith("A-"):
        raise ToolError(f"order {order_id} does not exist")
    ctx.log.info("refunding %s (idempotency key %s)", order_id, ctx.idempotency_key)
    return Refund(order_id=order_id, amount_cents=amount_cents, status="pending")


async def main() -> None:
    toolset = Toolset([refund])
    print(json.dumps(toolset.definitions(), indent=2))
    for call in ({"order_id": "A-1001", "amount_cents": "1500"}, {"order_id": "B-7", "amount_cents": 1}, {"order": 1}):
        result = await toolset.call("refund", call)
        print(("error: " if result.is_error else "ok: ") + result.text)


if __name__ == "__main__":
    anyio.run(main)
