"""Tools the MCP server tests serve, in-process and from a `bridge mcp serve` subprocess (TARGET `...:toolset`).

Every result kind, a crash, a deadline, a tool that waits to be cancelled, and one limited to a single call at a time.
The cancellation and limit tools report what they saw through other tools (`was_cancelled`, `exclusive_peak`), so a
test can observe the server process over MCP alone, waiting on events rather than on time.
"""

from __future__ import annotations

import anyio

from bridge import ToolContext, ToolError, ToolResult, Toolset, document, image, tool

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000100ff5d5a2ee20000000049454e44ae426082"
)
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


class _State:
    """What the tools observed; made inside the event loop (anyio events belong to one loop)."""

    def __init__(self) -> None:
        self.cancelled = anyio.Event()
        self.release = anyio.Event()
        self.running = 0
        self.peak = 0


_state: _State | None = None


def state() -> _State:
    """The current observations (created on first use)."""
    global _state
    if _state is None:
        _state = _State()
    return _state


def reset() -> None:
    """Forget every observation (in-process tests call it first: each test has its own event loop)."""
    global _state
    _state = None


def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first number.
        b: The second number.
    """
    return a + b


def order(order_id: str) -> dict[str, object]:
    """Look up an order (JSON result).

    Args:
        order_id: The order id.
    """
    return {"order_id": order_id, "items": 2, "paid": True}


def picture() -> object:
    """A 1x1 PNG image."""
    return image(PNG)


def report() -> object:
    """A PDF document and a text document, after a caption."""
    return ToolResult(["Two documents:", document(PDF, title="Report"), document(b"plain notes", "text/plain")])


def refuse(order_id: str) -> str:
    """Refund an order (always refuses with a ToolError).

    Args:
        order_id: The order id.
    """
    raise ToolError(f"order {order_id} is already refunded")


def crash() -> str:
    """Fails with an unexpected exception whose text must not reach the client."""
    raise RuntimeError("database password is hunter2")


@tool(timeout=0.2)
async def hang() -> str:
    """Never finishes by itself; its 0.2 s deadline stops it."""
    await anyio.Event().wait()
    return "unreachable"


async def steps(ctx: ToolContext) -> str:
    """Reports progress twice, then finishes."""
    ctx.progress("reading", 0.5)
    ctx.progress("writing", 1.0)
    return "done"


def sync_steps(ctx: ToolContext) -> str:
    """Reports progress from a worker thread, then finishes."""
    ctx.progress("thread halfway", 0.5)
    return "done in a thread"


async def wait_for_cancel(ctx: ToolContext) -> str:
    """Reports that it started, then waits until cancelled (and records the cancellation)."""
    ctx.progress("waiting")
    try:
        await anyio.Event().wait()
    except anyio.get_cancelled_exc_class():
        state().cancelled.set()
        raise
    return "unreachable"


async def was_cancelled() -> str:
    """Whether a `wait_for_cancel` call was cancelled (waits up to 10 s for it)."""
    with anyio.move_on_after(10):
        await state().cancelled.wait()
    return "cancelled" if state().cancelled.is_set() else "not cancelled"


@tool(max_concurrency=1)
async def exclusive(ctx: ToolContext) -> str:
    """One call at a time: reports that it entered, then waits for `release`."""
    seen = state()
    seen.running += 1
    seen.peak = max(seen.peak, seen.running)
    ctx.progress("entered")
    try:
        await seen.release.wait()
    finally:
        seen.running -= 1
    return "left"


async def release() -> str:
    """Lets every `exclusive` call finish."""
    state().release.set()
    return "released"


async def exclusive_peak() -> int:
    """The most `exclusive` calls ever running at once."""
    return state().peak


toolset = Toolset(
    [
        add,
        order,
        picture,
        report,
        refuse,
        crash,
        hang,
        steps,
        sync_steps,
        wait_for_cancel,
        was_cancelled,
        exclusive,
        release,
        exclusive_peak,
    ],
    name="mcp-test",
)
