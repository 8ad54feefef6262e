"""`@tool` and `Tool.call`: options attach to the function, calls validate, run and shape without raising."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import pytest

from bridge import CallResult, DefinitionError, Tool, ToolContext, ToolError, ToolOptions, tool

T = TypeVar("T")
pytestmark = pytest.mark.anyio


@tool
def add(a: int, b: int = 2) -> int:
    """Add two numbers."""
    return a + b


@tool(name="mul", timeout=3, idempotent=True)
async def multiply(a: int, b: int) -> int:
    """Multiply two numbers."""
    return a * b


def test_decorator_returns_the_function() -> None:
    """`@tool` returns the function itself, still callable, with frozen options attached."""
    assert add(1) == 3
    assert add.__bridge_tool__ == ToolOptions()  # type: ignore[attr-defined]
    assert multiply.__bridge_tool__ == ToolOptions(name="mul", timeout=3, idempotent=True)  # type: ignore[attr-defined]


def test_decorator_forms() -> None:
    """`@tool()`, `@tool("name")` and `@tool(name=...)` all work."""

    @tool()
    def a() -> None:
        """A."""

    @tool("bee")
    def b() -> None:
        """B."""

    assert Tool.from_function(a).name == "a"
    assert Tool.from_function(b).name == "bee"


async def test_sync_and_async_calls() -> None:
    """A sync tool runs in a thread, an async one on the loop; both return JSON text for numbers."""
    assert await Tool.from_function(add).call({"a": 1}) == CallResult.of_text("3")
    result = await Tool.from_function(multiply).call({"a": 2, "b": "5"})
    assert (result.text, result.is_error) == ("10", False)


async def test_sync_tool_runs_in_a_worker_thread() -> None:
    """The default `run_sync` leaves the event loop thread."""
    loop_thread = threading.get_ident()

    def where() -> str:
        """Report whether we are on the loop thread."""
        return "loop" if threading.get_ident() == loop_thread else "worker"

    assert (await Tool.from_function(where).call({})).text == "worker"


async def test_custom_run_sync_is_used() -> None:
    """The runtime's own `run_sync` receives the no-argument callable."""
    seen: list[str] = []

    async def run_sync(fn: Callable[[], T]) -> T:
        seen.append("called")
        return fn()

    runner: Callable[[Callable[[], Any]], Awaitable[Any]] = run_sync
    assert (await Tool.from_function(add).call({"a": 5, "b": 5}, run_sync=runner)).text == "10"
    assert seen == ["called"]


async def test_context_is_injected_and_hidden() -> None:
    """A `ToolContext` parameter in any position is hidden from the schema and receives the call's context."""

    def who(ctx: ToolContext, x: int, /) -> str:  # positional-only context is fine: it is not model input
        """Say who called."""
        return f"{ctx.session_id}/{ctx.tool_use_id}/{x}/{ctx.cancelled}"

    def after(x: int, ctx: ToolContext) -> str:
        """Say who called."""
        return ctx.idempotency_key

    with pytest.raises(DefinitionError, match="positional-only"):
        Tool.from_function(who)
    t = Tool.from_function(after)
    assert list(t.input_schema["properties"]) == ["x"]
    result = await t.call({"x": 1}, ToolContext(session_id="s1", tool_use_id="u1"))
    assert result.text == "s1:u1"


async def test_cancelled_flag_is_visible_to_sync_tools() -> None:
    """`ctx.cancelled` flips when the runtime cancels, and a sync tool polling it can return early."""
    started = threading.Event()

    def slow(ctx: ToolContext) -> str:
        """Wait until cancelled."""
        started.set()
        while not ctx.cancelled:
            ctx.cancel_event.wait(0.01)  # type: ignore[union-attr]
        return "stopped early"

    ctx = ToolContext()
    result: list[CallResult] = []

    async def run() -> None:
        result.append(await Tool.from_function(slow).call({}, ctx))

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        await anyio.to_thread.run_sync(started.wait)
        ctx.cancel()
    assert result[0].text == "stopped early"


async def test_cancellation_propagates() -> None:
    """An anyio cancellation is not turned into a result: it propagates out of `call`."""
    entered = anyio.Event()

    async def hang() -> None:
        """Hang forever."""
        entered.set()
        await anyio.sleep_forever()

    t = Tool.from_function(hang)
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(t.call, {})
            await entered.wait()
            scope.cancel()
    assert scope.cancelled_caught


async def test_cancelling_the_call_flags_its_abandoned_thread() -> None:
    """Cancelling the task awaiting a sync tool sets `ctx.cancelled`, so the abandoned thread can stop on its own."""
    started, finished = threading.Event(), threading.Event()
    seen: list[bool] = []

    def wait(ctx: ToolContext) -> None:
        """Wait until cancelled."""
        started.set()
        seen.append(ctx.cancel_event.wait(10))  # type: ignore[union-attr]
        finished.set()

    ctx = ToolContext()
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(Tool.from_function(wait).call, {}, ctx)
            await anyio.to_thread.run_sync(started.wait)
            scope.cancel()
    assert ctx.cancelled
    await anyio.to_thread.run_sync(finished.wait)
    assert seen == [True]


async def test_errors_become_results() -> None:
    """`ToolError` text reaches the model; other exceptions are masked with a reference."""

    def fail(kind: str) -> None:
        """Fail on purpose."""
        if kind == "tool":
            raise ToolError("order 42 does not exist")
        raise RuntimeError("password=hunter2")

    t = Tool.from_function(fail)
    told = await t.call({"kind": "tool"})
    assert told == CallResult.error("order 42 does not exist")
    masked = await t.call({"kind": "other"})
    assert masked.is_error
    assert masked.text.startswith("tool fail failed (ref ")
    assert "hunter2" not in masked.text


def test_with_options_and_renamed() -> None:
    """`with_options` and `renamed` return new tools; the original keeps its name and options."""
    base = Tool.from_function(add)
    strict = base.with_options(strict=True, timeout=1)
    renamed = base.renamed("plus")
    assert (base.options.strict, strict.options.strict, strict.options.timeout) == (False, True, 1)
    assert (base.name, renamed.name, renamed.definition()["name"]) == ("add", "plus", "plus")
    assert renamed.input_schema == base.input_schema


def test_schemas_handed_out_are_copies() -> None:
    """Mutating a returned schema or definition does not change the tool."""
    t = Tool.from_function(add)
    t.input_schema["properties"].clear()
    t.definition()["input_schema"]["required"].append("zzz")
    assert list(t.input_schema["properties"]) == ["a", "b"]
    assert t.input_schema["required"] == ["a"]


async def test_tool_errors_from_a_task_group_reach_the_model() -> None:
    """`ToolError`s raised inside a tool's own task group are reported, not masked."""

    async def fan_out() -> None:
        """Fan out."""

        async def fail(text: str) -> None:
            raise ToolError(text)

        async with anyio.create_task_group() as tg:
            tg.start_soon(fail, "shard 1 is down")

    assert await Tool.from_function(fan_out).call({}) == CallResult.error("shard 1 is down")


async def test_missing_input_means_no_arguments() -> None:
    """An absent (`None`) input is treated as `{}`."""
    assert (await Tool.from_function(add).call(None, run_sync=None)).is_error  # type: ignore[arg-type]

    def ping() -> str:
        """Ping."""
        return "pong"

    assert (await Tool.from_function(ping).call(None)).text == "pong"  # type: ignore[arg-type]
