"""`ToolContext`: what a running tool may know about its call, injected by type.

A tool asks for it by annotating any parameter with `ToolContext`; the parameter is hidden from the schema the model
sees. The runtime builds one context per call; tests and direct calls get a default one, so a tool that takes a
context is just as easy to unit-test as one that does not.

The cancellation flag is a `threading.Event` because sync tools run in worker threads: a thread cannot be cancelled,
so a long sync tool should poll `ctx.cancelled` and return early. The runtime sets the flag on `user.interrupt`,
on a terminated session and when the call's deadline passes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ProgressCallback", "ToolContext"]

ProgressCallback = Callable[[str, "float | None"], None]
"""Called with `(message, fraction)` for each `ctx.progress(...)`; may be called from a worker thread."""

_default_logger = logging.getLogger("bridge.tools")


class _CallLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Prefixes every record with the call's identity and attaches the ids as record attributes."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        extra = dict(self.extra or {})
        kwargs["extra"] = {**extra, **kwargs.get("extra", {})}
        return f"[{extra['tool_name']} {extra['session_id']}/{extra['tool_use_id']}] {msg}", kwargs


@dataclass(eq=False)
class ToolContext:
    """The identity and controls of one tool call.

    Args:
        session_id: The Managed Agents session the call belongs to.
        tool_use_id: The `agent.custom_tool_use` event id; unique per call.
        thread_id: The session thread (sub-agent) that made the call, if any.
        tool_name: The tool's registered name.
        metadata: The session's metadata, read-only.
        on_progress: Receives `ctx.progress(...)` reports; `None` drops them.
        logger: The logger behind `ctx.log`; defaults to the `bridge.tools` logger.
        cancel_event: The flag behind `ctx.cancelled`; the runtime passes its own so it can set it from outside.
    """

    session_id: str = "test"
    tool_use_id: str = "test"
    thread_id: str | None = None
    tool_name: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    on_progress: ProgressCallback | None = None
    logger: logging.Logger | logging.LoggerAdapter[Any] | None = None
    cancel_event: threading.Event | None = None

    def __post_init__(self) -> None:
        self._flag = self.cancel_event if self.cancel_event is not None else threading.Event()
        self.cancel_event = self._flag
        self._log: logging.LoggerAdapter[Any] | None = None

    @property
    def cancelled(self) -> bool:
        """True once the call was interrupted, timed out or its session ended; safe to read from any thread."""
        return self._flag.is_set()

    def cancel(self) -> None:
        """Set the cancellation flag (runtime use: interrupts, deadlines, shutdown)."""
        self._flag.set()

    def progress(self, message: str, fraction: float | None = None) -> None:
        """Report progress of a long call; `fraction` is in [0, 1] when the tool knows how far along it is."""
        if fraction is not None:
            fraction = min(1.0, max(0.0, float(fraction)))
        if self.on_progress is not None:
            self.on_progress(message, fraction)

    @property
    def log(self) -> logging.LoggerAdapter[Any]:
        """A logger whose records carry `session_id`, `tool_use_id` and `tool_name`."""
        if self._log is None:
            base = self.logger if self.logger is not None else _default_logger
            ids = {"session_id": self.session_id, "tool_use_id": self.tool_use_id, "tool_name": self.tool_name}
            self._log = _CallLogger(base, ids)
        return self._log

    @property
    def idempotency_key(self) -> str:
        """A key unique to this call and stable across retries: pass it to APIs that deduplicate (payments...)."""
        return f"{self.session_id}:{self.tool_use_id}"
