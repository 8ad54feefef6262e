"""The same tools for Claude Code and Claude Desktop: a toolset served as an MCP server.

`toolset()` below is what `bridge mcp serve examples/mcp_server.py:toolset` serves (stdio, as MCP hosts launch it), and
what an agent would get from `Bridge(client, [toolset])`. `main()` serves it over streamable HTTP on 127.0.0.1 and
calls it with the official `mcp` client, so the example checks itself.

Run: python examples/mcp_server.py          (needs `pip install 'tool-bridge[mcp]'`)
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import anyio
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from bridge import ToolContext, Toolset, tool
from bridge.mcp import MCPServer
from toolkits.database import make_sample_db, sqlite_toolset


@tool(timeout=10, read_only=True)
async def order_status(order_id: int, ctx: ToolContext) -> dict[str, object]:
    """Where an order is.

    Args:
        order_id: The order to look up.
    """
    ctx.progress("asking the warehouse", 0.5)
    return {"order_id": order_id, "status": "shipped"}


def toolset() -> Toolset:
    """The served tools: a factory, so the sample database is made when the server starts, not on import."""
    shop = make_sample_db(Path(tempfile.gettempdir()) / "tool-bridge-example-shop.db", orders=20)
    return Toolset([order_status, sqlite_toolset(shop)])


async def main() -> list[str]:
    """Serve `toolset` over HTTP, then list its tools and call two of them; returns what was printed."""
    lines: list[str] = []
    async with MCPServer(toolset(), name="shop") as server, anyio.create_task_group() as tg:
        port = await tg.start(functools.partial(server.serve_http, "127.0.0.1", 0))
        async with (
            streamable_http_client(f"http://127.0.0.1:{port}/mcp") as streams,
            ClientSession(streams[0], streams[1]) as session,
        ):
            await session.initialize()
            lines.append("tools: " + ", ".join(t.name for t in (await session.list_tools()).tools))
            status = await session.call_tool("order_status", {"order_id": 7})
            lines.append("order_status: " + status.content[0].text)
            write = await session.call_tool("db_query", {"sql": "DROP TABLE orders"})
            lines.append("db_query: " + write.content[0].text.splitlines()[0])
        tg.cancel_scope.cancel()
    print("\n".join(lines))
    return lines


if __name__ == "__main__":
    anyio.run(main)
