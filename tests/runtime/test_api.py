"""The SDK boundary: failures classified by whether a request may have been applied, Retry-After honoured."""

from __future__ import annotations

import anthropic
import httpx2
import pytest

from bridge import APIAccessError, SessionNotFoundError
from bridge.runtime._sdk import Failure, backoff, classify, mapped, retry_after


def status_error(status: int, headers: dict[str, str] | None = None) -> anthropic.APIStatusError:
    request = httpx2.Request("POST", "http://127.0.0.1/v1/sessions/s/events")
    response = httpx2.Response(status, headers=headers or {}, request=request)
    return anthropic.APIStatusError("failed", response=response, body=None)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, Failure.ACCESS),
        (403, Failure.ACCESS),
        (404, Failure.NOT_FOUND),
        (429, Failure.THROTTLED),
        (400, Failure.REJECTED),
        (413, Failure.REJECTED),
        (408, Failure.UNKNOWN),
        (409, Failure.UNKNOWN),
        (500, Failure.UNKNOWN),
        (503, Failure.UNKNOWN),
    ],
)
def test_statuses_are_classified_by_what_the_server_may_have_done(status: int, kind: Failure) -> None:
    """5xx/408/409 may have been applied (check before re-posting); 429 and other 4xx were not."""
    assert classify(status_error(status)) is kind


def test_transport_errors_are_unknown_and_bugs_are_not_api_failures() -> None:
    """A dropped connection may have delivered the request; a programming error is not retried at all."""
    request = httpx2.Request("GET", "http://127.0.0.1/")
    assert classify(anthropic.APIConnectionError(request=request)) is Failure.UNKNOWN
    assert classify(httpx2.ReadError("reset")) is Failure.UNKNOWN
    assert classify(KeyError("x")) is None


def test_operator_errors_name_the_session_and_the_fix() -> None:
    """401/403 become APIAccessError and 404 SessionNotFoundError, each naming what was refused."""
    assert isinstance(mapped(status_error(401), "session s1"), APIAccessError)
    assert "session s1" in str(mapped(status_error(403), "session s1"))
    assert isinstance(mapped(status_error(404), "agent a1"), SessionNotFoundError)


def test_retry_after_is_read_in_milliseconds_seconds_or_absent() -> None:
    """`retry-after-ms` wins, then `retry-after` in seconds; no header means our own backoff."""
    assert retry_after(status_error(429, {"retry-after-ms": "1500"})) == 1.5
    assert retry_after(status_error(429, {"retry-after": "2"})) == 2.0
    assert retry_after(status_error(429)) is None


def test_backoff_grows_and_is_capped() -> None:
    """Exponential with jitter in [0.5, 1] of the nominal delay, never above the cap."""
    assert 0.125 <= backoff(1, start=0.25, cap=10) <= 0.25
    assert 1.0 <= backoff(4, start=0.25, cap=10) <= 2.0
    assert backoff(30, start=0.25, cap=3) <= 3
