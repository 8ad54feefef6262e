"""The scripted agent `bridge demo` runs: a realistic turn that exercises what the bridge is for.

On each user message the agent (1) queries a SQLite tool with input that fails validation, reads the error and
retries with corrected input, then (2) calls a slow tool in parallel with fast ones in one `requires_action` idle,
and (3) answers with what it learned. Tool names and inputs are parameters, so the demo's toolkit can name its tools
as it likes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._script import AgentTurn, Script

__all__ = ["demo_script"]

Json = dict[str, Any]


def demo_script(
    *,
    query_tool: str = "sql_query",
    query_input: Json | None = None,
    bad_query_input: Json | None = None,
    slow_tool: str = "slow_report",
    slow_input: Json | None = None,
    fast_calls: Sequence[tuple[str, Json]] = (("get_time", {}), ("get_weather", {"city": "Paris"})),
) -> Script:
    """Build the demo's script.

    Args:
        query_tool: Name of the SQLite query tool.
        query_input: Its valid input (default `{"sql": "SELECT name FROM sqlite_master WHERE type = 'table'"}`).
        bad_query_input: Input that must fail validation first (default `{"sql": 42}`, a wrong type).
        slow_tool: Name of the slow tool, called in parallel with `fast_calls`.
        slow_input: Its input (default `{}`).
        fast_calls: `(name, input)` pairs called alongside the slow tool.

    Returns:
        A script for `Emulator(script=...)`.
    """
    good = query_input or {"sql": "SELECT name FROM sqlite_master WHERE type = 'table'"}
    bad = bad_query_input or {"sql": 42}

    async def script(agent: AgentTurn) -> None:
        first = await agent.call_tool(query_tool, bad)
        lines = []
        if first.is_error:
            lines.append(
                f"{query_tool} rejected my first input ({first.text.splitlines()[0] if first.text else 'error'})."
            )
        query = await agent.call_tool(query_tool, good)
        lines.append(f"{query_tool}: {'error: ' if query.is_error else ''}{query.text}")
        results = await agent.call_tools([(slow_tool, slow_input or {}), *fast_calls])
        for result in results:
            lines.append(f"{result.name}: {'error: ' if result.is_error else ''}{result.text}")
        await agent.say("\n".join(lines))

    return script
