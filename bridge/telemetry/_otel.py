"""`OpenTelemetrySpans`: one span per tool call, following the OpenTelemetry GenAI semantic conventions.

A call listener like `PrometheusMetrics`: `Bridge(client, tools, on_call=OpenTelemetrySpans().observe)`. Only
`opentelemetry-api` is needed here; spans go wherever the application's tracer provider sends them (with no SDK
configured the API's tracer is a no-op).

Each span is `execute_tool {tool}` (kind INTERNAL), from the moment the tool starts to its answer, with
`gen_ai.operation.name = "execute_tool"`, `gen_ai.tool.name`, `gen_ai.tool.call.id` (the `agent.custom_tool_use` id),
`gen_ai.tool.type = "function"` and `gen_ai.conversation.id` (the session: every call of a session shares it, which
is how a trace backend groups them). A failed call sets `error.type` (`tool_error`, `timeout` or `cancelled`) and
the span's status to ERROR; a call cancelled before it started gets a span from its receipt.
"""

from __future__ import annotations

import time
from typing import Any

from ..runtime import CallEvent, CallEventKind

__all__ = ["OpenTelemetrySpans"]

_ERROR_TYPES = {
    CallEventKind.FAILED: "tool_error",
    CallEventKind.TIMED_OUT: "timeout",
    CallEventKind.CANCELLED: "cancelled",
}
_ENDS = (CallEventKind.FINISHED, *_ERROR_TYPES)


def _api() -> tuple[Any, Any]:
    try:
        from opentelemetry import trace
        from opentelemetry.trace import Status, StatusCode
    except ImportError:
        raise ImportError("OpenTelemetry spans need opentelemetry-api: pip install 'tool-bridge[otel]'") from None
    return trace, (Status, StatusCode)


class OpenTelemetrySpans:
    """Turns call events into `execute_tool` spans.

    Args:
        tracer_provider: Where spans go (default: the global provider the application configured).

    Raises:
        ImportError: opentelemetry-api is not installed (the message names the extra to install).
    """

    def __init__(self, tracer_provider: Any = None) -> None:
        trace, (self._status, self._code) = _api()
        self._kind = trace.SpanKind.INTERNAL
        self.tracer = trace.get_tracer("tool-bridge", tracer_provider=tracer_provider)
        self._received: dict[tuple[str, str], int] = {}
        self._open: dict[tuple[str, str], Any] = {}

    def __repr__(self) -> str:
        return f"OpenTelemetrySpans(open={len(self._open)})"

    def observe(self, event: CallEvent) -> None:
        """The call listener: open a span when the tool starts, end it with the call's outcome."""
        key = (event.session_id, event.tool_use_id)
        now = time.time_ns()
        if event.kind is CallEventKind.RECEIVED:
            self._received[key] = now
        elif event.kind is CallEventKind.STARTED:
            self._received.pop(key, None)
            self._open[key] = self._start(event, now)
        elif event.kind in _ENDS:
            span = self._open.pop(key, None)
            if span is None:  # cancelled while queued: the span covers its wait
                span = self._start(event, self._received.pop(key, now))
            if (error := _ERROR_TYPES.get(event.kind)) is not None:
                span.set_attribute("error.type", error)
                span.set_status(self._status(self._code.ERROR, event.detail or error))
            span.end(end_time=now)
        elif event.kind is CallEventKind.DROPPED:
            self._received.pop(key, None)

    def _start(self, event: CallEvent, start_time: int) -> Any:
        attributes = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": event.tool,
            "gen_ai.tool.call.id": event.tool_use_id,
            "gen_ai.tool.type": "function",
            "gen_ai.conversation.id": event.session_id,
        }
        if event.thread_id is not None:
            attributes["tool_bridge.thread_id"] = event.thread_id
        return self.tracer.start_span(
            f"execute_tool {event.tool}", kind=self._kind, attributes=attributes, start_time=start_time
        )
