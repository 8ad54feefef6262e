"""The benchmark's tools, written once for each side with the same names, inputs and outputs.

`sleep` stands for an I/O-bound tool (50 ms of awaiting, no CPU); `noop` is the trivial tool that makes the per-call
overhead the whole cost. Each exists async and sync: the SDK's `@beta_async_tool` / `@beta_tool` and our `@tool`.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import anyio

SLEEP_SECONDS = 0.05
ToolKind = Literal["async", "sync"]

TOOL_DEFINITIONS: list[dict[str, Any]] = [
    {
        "type": "custom",
        "name": name,
        "description": description,
        "input_schema": {
            "type": "object",
            "properties": {"i": {"type": "integer"}, "seconds": {"type": "number"}},
            "required": ["i"],
        },
    }
    for name, description in (("sleep", "Wait 50 ms, as an I/O-bound tool would."), ("noop", "Return at once."))
]


def sdk_tools(kind: ToolKind) -> list[Any]:
    """The SDK runner's tools: `@beta_async_tool` (kind `async`) or `@beta_tool` (kind `sync`)."""
    from anthropic.lib.tools import beta_async_tool, beta_tool

    if kind == "async":

        @beta_async_tool(name="sleep")
        async def sleep_async(i: int, seconds: float = SLEEP_SECONDS) -> str:
            """Wait 50 ms (or `seconds`), as an I/O-bound tool would."""
            await anyio.sleep(seconds)
            return "ok"

        @beta_async_tool(name="noop")
        async def noop_async(i: int) -> str:
            """Return at once."""
            return "ok"

        return [sleep_async, noop_async]

    @beta_tool(name="sleep")
    def sleep_sync(i: int, seconds: float = SLEEP_SECONDS) -> str:
        """Wait 50 ms (or `seconds`), as an I/O-bound tool would."""
        time.sleep(seconds)
        return "ok"

    @beta_tool(name="noop")
    def noop_sync(i: int) -> str:
        """Return at once."""
        return "ok"

    return [sleep_sync, noop_sync]


def bridge_tools(kind: ToolKind) -> list[Any]:
    """Our tools, the same two, as `@tool` functions (async or sync)."""
    from bridge import tool

    if kind == "async":

        @tool(name="sleep")
        async def sleep_async(i: int, seconds: float = SLEEP_SECONDS) -> str:
            """Wait 50 ms (or `seconds`), as an I/O-bound tool would.

            Args:
                i: The call's index.
                seconds: How long to wait.
            """
            await anyio.sleep(seconds)
            return "ok"

        @tool(name="noop")
        async def noop_async(i: int) -> str:
            """Return at once.

            Args:
                i: The call's index.
            """
            return "ok"

        return [sleep_async, noop_async]

    @tool(name="sleep")
    def sleep_sync(i: int, seconds: float = SLEEP_SECONDS) -> str:
        """Wait 50 ms (or `seconds`), as an I/O-bound tool would.

        Args:
            i: The call's index.
            seconds: How long to wait.
        """
        time.sleep(seconds)
        return "ok"

    @tool(name="noop")
    def noop_sync(i: int) -> str:
        """Return at once.

        Args:
            i: The call's index.
        """
        return "ok"

    return [sleep_sync, noop_sync]
