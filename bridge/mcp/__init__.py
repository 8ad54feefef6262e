"""Serve a `Toolset` as an MCP server (stdio or streamable HTTP), for Claude Code, Claude Desktop and any MCP client.

The same definitions, validation, output budget, crash masking, deadlines and concurrency limits as for agents: see
`MCPServer`. Needs the `mcp` extra (`pip install 'tool-bridge[mcp]'`); importing this package does not import `mcp`,
serving does.
"""

from ._http import OriginAndTokenGuard, is_loopback
from ._sdk import MCP_EXTRA, require_mcp
from ._server import MCPServer

__all__ = ["MCP_EXTRA", "MCPServer", "OriginAndTokenGuard", "is_loopback", "require_mcp"]
