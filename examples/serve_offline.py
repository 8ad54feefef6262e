"""The README's quickstart, served for real: the Bridge answers an agent's tool calls over HTTP.

The agent is the emulator's scripted agent (`bridge.testing`), so this runs with no API key and no network; point
`AsyncAnthropic()` at the real API instead and nothing else changes.

Run: python examples/serve_offline.py
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import anyio

from bridge import Bridge, Toolset, tool
from bridge.testing import AgentTurn, Emulator
from toolkits.database import make_sample_db, sqlite_toolset


@tool(timeout=10, max_concurrency=4)
async def refund(order_id: int, amount_cents: int) -> dict[str, int]:
    """Refund part of an order.

    Args:
        order_id: The order to refund.
        amount_cents: How much to refund, in cents.
    """
    return {"order_id": order_id, "refunded": amount_cents}


async def agent(turn: AgentTurn) -> None:
    """What the agent does on the user's message: find the late orders, refund them in parallel, report."""
    found = await turn.call_tool(
        "db_query",
        {"sql": "SELECT id FROM orders WHERE status = 'pending' ORDER BY id LIMIT 3", "format": "json"},
    )
    data = found.text.split(">\n", 1)[1].rsplit("\n</untrusted-data", 1)[0]  # rows sit inside a data boundary
    rows = json.loads(data)["rows"]
    refunds = await turn.call_tools([("refund", {"order_id": row[0], "amount_cents": 500}) for row in rows])
    await turn.say(f"Refunded {sum(not r.is_error for r in refunds)} late orders: {[row[0] for row in rows]}.")


async def main() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        tools = Toolset.merge(Toolset([refund]), sqlite_toolset(make_sample_db(Path(tmp) / "shop.db")))
        async with Emulator(script=agent) as api:
            client = api.client()  # AsyncAnthropic(base_url=api.base_url, ...)
            created = await client.beta.agents.create(name="shop", model="claude-opus-5", tools=tools.definitions())
            env = await client.beta.environments.create(name="local")
            session = await client.beta.sessions.create(agent=created.id, environment_id=env.id)

            async with Bridge(client, [tools]) as bridge:
                reply = await bridge.ask(session.id, "Refund the late orders from last week.")
            api.control.invariants().assert_ok()
    print(reply)
    return reply


if __name__ == "__main__":
    anyio.run(main)
