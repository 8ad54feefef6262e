"""The fleet's hold on the wire: every SDK request takes a budget token, and no fenced process posts a result.

Both are httpx2 event hooks on the SDK's own default client class, so they apply to every attempt the SDK makes (its
retries included) and need nothing from the runtime:

- **Budget.** The request hook waits for a token from the shared `Budget` before each attempt; the response hook
  reports a 429's `retry-after` to it, so everyone sharing the budget waits it out together.
- **Fence.** Before a `POST /v1/sessions/{id}/events` leaves the process, `may_post(id)` must say yes (in a fleet:
  this process holds the session's lease and its local view of the lease is still sure, see `SessionLeases.token`),
  once before the request is handed to the transport and again when its body is about to be written to the socket
  (a connection may take a while to open, and a process may be paused meanwhile). Otherwise the request is not
  sent (or is cut off before its body): `Fenced` is raised, which the SDK reports as a connection error caused by
  it. The runtime recognises that cause (`runtime/_sdk.py`: `Failure.FENCED`): the post is not retried, the session
  is stopped at once and posts nothing more (its running calls are cancelled, their results kept back), and the new
  owner answers what was left. This is the last line: checked as late as possible, whatever path the post came by.

What no client can close: a process stopped (SIGSTOP, a VM freeze) between the last check and the socket write sends
that one request when it resumes. The window is one write call, microseconds; and the lease's `margin` bounds how
late a checked request may arrive before another process may own the session. Closing it entirely takes the API's
help (a fencing token or idempotency key on the post), which it does not offer. (Found by the fleet test: with the
check only before the transport, a member paused while opening connections sent five stale results on resuming.)
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx2

from .._errors import Fenced
from ._budget import Budget, retry_after

__all__ = ["Fenced", "fleet_http_client"]

_EVENTS = re.compile(r"/v1/sessions/([^/]+)/events/?")


class _CheckedBody(httpx2.AsyncByteStream):
    """A request body that runs `check` when the transport starts writing it: after the connection was acquired
    (or opened), immediately before the body's bytes go to the socket. Raising there aborts the request half-sent,
    which the server discards."""

    def __init__(self, inner: Any, check: Callable[[], None]) -> None:
        self._inner = inner
        self._check = check

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self._check()
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        close = getattr(self._inner, "aclose", None)
        if close is not None:
            await close()


def fleet_http_client(
    *,
    budget: Budget | None = None,
    may_post: Callable[[str], bool] | None = None,
    on_fenced: Callable[[str], None] | None = None,
    **options: Any,
) -> httpx2.AsyncClient:
    """The SDK's default httpx2 client with the fleet's hooks: `AsyncAnthropic(http_client=fleet_http_client(...))`.

    Args:
        budget: Every request attempt waits for one of its tokens; 429s are reported to it.
        may_post: Asked before each `POST .../sessions/{id}/events`; False stops the request (`Fenced`).
        on_fenced: Told the session id of each post stopped (for metrics and logs).
        options: Passed to `anthropic.DefaultAsyncHttpxClient` (timeouts, limits, more `event_hooks`).
    """
    from anthropic import DefaultAsyncHttpxClient

    async def before(request: httpx2.Request) -> None:
        if budget is not None:
            await budget.acquire()  # first: the fence is checked after any wait, right before the transport
        if may_post is not None and request.method == "POST":
            match = _EVENTS.fullmatch(request.url.path)
            if match is not None:
                check(match.group(1))
                request.stream = _CheckedBody(request.stream, lambda: check(match.group(1)))

    def check(session_id: str) -> None:
        assert may_post is not None
        if not may_post(session_id):
            if on_fenced is not None:
                on_fenced(session_id)
            raise Fenced(session_id)

    async def after(response: httpx2.Response) -> None:
        if budget is not None and response.status_code == 429:
            await budget.penalize(retry_after(response.headers))

    hooks = options.pop("event_hooks", {})
    return DefaultAsyncHttpxClient(
        event_hooks={"request": [before, *hooks.get("request", [])], "response": [after, *hooks.get("response", [])]},
        **options,
    )
