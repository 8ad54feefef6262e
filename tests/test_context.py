"""`ToolContext`: ids, cancellation flag, progress hook and the call logger."""

from __future__ import annotations

import logging
import threading

import pytest

from bridge import Tool, ToolContext

pytestmark = pytest.mark.anyio


def test_defaults_make_tools_easy_to_test() -> None:
    """A bare context has test ids, an unset flag and an idempotency key."""
    ctx = ToolContext()
    assert (ctx.session_id, ctx.tool_use_id, ctx.thread_id) == ("test", "test", None)
    assert ctx.cancelled is False
    assert ctx.idempotency_key == "test:test"
    assert dict(ctx.metadata) == {}


def test_cancel_sets_the_shared_event() -> None:
    """`cancel()` sets the event the runtime passed in, and `cancelled` reads it."""
    event = threading.Event()
    ctx = ToolContext(cancel_event=event)
    assert ctx.cancel_event is event
    event.set()
    assert ctx.cancelled
    other = ToolContext()
    other.cancel()
    assert other.cancelled


def test_progress_reports_reach_the_hook() -> None:
    """`progress()` forwards the message and a fraction clamped to [0, 1]; without a hook it is a no-op."""
    seen: list[tuple[str, float | None]] = []
    ctx = ToolContext(on_progress=lambda message, fraction: seen.append((message, fraction)))
    ctx.progress("half", 0.5)
    ctx.progress("over", 7)
    ctx.progress("unknown")
    assert seen == [("half", 0.5), ("over", 1.0), ("unknown", None)]
    ToolContext().progress("dropped", 0.1)


def test_log_carries_the_call_identity(caplog: pytest.LogCaptureFixture) -> None:
    """`ctx.log` records carry session, call and tool ids (the runtime's field names), as attributes and in the text."""
    ctx = ToolContext(session_id="sesn_1", tool_use_id="toolu_1", tool_name="refund", logger=logging.getLogger("app"))
    with caplog.at_level(logging.INFO, logger="app"):
        ctx.log.info("refunding %s", "A-1")
    record = caplog.records[0]
    assert record.getMessage() == "[refund sesn_1/toolu_1] refunding A-1"
    assert (record.session_id, record.tool_use_id, record.tool) == ("sesn_1", "toolu_1", "refund")  # type: ignore[attr-defined]
    assert not hasattr(record, "tool_name")


async def test_masked_failures_are_logged_with_their_reference(caplog: pytest.LogCaptureFixture) -> None:
    """The traceback of a masked exception is logged under the same reference the model sees."""

    def broken() -> None:
        """Break."""
        raise KeyError("internal")

    ctx = ToolContext(session_id="s", tool_use_id="u", tool_name="broken")
    with caplog.at_level(logging.ERROR, logger="bridge.tools"):
        result = await Tool.from_function(broken).call({}, ctx)
    ref = result.text.removeprefix("tool broken failed (ref ").removesuffix(")")
    record = caplog.records[0]
    assert ref in record.getMessage()
    assert record.exc_info is not None
    assert record.exc_info[0] is KeyError
