"""Tools the CLI's end-to-end tests serve (loaded by TARGET, as a user's module would be)."""

from __future__ import annotations

import time
from pathlib import Path

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


@tool(timeout=0.2)
def stuck(marker: str) -> str:
    """Block this thread until MARKER's file is deleted (a sync tool that outlives its deadline).

    Args:
        marker: Path of a file created when the call starts; the tool returns once it is removed.
    """
    path = Path(marker)
    path.touch()
    while path.exists():
        time.sleep(0.05)
    return "unstuck"


with_stuck = Toolset([add, stuck])
