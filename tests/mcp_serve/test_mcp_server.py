"""`bridge mcp serve` / `MCPServer`, driven by the official `mcp` client over stdio (a real `python -m bridge mcp serve`
subprocess) and streamable HTTP (an in-process server on an ephemeral port)."""

from __future__ import annotations

import base64
from typing import Any

import anyio
import anyio.lowlevel
import pytest
import serve_tools
from serve_support import connect, http_server, http_session, is_error, texts

pytestmark = pytest.mark.anyio

TRANSPORTS = pytest.mark.parametrize("transport", ["stdio", "http"])


def _get(obj: Any, snake: str, camel: str) -> Any:
    """A field under the 2.x (snake_case) or the 1.x (camelCase) attribute name."""
    return getattr(obj, snake, None) if hasattr(obj, snake) else getattr(obj, camel)


@TRANSPORTS
async def test_lists_the_agent_definitions(transport: str) -> None:
    """tools/list gives every tool's name, description and exactly the input schema agents get."""
    async with connect(transport) as session:
        listed = (await session.list_tools()).tools
    expected = {d["name"]: d for d in serve_tools.toolset.definitions()}
    assert [tool.name for tool in listed] == list(expected)
    for tool in listed:
        assert tool.description == expected[tool.name]["description"]
        assert _get(tool, "input_schema", "inputSchema") == expected[tool.name]["input_schema"]


@TRANSPORTS
async def test_each_result_kind(transport: str) -> None:
    """Text, JSON, an image and documents come back as MCP text, image and embedded-resource content."""
    async with connect(transport) as session:
        added = await session.call_tool("add", {"a": 2, "b": 3})
        order = await session.call_tool("order", {"order_id": "A-1"})
        picture = await session.call_tool("picture", {})
        report = await session.call_tool("report", {})
    assert texts(added) == ["5"]
    assert not is_error(added)
    assert texts(order) == ['{"order_id":"A-1","items":2,"paid":true}']
    [img] = picture.content
    assert img.type == "image"
    assert _get(img, "mime_type", "mimeType") == "image/png"
    assert base64.b64decode(img.data) == serve_tools.PNG
    caption, pdf, notes = report.content
    assert caption.type == "text"
    assert caption.text == "Two documents:"
    assert pdf.type == "resource"
    assert _get(pdf.resource, "mime_type", "mimeType") == "application/pdf"
    assert base64.b64decode(pdf.resource.blob) == serve_tools.PDF
    assert notes.type == "resource"
    assert notes.resource.text == "plain notes"


@TRANSPORTS
async def test_errors_reach_the_client_as_for_agents(transport: str) -> None:
    """Bad input names each field, a ToolError passes its text, a crash is masked with a ref id: all isError."""
    async with connect(transport) as session:
        bad = await session.call_tool("add", {"a": "x", "c": 1})
        refused = await session.call_tool("refuse", {"order_id": "B-7"})
        crashed = await session.call_tool("crash", {})
        unknown = await session.call_tool("nope", {})
    assert is_error(bad)
    assert is_error(refused)
    assert is_error(crashed)
    assert is_error(unknown)
    expected = await serve_tools.toolset.call("add", {"a": "x", "c": 1})
    assert texts(bad) == [expected.text]
    assert "- b: missing (required)" in texts(bad)[0]
    assert texts(refused) == ["order B-7 is already refunded"]
    [crash_text] = texts(crashed)
    assert crash_text.startswith("tool crash failed (ref ")
    assert "hunter2" not in crash_text
    assert texts(unknown)[0].startswith("unknown tool 'nope'; available tools: add, order")


@TRANSPORTS
async def test_deadline(transport: str) -> None:
    """A tool past its deadline is stopped and answered with an isError result naming the timeout."""
    async with connect(transport) as session:
        hung = await session.call_tool("hang", {})
    assert is_error(hung)
    assert texts(hung) == [
        "The tool 'hang' did not finish in time (timed out after 0.2 s) and was stopped. "
        "Any effect it already had is unknown."
    ]


@TRANSPORTS
async def test_progress_notifications(transport: str) -> None:
    """ctx.progress(...) from an async tool and from a sync tool's thread arrives as MCP progress notifications."""
    received: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        received.append((progress, total, message))

    async with connect(transport) as session:
        done = await session.call_tool("steps", {}, progress_callback=on_progress)
        threaded = await session.call_tool("sync_steps", {}, progress_callback=on_progress)
    assert texts(done) == ["done"]
    assert texts(threaded) == ["done in a thread"]
    assert received == [(0.5, 1.0, "reading"), (1.0, 1.0, "writing"), (0.5, 1.0, "thread halfway")]


@TRANSPORTS
async def test_client_cancellation_cancels_the_call(transport: str) -> None:
    """Cancelling a call on the client sends notifications/cancelled, and the running tool is cancelled."""
    started = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        started.set()

    async with connect(transport) as session:
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: session.call_tool("wait_for_cancel", {}, progress_callback=on_progress))
            await started.wait()
            tg.cancel_scope.cancel()
        seen = await session.call_tool("was_cancelled", {})
        still_serving = await session.call_tool("add", {"a": 1, "b": 1})
    assert texts(seen) == ["cancelled"]
    assert texts(still_serving) == ["2"]


async def test_concurrency_limit() -> None:
    """A tool with max_concurrency=1 runs one call at a time: the second is queued until the first ends."""
    entered = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        entered.set()

    results: list[Any] = []

    async def call_exclusive(session: Any) -> None:
        results.append(await session.call_tool("exclusive", {}, progress_callback=on_progress))

    async with http_server() as (url, server), http_session(url) as session:
        async with anyio.create_task_group() as tg:
            tg.start_soon(call_exclusive, session)
            tg.start_soon(call_exclusive, session)
            await entered.wait()
            with anyio.fail_after(10):
                while server.queued < 1:  # the second call has reached the scheduler and waits for the slot
                    await anyio.lowlevel.checkpoint()
            assert server.running == 1
            await session.call_tool("release", {})
        peak = await session.call_tool("exclusive_peak", {})
    assert [texts(r) for r in results] == [["left"], ["left"]]
    assert texts(peak) == ["1"]
