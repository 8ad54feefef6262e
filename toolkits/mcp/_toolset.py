"""`mcp_toolset`: an MCP server's tools as a `bridge.Toolset`."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from types import EllipsisType

from bridge import Toolset

from ._pins import PinFile
from ._server import McpServer, Protocol
from ._spec import McpServerSpec

__all__ = ["mcp_toolset"]


def mcp_toolset(
    command: str | Sequence[str] | McpServerSpec | None = None,
    *,
    url: str | None = None,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    headers: Mapping[str, str] | None = None,
    name: str | None = None,
    prefix: str | EllipsisType | None = ...,
    timeout: float = 60.0,
    trusted: bool = False,
    pins: str | os.PathLike[str] | PinFile | None = None,
    protocol: Protocol = "auto",
    startup_timeout: float = 30.0,
    output_budget: int | None = None,
    on_change: Callable[[list[str]], None] | None = None,
) -> Toolset:
    """Serve an MCP server's tools: a command to spawn (stdio) or a streamable-HTTP `url`.

    The tools are known once the toolset is open (the bridge opens it; `bridge tools` and `bridge sync` do too).

    Args:
        command: The server command (`"uvx mcp-server-time"` or `["uvx", "mcp-server-time"]`), or a `McpServerSpec`.
        url: The endpoint of a streamable-HTTP server, instead of a command.
        args: More arguments for `command`.
        env: Environment variables for the child process, added to the MCP SDK's minimal safe set (HOME, PATH...).
        cwd: The child process's working directory.
        headers: HTTP headers for every request to `url` (put secrets here, not in the URL).
        name: The server's label in logs, errors and pins; derived from the command or host by default.
        prefix: Prepended to each tool name; defaults to `name`; None or "" for the server's own names.
        timeout: Seconds a call may go without an answer or progress; then it is cancelled on the server.
        trusted: Believe the server's annotations (read-only, idempotent, destructive: idempotent tools may be re-run
            after a crash) and send its text unfenced; by default text results are marked as untrusted data.
        pins: A lock file (`bridge.mcp.lock`) to pin definitions against rug pulls; None serves what the server says.
        protocol: `auto` (2026-07-28, falling back to the 2025 handshake), `2025` or `2026`.
        startup_timeout: Seconds to start, negotiate and list the tools before the toolset fails to open.
        output_budget: Characters a result may carry (default: the bridge's); larger text is cut with a marker.
        on_change: Called with the tool names whenever a changed tool list was applied (between calls).

    Raises:
        ConfigError: Neither or both of `command` and `url`, or a bad URL.
    """
    if isinstance(command, McpServerSpec):
        spec = command
    else:
        spec = McpServerSpec.create(command, url=url, args=args, env=env, cwd=cwd, headers=headers, name=name)
    chosen = spec.name if isinstance(prefix, EllipsisType) else prefix
    pin_file = pins if isinstance(pins, PinFile) or pins is None else PinFile(pins)
    server = McpServer(
        spec,
        prefix=chosen or None,
        timeout=timeout,
        trusted=trusted,
        pins=pin_file,
        protocol=protocol,
        startup_timeout=startup_timeout,
        output_budget=output_budget,
        on_change=on_change,
    )
    return Toolset(name=f"mcp:{spec.name}", lifespan=server.running, source=server.tools)
