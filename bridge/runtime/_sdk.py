"""The boundary with the SDK: how its exceptions are classified, mapped and retried.

Every API failure the runtime sees falls in one of these kinds:

- `ACCESS` (401, 403) and `NOT_FOUND` (404): an operator problem, raised as `APIAccessError` /
  `SessionNotFoundError` so a caller never mistakes it for a session that simply ended.
- `REJECTED` (other 4xx but 408/409/429): this request will never succeed as it is; nothing was stored.
- `THROTTLED` (429): not processed; retry after the server's `Retry-After`.
- `UNKNOWN` (5xx, 408, 409, a dropped connection, a timeout): the request may or may not have been applied. For a
  result post this is the dangerous case: the runtime checks the session's history before posting again.
"""

from __future__ import annotations

import enum
import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import anthropic
import httpx2

from .._errors import APIAccessError, OperatorError, SessionNotFoundError

__all__ = ["Failure", "backoff", "classify", "describe", "mapped", "recoverable", "retry_after"]


class Failure(enum.Enum):
    ACCESS = "access"
    NOT_FOUND = "not_found"
    REJECTED = "rejected"
    THROTTLED = "throttled"
    UNKNOWN = "unknown"


def classify(exc: BaseException) -> Failure | None:
    """The kind of an API failure, or None when `exc` is not an API failure at all (a bug: let it propagate)."""
    if isinstance(exc, anthropic.APIStatusError):
        status = exc.status_code
        if status in (401, 403):
            return Failure.ACCESS
        if status == 404:
            return Failure.NOT_FOUND
        if status == 429:
            return Failure.THROTTLED
        if 400 <= status < 500 and status not in (408, 409):
            return Failure.REJECTED
        return Failure.UNKNOWN
    if isinstance(exc, anthropic.APIError | httpx2.HTTPError):
        return Failure.UNKNOWN
    return None


def describe(exc: BaseException) -> str:
    """A short one-line description for logs: status, error type and message, no bodies."""
    if isinstance(exc, anthropic.APIStatusError):
        kind = getattr(exc, "type", None) or "error"
        message = getattr(exc, "api_message", None) or str(exc)
        return f"HTTP {exc.status_code} {kind}: {message}"[:300]
    return f"{type(exc).__name__}: {exc}"[:300]


def mapped(exc: BaseException, what: str) -> OperatorError:
    """The operator-facing exception for an ACCESS or NOT_FOUND failure about `what` (a session or agent)."""
    kind = classify(exc)
    if kind is Failure.ACCESS:
        status = exc.status_code if isinstance(exc, anthropic.APIStatusError) else "?"
        return APIAccessError(
            f"the API refused access to {what} (HTTP {status}): check the API key and that it belongs to the "
            f"workspace of {what}. {describe(exc)}"
        )
    return SessionNotFoundError(f"{what} was not found (HTTP 404) or was deleted. {describe(exc)}")


def recoverable(exc: Exception, what: str) -> Failure:
    """The kind of a failure the caller may retry or handle; raises everything else.

    Not an API failure: `exc` itself is re-raised (a bug must propagate). ACCESS / NOT_FOUND: the operator-facing
    `APIAccessError` / `SessionNotFoundError` about `what` is raised from it. Used as
    `kind = recoverable(exc, f"session {sid}")` inside an `except Exception as exc:` block.
    """
    kind = classify(exc)
    if kind is None:
        raise exc
    if kind in (Failure.ACCESS, Failure.NOT_FOUND):
        raise mapped(exc, what) from exc
    return kind


def retry_after(exc: BaseException) -> float | None:
    """Seconds the server asked us to wait (`retry-after-ms` or `retry-after`), or None."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    if (value := headers.get("retry-after")) is not None:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
            except (TypeError, ValueError):
                return None
    return None


def backoff(attempt: int, *, start: float, cap: float) -> float:
    """Exponential backoff with jitter for retry number `attempt` (1-based): `start * 2**(attempt-1)`, capped, times
    a random factor in [0.5, 1] so many sessions retrying together spread out."""
    delay: float = min(cap, start * 2.0 ** (attempt - 1))
    return delay * random.uniform(0.5, 1.0)
