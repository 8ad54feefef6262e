"""The MCP pack's tests spawn real servers: asyncio by default (a smoke test also runs on trio)."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """asyncio: spawning a server per test is the cost, and the backend does not change it."""
    return "asyncio"
