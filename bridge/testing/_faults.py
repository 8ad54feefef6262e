"""Fault rules for requests: fail the next N, drop a response after the work is done, add latency; a rate limit.

Routes are named `"METHOD /path"`, where path segments may be `{name}` or `*` (one segment) or `**` (any number), and
the method may be `*` or left out: `"POST /v1/sessions/{session_id}/events"`, `"GET /v1/sessions/*/events/stream"`,
`"/v1/agents"`, `"POST **"` (every POST).
Stream faults (drop, stall, duplicate, skip, error frames) act on open streams and live in `_sse.py`.
"""

from __future__ import annotations

import math
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

__all__ = ["Failure", "Faults", "RateLimit", "RouteRule"]


def _compile(route: str) -> tuple[str, re.Pattern[str]]:
    method, _, path = route.strip().rpartition(" ")
    method = (method or "*").upper()
    if path in ("*", "**"):
        return method, re.compile(".*")

    def part(segment: str) -> str:
        if segment == "**":
            return ".*"
        if segment == "*" or (segment.startswith("{") and segment.endswith("}")):
            return "[^/]+"
        return re.escape(segment)

    return method, re.compile("/".join(part(s) for s in path.split("/")) + "/?")


@dataclass
class RouteRule:
    """A route pattern; `matches` tells whether a request falls under it."""

    route: str
    method: str = field(init=False)
    path: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        self.method, self.path = _compile(self.route)

    def matches(self, method: str, path: str) -> bool:
        """Whether `method path` is covered by this rule."""
        return self.method in ("*", method.upper()) and self.path.fullmatch(path) is not None


@dataclass
class Failure:
    """One injected error response."""

    status: int
    headers: dict[str, str]
    error_type: str
    message: str
    error_code: str | None = None


def _error_type(status: int) -> str:
    return {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        408: "timeout_error",
        409: "conflict_error",
        429: "rate_limit_error",
        529: "overloaded_error",
    }.get(status, "api_error")


@dataclass
class _FailRule(RouteRule):
    queue: deque[Failure] = field(default_factory=deque)


@dataclass
class _CountRule(RouteRule):
    remaining: int = 1


class Faults:
    """The request-level fault rules, consulted by the HTTP middleware on every request."""

    def __init__(self) -> None:
        self._fail: list[_FailRule] = []
        self._drop: list[_CountRule] = []
        self._latency: list[tuple[RouteRule, float]] = []

    def fail_next(
        self,
        route: str,
        statuses: int | Iterable[int],
        *,
        headers: Mapping[str, str] | None = None,
        message: str | None = None,
        error_code: str | None = None,
    ) -> None:
        """Answer the next requests on `route` with `statuses`, one per request, in order."""
        rule = _FailRule(route)
        for status in [statuses] if isinstance(statuses, int) else statuses:
            text = message or f"injected {status}"
            rule.queue.append(Failure(status, dict(headers or {}), _error_type(status), text, error_code))
        self._fail.append(rule)

    def drop_responses(self, route: str, times: int = 1) -> None:
        """Process the next `times` requests on `route` fully, then cut the connection instead of answering."""
        self._drop.append(_CountRule(route, remaining=times))

    def set_latency(self, route: str, seconds: float | None) -> None:
        """Delay every request on `route` by `seconds` before handling it (None removes the rule)."""
        self._latency = [(r, s) for r, s in self._latency if r.route != route]
        if seconds:
            self._latency.append((RouteRule(route), seconds))

    def take_failure(self, method: str, path: str) -> Failure | None:
        """The injected failure for this request, if a rule has one left (consumed)."""
        for rule in self._fail:
            if rule.queue and rule.matches(method, path):
                failure = rule.queue.popleft()
                self._fail = [r for r in self._fail if r.queue]
                return failure
        return None

    def take_drop(self, method: str, path: str) -> bool:
        """Whether this request's response is to be dropped (consumes one)."""
        for rule in self._drop:
            if rule.remaining > 0 and rule.matches(method, path):
                rule.remaining -= 1
                self._drop = [r for r in self._drop if r.remaining > 0]
                return True
        return False

    def latency(self, method: str, path: str) -> float:
        """Total added latency for this request."""
        return sum(seconds for rule, seconds in self._latency if rule.matches(method, path))

    def clear(self) -> None:
        """Remove every request rule."""
        self._fail.clear()
        self._drop.clear()
        self._latency.clear()


class RateLimit:
    """An organisation's request rate limit, as the API enforces it: one token bucket over every request.

    Each request (on `routes`, when given: e.g. only result posts, to make a storm without slowing everything) takes
    a token; tokens come back at `rate` per second up to `burst`. A request that finds none is
    answered 429 `rate_limit_error` with `retry-after-ms` (exact) and `retry-after` (whole seconds, rounded up), the
    headers the SDK obeys. Counted in `accepted` and `limited`.
    """

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        routes: Iterable[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate!r}")
        self.rate = rate
        self.routes = None if routes is None else [RouteRule(r) for r in routes]
        self.burst = max(1.0, rate if burst is None else burst)
        self._clock = clock
        self._tokens = self.burst
        self._at = clock()
        self.accepted = 0
        self.limited = 0

    def __repr__(self) -> str:
        return f"RateLimit(rate={self.rate}, burst={self.burst}, accepted={self.accepted}, limited={self.limited})"

    def applies(self, method: str, path: str) -> bool:
        """Whether requests on this route count against the limit (every route unless `routes` were given)."""
        return self.routes is None or any(rule.matches(method, path) for rule in self.routes)

    def take(self) -> float | None:
        """None when the request may proceed (a token was taken), else the seconds until one is free."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            self.accepted += 1
            return None
        self.limited += 1
        return (1.0 - self._tokens) / self.rate

    def failure(self, wait: float) -> Failure:
        """The 429 answer for a request that must wait `wait` seconds."""
        headers = {"retry-after-ms": f"{wait * 1000:.0f}", "retry-after": str(max(1, math.ceil(wait)))}
        message = f"rate limit of {self.rate:g} requests per second exceeded; retry after {wait:.3f} s"
        return Failure(429, headers, "rate_limit_error", message)
