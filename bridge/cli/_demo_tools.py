"""The demo's own tools: a shipping quote with strict input, a slow warehouse API, a fast exchange-rate table.

They stand in for a company's internal APIs next to the database pack. Everything is deterministic, so the demo can
check the agent's final answer exactly.
"""

from __future__ import annotations

from typing import Literal

import anyio

from .. import Toolset, tool

__all__ = ["RATES", "demo_toolset", "quote_cents", "restock"]

RATES = {"EUR": 0.92, "GBP": 0.79, "JPY": 151.3}
WAREHOUSE_LATENCY = 1.0


def quote_cents(order_id: int, speed: str) -> int:
    """The price the shipping tool quotes (also used by the demo to check the final answer)."""
    return (1899 if speed == "express" else 499) + (order_id % 7) * 25


def restock(product_id: int) -> dict[str, int]:
    """What the warehouse tool answers for a product."""
    return {"product_id": product_id, "available": 40 + product_id * 3, "restock_days": 2 + product_id % 3}


@tool(read_only=True, idempotent=True)
async def shipping_quote(order_id: int, speed: Literal["standard", "express"]) -> dict[str, int | str]:
    """Quote the price of shipping an existing order.

    Args:
        order_id: The numeric id of the order (e.g. 42), not a display reference like "#42".
        speed: How fast to ship it.
    """
    return {"order_id": order_id, "speed": speed, "price_cents": quote_cents(order_id, speed), "currency": "USD"}


@tool(read_only=True, idempotent=True, timeout=10)
async def check_warehouse(product_id: int) -> dict[str, int]:
    """Ask the warehouse system how many units it can ship this week, and when it restocks. It is slow (about 1 s).

    Args:
        product_id: The product's id in the shop database.
    """
    await anyio.sleep(WAREHOUSE_LATENCY)
    return restock(product_id)


@tool(read_only=True, idempotent=True)
def exchange_rate(currency: Literal["EUR", "GBP", "JPY"]) -> dict[str, float | str]:
    """Today's exchange rate from US dollars.

    Args:
        currency: The currency to convert US dollars into.
    """
    return {"from": "USD", "to": currency, "rate": RATES[currency]}


def demo_toolset() -> Toolset:
    """The demo's internal-API tools as one toolset."""
    return Toolset([shipping_quote, check_warehouse, exchange_rate], name="shop_api")
