"""The MCP server tests drive real servers with the official `mcp` client; HTTP needs uvicorn, hence asyncio only."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """asyncio: the HTTP transport runs on uvicorn, and one backend keeps the subprocess tests few."""
    return "asyncio"
