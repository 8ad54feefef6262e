"""Any MCP server, mounted as custom tools that run beside your data.

```python
from toolkits.mcp import mcp_toolset

time = mcp_toolset("uvx mcp-server-time")                                   # stdio: spawned and supervised
docs = mcp_toolset(url="https://mcp.example.com/mcp", headers={"Authorization": f"Bearer {token}"})
```

Each server's tools join the toolset when it is opened (`async with toolset`, which the bridge does), under the
server's name as prefix (`time_get_current_time`), with Claude-ready schemas built by the same rules as `@tool`'s.
Calls get a timeout that sends `notifications/cancelled`, progress keeps them alive, a crashed server is restarted
with backoff, and results become custom-tool content (see `_results.py`). With `pins=` every definition is checked
against a lock file, so a server that changes a tool after it was approved (a "rug pull") gets that tool refused.

Needs the `mcp` extra (`pip install 'tool-bridge[mcp]'`): the official MCP Python SDK, 2.x, which speaks both the
2025 handshake protocol (2024-11-05 ... 2025-11-25) and the 2026-07-28 protocol.
"""

from __future__ import annotations

try:
    import mcp as _mcp  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("toolkits.mcp needs the MCP SDK: pip install 'tool-bridge[mcp]'") from exc

from ._pins import PinCheck, PinFile, definition_hash
from ._server import McpServer
from ._spec import McpServerSpec, parse_mcp_servers
from ._toolset import mcp_toolset

__all__ = [
    "McpServer",
    "McpServerSpec",
    "PinCheck",
    "PinFile",
    "definition_hash",
    "mcp_toolset",
    "parse_mcp_servers",
]
