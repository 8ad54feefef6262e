"""Command lines of the MCP servers the pack's tests spawn."""

from __future__ import annotations

import sys
from pathlib import Path

FAULT_SERVER = str(Path(__file__).with_name("fault_server.py"))


def fault_command(*extra: str) -> list[str]:
    """The fault server, built with the official `mcp` server package (run by this interpreter)."""
    return [sys.executable, FAULT_SERVER, *extra]


def time_command() -> list[str]:
    """The third-party time server from PyPI (`mcp-server-time`, in the dev extra), in UTC."""
    return [sys.executable, "-m", "mcp_server_time", "--local-timezone", "UTC"]
