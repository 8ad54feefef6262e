"""The boundary with the SDK: how its exceptions are classified, mapped and retried.

Every API failure the runtime sees falls in one of these kinds:

- `ACCESS` (401, 403) and `NOT_FOUND` (404): an operator problem, raised as `APIAccessError` /
  `SessionNotFoundError` so a caller never mistakes it for a session that simply ended.
- `REJECTED` (400, 409, 413, 422 and every other 4xx but 408/429): this request will never succeed as it is.
- `THROTTLED` (429): not processed; retry after the server's `Retry-After`.
- `UNKNOWN` (5xx, 408, a dropped connection, a timeout): the request may or may not have been applied. For a
  post this is the dangerous case: the runtime checks the session's history before posting again.
- `FENCED`: this process no longer (surely) holds the session's fleet lease, so the request was stopped before it
  was sent (`Fenced`, raised by the fleet's HTTP client or the runtime's own check; the SDK wraps it as a connection
  error). Not a failure to retry: the session must post nothing more (the lease-lost path, `_runner.py`).

How long to wait and how often to retry is `_retry.py`'s: the one retry policy.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import anthropic
import httpx2

from .._errors import APIAccessError, Fenced, OperatorError, SessionNotFoundError

__all__ = ["Failure", "classify", "describe", "fenced_cause", "mapped", "recoverable", "retry_after"]


class Failure(enum.Enum):
    ACCESS = "access"
    NOT_FOUND = "not_found"
    REJECTED = "rejected"
    THROTTLED = "throttled"
    UNKNOWN = "unknown"
    FENCED = "fenced"


def fenced_cause(exc: BaseException) -> Fenced | None:
    """The `Fenced` refusal behind `exc` (itself, or the cause of the SDK's connection error), or None."""
    seen: BaseException | None = exc
    for _ in range(8):  # a short chain: the SDK wraps once; guard against cycles
        if seen is None:
            return None
        if isinstance(seen, Fenced):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def classify(exc: BaseException) -> Failure | None:
    """The kind of an API failure, or None when `exc` is not an API failure at all (a bug: let it propagate)."""
    if isinstance(exc, Fenced) or (isinstance(exc, anthropic.APIConnectionError) and fenced_cause(exc) is not None):
        return Failure.FENCED
    if isinstance(exc, anthropic.APIStatusError):
        status = exc.status_code
        if status in (401, 403):
            return Failure.ACCESS
        if status == 404:
            return Failure.NOT_FOUND
        if status == 429:
            return Failure.THROTTLED
        if 400 <= status < 500 and status != 408:
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
    if (fenced := fenced_cause(exc)) is not None:
        return str(fenced)
    if isinstance(exc, anthropic.APIConnectionError):  # name the URL: a wrong base_url is the usual cause
        return f"{type(exc).__name__}: {exc} ({exc.request.method} {exc.request.url})"[:300]
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
