"""The one retry policy: what is retried, how long it waits, what is raised at once."""

from __future__ import annotations

import anthropic
import httpx2
import pytest

from bridge import APIAccessError, SessionNotFoundError
from bridge.runtime._retry import Attempts, Retry, retrying
from bridge.runtime._sdk import Failure

pytestmark = pytest.mark.anyio


def status_error(status: int, headers: dict[str, str] | None = None) -> anthropic.APIStatusError:
    request = httpx2.Request("POST", "http://127.0.0.1/v1/sessions/s/events")
    response = httpx2.Response(status, headers=headers or {}, request=request)
    return anthropic.APIStatusError("failed", response=response, body=None)


def test_backoff_grows_is_jittered_and_capped() -> None:
    """Exponential with jitter in [0.5, 1] of the nominal delay, never above the cap."""
    policy = Retry(start=0.25, cap=10)
    assert 0.125 <= policy.delay(1) <= 0.25
    assert 1.0 <= policy.delay(4) <= 2.0
    assert Retry(start=0.25, cap=3).delay(30) <= 3


def test_retry_after_replaces_the_backoff_even_past_the_cap() -> None:
    """The server's `Retry-After` is obeyed as given: it knows when it can take the request."""
    assert Retry(cap=0.5).delay(1, status_error(429, {"retry-after": "2"})) == 2.0
    assert Retry(cap=0.5).delay(1, status_error(503, {"retry-after-ms": "30"})) == 0.03


@pytest.mark.parametrize(
    ("status", "raised"),
    [(401, APIAccessError), (403, APIAccessError), (404, SessionNotFoundError), (400, anthropic.APIStatusError)],
)
async def test_fatal_failures_are_raised_at_once(status: int, raised: type[Exception]) -> None:
    """401/403/404 become the operator's errors; another 4xx is raised as it is; none is retried."""
    attempts = Attempts(Retry(start=0.001), "session s1", "testing")
    with pytest.raises(raised):
        await attempts.failed(status_error(status))
    assert attempts.count == 0


@pytest.mark.parametrize(("status", "kind"), [(500, Failure.UNKNOWN), (408, Failure.UNKNOWN), (429, Failure.THROTTLED)])
async def test_transient_failures_wait_and_say_whether_the_request_may_have_landed(status: int, kind: Failure) -> None:
    """5xx/408 may have been applied (UNKNOWN: check before re-posting); 429 was not; both are retried."""
    attempts = Attempts(Retry(start=0.001, cap=0.001), "session s1", "testing")
    assert await attempts.failed(status_error(status)) is kind
    assert attempts.count == 1


async def test_retrying_stops_at_the_attempt_limit_and_raises_the_last_failure() -> None:
    """With `attempts=3` the third failure is raised; a bug (not an API failure) is never retried."""
    calls = 0

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        raise status_error(503)

    with pytest.raises(anthropic.APIStatusError):
        await retrying(flaky, Attempts(Retry(start=0.001, cap=0.001, attempts=3), "session s1", "testing"))
    assert calls == 3

    async def buggy() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        await retrying(buggy, Attempts(Retry(start=0.001), "session s1", "testing"))
