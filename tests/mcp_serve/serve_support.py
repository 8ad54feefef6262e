"""Connect the official `mcp` client to a served toolset: a `bridge mcp serve` subprocess (stdio) or an in-process
`MCPServer` on 127.0.0.1 with an ephemeral port (streamable HTTP). Works with either `mcp` generation (1.x, 2.x).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import serve_tools
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from bridge.mcp import MCPServer

ROOT = Path(__file__).resolve().parents[2]
TOOLS = f"{Path(serve_tools.__file__).resolve()}:toolset"


def bridge_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a `python -m bridge` subprocess: this worktree importable, no real API settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "BRIDGE_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


@asynccontextmanager
async def stdio_session(
    args: Sequence[str] = (TOOLS,), cwd: Path = ROOT, **client: Any
) -> AsyncIterator[ClientSession]:
    """A client session with `python -m bridge mcp serve ARGS` spawned as a subprocess; `client` goes to
    `ClientSession` (an `elicitation_callback`...)."""
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "bridge", "mcp", "serve", *args], env=bridge_env(), cwd=str(cwd)
    )
    async with stdio_client(params) as streams, ClientSession(streams[0], streams[1], **client) as session:
        await session.initialize()
        yield session


@asynccontextmanager
async def http_server(
    toolset: Any = None, *, server_options: dict[str, Any] | None = None, **options: Any
) -> AsyncIterator[tuple[str, MCPServer]]:
    """An in-process `MCPServer(toolset, **server_options)` over streamable HTTP on an ephemeral port (`options` go to
    `serve_http`); yields its `/mcp` URL and the server."""
    serve_tools.reset()
    served = toolset if toolset is not None else serve_tools.toolset
    async with MCPServer(served, **(server_options or {})) as server, anyio.create_task_group() as tg:
        port = await tg.start(functools.partial(server.serve_http, "127.0.0.1", 0, **options))
        yield f"http://127.0.0.1:{port}/mcp", server
        tg.cancel_scope.cancel()


@asynccontextmanager
async def http_session(url: str, headers: dict[str, str] | None = None, **client: Any) -> AsyncIterator[ClientSession]:
    """A client session over streamable HTTP (the SDK's own HTTP client, with extra headers); `client` goes to
    `ClientSession`."""
    async with (
        create_mcp_http_client(headers=headers) as http,
        streamable_http_client(url, http_client=http) as streams,
        ClientSession(streams[0], streams[1], **client) as session,
    ):
        await session.initialize()
        yield session


@asynccontextmanager
async def connect(transport: str) -> AsyncIterator[ClientSession]:
    """A session with the test tools over `transport` ("stdio" or "http")."""
    if transport == "stdio":
        async with stdio_session() as session:
            yield session
    else:
        async with http_server() as (url, _), http_session(url) as session:
            yield session


def texts(result: Any) -> list[str]:
    """The text of each text content item of a `CallToolResult`."""
    return [item.text for item in result.content if item.type == "text"]


def is_error(result: Any) -> bool:
    """`isError` of a `CallToolResult` under either SDK generation's field name."""
    return bool(getattr(result, "is_error", None) or getattr(result, "isError", None))
