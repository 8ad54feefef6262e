"""`OpenTelemetrySpans`: one span per tool call (OpenTelemetry GenAI semantic conventions), one per result POST.

A call listener and a post listener, like `PrometheusMetrics`:

```python
spans = OpenTelemetrySpans()
async with Bridge(client, tools, on_call=spans.observe, on_post=spans.observe_post) as bridge: ...
```

Only `opentelemetry-api` is needed here; spans go wherever the application's tracer provider sends them (with no SDK
configured the API's tracer is a no-op). `bridge run --otel` configures a provider from the `OTEL_*` environment.

Each span is `execute_tool {tool}` (kind INTERNAL), from the moment the tool starts to its answer, with
`gen_ai.operation.name = "execute_tool"`, `gen_ai.tool.name`, `gen_ai.tool.call.id` (the `agent.custom_tool_use` id),
`gen_ai.tool.type = "function"` and `gen_ai.conversation.id` (the session: every call of a session shares it, which
is how a trace backend groups them). A failed call sets `error.type` (`tool_error`, `timeout` or `cancelled`) and
the span's status to ERROR; a call cancelled before it started gets a span from its receipt.

Each result POST is a span `POST user.custom_tool_result` (kind CLIENT), from its first attempt to its outcome (retries,
backoff and history checks included), with `gen_ai.conversation.id` (the session, as on the call spans),
`tool_bridge.post.results` (how many results it carried), `tool_bridge.post.tool_call_ids`, `tool_bridge.post.outcome`
(a `PostOutcome`: posted, found, unwanted, rejected, failed), `tool_bridge.post.retries` and `tool_bridge.post.found`
(results a failed attempt had stored after all). It links to the `execute_tool` span of every call whose result it
carried, so a trace backend leads from a call to the POST that delivered it and back. A rejected or failed POST sets
`error.type` to its outcome and the status to ERROR.
"""

from __future__ import annotations

import time
from typing import Any

from ..runtime import CallEvent, CallEventKind, PostEvent, PostOutcome

__all__ = ["OpenTelemetrySpans"]

_ERROR_TYPES = {
    CallEventKind.FAILED: "tool_error",
    CallEventKind.TIMED_OUT: "timeout",
    CallEventKind.CANCELLED: "cancelled",
}
_ENDS = (CallEventKind.FINISHED, *_ERROR_TYPES)
_SETTLED = (CallEventKind.POSTED, CallEventKind.DROPPED)
_POST_ERRORS = (PostOutcome.REJECTED, PostOutcome.FAILED)
POST_SPAN = "POST user.custom_tool_result"
MAX_AWAITING_POST = 10_000
"""Ended call spans kept for the POST spans to link to; past this, the oldest are forgotten (a link is lost)."""


def _api() -> tuple[Any, Any]:
    try:
        from opentelemetry import trace
        from opentelemetry.trace import Status, StatusCode
    except ImportError:
        raise ImportError("OpenTelemetry spans need opentelemetry-api: pip install 'tool-bridge[otel]'") from None
    return trace, (Status, StatusCode)


class OpenTelemetrySpans:
    """Turns call events into `execute_tool` spans, and post events into `POST user.custom_tool_result` spans.

    Args:
        tracer_provider: Where spans go (default: the global provider the application configured).

    Raises:
        ImportError: opentelemetry-api is not installed (the message names the extra to install).
    """

    def __init__(self, tracer_provider: Any = None) -> None:
        trace, (self._status, self._code) = _api()
        self._kind = trace.SpanKind.INTERNAL
        self._client = trace.SpanKind.CLIENT
        self._link = trace.Link
        self.tracer = trace.get_tracer("tool-bridge", tracer_provider=tracer_provider)
        self._received: dict[tuple[str, str], int] = {}
        self._open: dict[tuple[str, str], Any] = {}
        self._ended: dict[tuple[str, str], Any] = {}  # span contexts of answered calls, until their result is posted

    def __repr__(self) -> str:
        return f"OpenTelemetrySpans(open={len(self._open)}, awaiting_post={len(self._ended)})"

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
            self._ended[key] = span.get_span_context()
            if len(self._ended) > MAX_AWAITING_POST:
                del self._ended[next(iter(self._ended))]
        elif event.kind in _SETTLED:
            self._received.pop(key, None)
            self._ended.pop(key, None)

    def observe_post(self, event: PostEvent) -> None:
        """The post listener: one span per result POST, linked to the spans of the calls it answered."""
        end = time.time_ns()
        links = [
            self._link(context)
            for use_id in event.tool_use_ids
            if (context := self._ended.get((event.session_id, use_id))) is not None
        ]
        attributes = {
            "gen_ai.conversation.id": event.session_id,
            "tool_bridge.post.results": len(event.tool_use_ids),
            "tool_bridge.post.tool_call_ids": list(event.tool_use_ids),
            "tool_bridge.post.outcome": event.outcome.value,
            "tool_bridge.post.retries": event.retries,
            "tool_bridge.post.found": len(event.found),
        }
        span = self.tracer.start_span(
            POST_SPAN,
            kind=self._client,
            attributes=attributes,
            links=links,
            start_time=end - int(event.duration * 1e9),
        )
        if event.outcome in _POST_ERRORS:
            span.set_attribute("error.type", event.outcome.value)
            span.set_status(self._status(self._code.ERROR, event.detail or event.outcome.value))
        span.end(end_time=end)

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
