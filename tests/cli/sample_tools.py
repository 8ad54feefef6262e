"""Tools the CLI's end-to-end tests serve (loaded by TARGET, as a user's module would be)."""

from __future__ import annotations

import anyio

from bridge import Toolset, tool


@tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first addend.
        b: The second addend.
    """
    return a + b


@tool(timeout=30)
async def slow(seconds: float, marker: str) -> str:
    """Wait, after creating a marker file so a test can see the call has started.

    Args:
        seconds: How long to wait.
        marker: Path of the file to create when the call starts.
    """
    await anyio.Path(marker).touch()
    await anyio.sleep(seconds)
    return f"slept {seconds}"


toolset = Toolset([add, slow])
only_add = Toolset([add])
