"""Configuration of the runtime: how much may run at once (`Limits`) and how long things may take (`Timeouts`).

Both are small frozen objects passed to `Bridge(...)`. Their `repr` shows only what differs from the defaults, so a
log line such as `Limits(per_session=4)` says exactly what an operator changed.

Timeout precedence for a tool call, documented once here: the tool's own `timeout=` option, then its toolset's
`timeout=`, then the bridge's `timeout=` (which defaults to `Timeouts.tool`). `None` at the bridge level means no
deadline at all, which is rarely what you want: a hung tool then holds its slot forever.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .._errors import ConfigError

__all__ = ["Limits", "Timeouts"]


def _changed_repr(obj: Any) -> str:
    parts = [
        f"{f.name}={getattr(obj, f.name)!r}"
        for f in dataclasses.fields(obj)
        if f.repr and getattr(obj, f.name) != f.default
    ]
    return f"{type(obj).__name__}({', '.join(parts)})"


@dataclass(frozen=True, repr=False)
class Limits:
    """How many calls may run at once, and how much work may wait.

    A call needs a slot at every level that applies to it, taken narrowest first (key, tool, session, global) so a
    call waiting for a busy tool never sits on a session or global slot another call could use. Per-tool and per-key
    limits are the tool's own `max_concurrency` / `concurrency_key` options.

    Args:
        max_concurrency: Calls running at once across every session of the bridge. Async tools are cheap, so it is
            high by default; threads are capped separately (`max_threads`).
        per_session: Calls running at once for one session (`None`: only the global limit). Keeps one busy session
            from starving the others.
        max_threads: Sync tools running at once, each in a worker thread (an abandoned thread counts until it ends).
        max_queued: Calls allowed to wait for a slot across the bridge. Beyond it a new call is answered at once with
            an `is_error` "overloaded" result instead of being queued, so memory stays bounded and the stream reader
            never blocks.
        max_batch: Most results posted in one `events.send` request.
        max_requests: API requests (result posts, history reads, session lookups) in flight at once across the bridge;
            event streams are not counted. It keeps the HTTP connection pool small: httpx checks every pooled
            connection on each request, so hundreds of idle connections slow every request down.
    """

    max_concurrency: int = 1000
    per_session: int | None = 64
    max_threads: int = 100
    max_queued: int = 10_000
    max_batch: int = 100
    max_requests: int = 64

    def __post_init__(self) -> None:
        problems = [
            f"Limits.{name} must be a positive integer, got {value!r}"
            for name, value in (
                ("max_concurrency", self.max_concurrency),
                ("max_threads", self.max_threads),
                ("per_session", self.per_session if self.per_session is not None else 1),
                ("max_queued", self.max_queued),
                ("max_batch", self.max_batch),
                ("max_requests", self.max_requests),
            )
            if not isinstance(value, int) or isinstance(value, bool) or value < 1
        ]
        if problems:
            raise ConfigError(problems)

    def __repr__(self) -> str:
        return _changed_repr(self)


@dataclass(frozen=True, repr=False)
class Timeouts:
    """Deadlines and backoff caps of the runtime, in seconds.

    Args:
        tool: Default deadline of one tool call when neither the tool nor its toolset sets one. `Bridge(timeout=...)`
            overrides it.
        drain: On shutdown, how long running calls get to finish and their results to be posted before the rest are
            cancelled (and answered as cancelled where the session still waits).
        stream_idle: Read-idle watchdog: a stream that delivers no bytes at all, keep-alives included, for this long
            is treated as stalled and reconnected.
        request: Deadline of one API request (history page, result post, session lookup).
        reconnect_max: Cap of the exponential backoff between stream reconnects (it starts at 0.1 s).
        post_backoff_max: Cap of the exponential backoff between result post retries (it starts at 0.25 s).
            A `Retry-After` from the API is honoured even when it is longer.
        agent_poll: How often `serve_agent` lists the agent's sessions to find new ones.
        sweep: The reconciliation sweep's period: a session whose stream delivered nothing for this long has its
            latest status read from the history, in case the stream silently skipped the idle that waits on a tool
            call (every idle the stream does deliver is checked at once).
        post_linger: Longest a ready result is held back so that the rest of its batch can leave in the same
            request. The agent resumes only once every call of its `requires_action` idle is answered, so a result
            waits while other calls of the session still run, or until the idle that ends the agent's burst of calls
            has arrived; then everything ready leaves in one POST. No result waits longer than this for others
            (a slow call never holds back the fast ones beyond it). `0` posts every result as soon as it is ready.
    """

    tool: float | None = 60.0
    drain: float = 10.0
    stream_idle: float = 90.0
    request: float = 30.0
    reconnect_max: float = 10.0
    post_backoff_max: float = 30.0
    agent_poll: float = 5.0
    sweep: float = 60.0
    post_linger: float = 0.1

    def __post_init__(self) -> None:
        problems = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None and f.name == "tool":
                continue
            if not isinstance(value, int | float) or isinstance(value, bool):
                problems.append(f"Timeouts.{f.name} must be a number of seconds, got {value!r}")
            elif f.name == "post_linger" and value < 0:
                problems.append(f"Timeouts.post_linger must be zero or a positive number of seconds, got {value!r}")
            elif f.name != "post_linger" and value <= 0:
                problems.append(f"Timeouts.{f.name} must be a positive number of seconds, got {value!r}")
        if problems:
            raise ConfigError(problems)

    def __repr__(self) -> str:
        return _changed_repr(self)
