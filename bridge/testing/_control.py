"""The control handle (`api.control`): inspect state, wait for it, inject faults, drive sessions.

The emulator runs on its own thread and event loop, so it keeps serving while a test's loop is busy, and works the
same whether the test runs on asyncio or trio. Every method here hops onto that loop: plain methods block the caller
for the moment it takes to run there (microseconds); the `wait_*` coroutines run there as tasks and wake the caller's
loop (asyncio or trio) when they finish, so thousands can wait at once without a thread each. Nothing here sleeps to
synchronise: waits wake on state changes. Their `timeout` (ASYNC109 is silenced on purpose) is kept by the emulator's
loop, so a wait never outlives it; cancelling the caller cancels the wait too.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

import anyio
import sniffio
from anyio.from_thread import BlockingPortal

from ._faults import Faults
from ._http import RequestRecord
from ._invariants import InvariantReport
from ._sse import MALFORMED, StreamTap, error_frame
from ._store import Store
from ._util import APIError

__all__ = ["Control"]

Json = dict[str, Any]
T = TypeVar("T")


def _threadsafe_setter(event: anyio.Event) -> Callable[[], None]:
    """A function any thread may call to set `event` on the current loop (asyncio or trio) without blocking."""
    if sniffio.current_async_library() == "trio":
        import trio

        token = trio.lowlevel.current_trio_token()

        def wake_trio() -> None:
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(event.set)

        return wake_trio
    loop = asyncio.get_running_loop()

    def wake_asyncio() -> None:
        with contextlib.suppress(RuntimeError):  # the caller's loop is already closed
            loop.call_soon_threadsafe(event.set)

    return wake_asyncio


class Control:
    """Inspection, waits, fault knobs and session levers for one running emulator."""

    def __init__(
        self,
        store: Store,
        faults: Faults,
        requests: list[RequestRecord],
        stream_rules: list[tuple[str | None, int]],
        portal: Callable[[], BlockingPortal],
        loop_thread: Callable[[], threading.Thread | None],
    ) -> None:
        self._store = store
        self._faults = faults
        self._requests = requests
        self._stream_rules = stream_rules
        self._portal = portal
        self._loop_thread = loop_thread

    def _run(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            if threading.current_thread() is self._loop_thread():
                return fn(*args)
            return self._portal().call(fn, *args)
        except APIError as error:  # an unknown session id, as the API would answer it
            raise LookupError(error.message) from None

    async def _wait(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run the coroutine `fn` on the emulator's loop and wait for it here without blocking a thread."""
        done = anyio.Event()
        wake = _threadsafe_setter(done)
        future = self._portal().start_task_soon(fn, *args)
        future.add_done_callback(lambda _: wake())
        try:
            await done.wait()
        finally:
            if not future.done():
                future.cancel()
        return future.result()

    def _taps(self, session_id: str | None) -> list[StreamTap]:
        sessions = [self._store.session(session_id)] if session_id else list(self._store.sessions.values())
        return [tap for s in sessions for tap in s.streams]

    # -- inspection ------------------------------------------------------------------------------------------------

    def session_ids(self) -> list[str]:
        """Every live session, oldest first."""
        return self._run(lambda: [s.id for s in self._store.sessions.values() if not s.deleted])

    def events(self, session_id: str, thread_id: str | None = None) -> list[Json]:
        """A copy of the session's history (primary view, or one thread's own)."""
        return self._run(lambda: copy.deepcopy(self._store.session(session_id).events(thread_id)))

    def status(self, session_id: str) -> str:
        """`idle`, `running`, `rescheduling` or `terminated`."""
        return self._run(lambda: self._store.session(session_id).status)

    def invariants(self, session_id: str | None = None) -> InvariantReport:
        """The invariant report for one session, or for all sessions."""

        def report() -> InvariantReport:
            sessions = [self._store.sessions[session_id]] if session_id else list(self._store.sessions.values())
            return InvariantReport.of(sessions)

        return self._run(report)

    def requests(self, route: str | None = None) -> list[RequestRecord]:
        """Requests seen so far, optionally only those on `route` (`"POST /v1/sessions/*/events"`)."""
        from ._faults import RouteRule

        def pick() -> list[RequestRecord]:
            rule = RouteRule(route) if route else None
            return [r for r in self._requests if rule is None or rule.matches(r.method, r.path)]

        return self._run(pick)

    def posted_batches(self, session_id: str) -> list[list[Json]]:
        """The stored events of each accepted `POST /events`, in order (to see how results were batched)."""
        return self._run(lambda: [[dict(e) for e in batch] for batch in self._store.session(session_id).batches])

    def open_streams(self, session_id: str) -> int:
        """How many streams are open on the session now."""
        return self._run(lambda: len(self._store.session(session_id).streams))

    def stream_connects(self, session_id: str) -> int:
        """How many streams have been opened on the session so far (reconnects included)."""
        return self._run(lambda: self._store.session(session_id).stream_connects)

    def script_errors(self) -> list[Exception]:
        """Exceptions raised by scripts (each also ended its turn with `session.error`)."""
        return self._run(lambda: [e for s in self._store.sessions.values() for e in s.script_errors])

    # -- waits -----------------------------------------------------------------------------------------------------

    async def _until(self, check: Callable[[], T | None], timeout: float, what: str) -> T:  # noqa: ASYNC109
        store = self._store
        with anyio.move_on_after(timeout):
            while True:
                changed = store.changed
                assert changed is not None
                found = check()
                if found is not None:
                    return found
                if store.closing:
                    raise RuntimeError(f"the emulator closed while waiting for {what}")
                await changed.wait()
        raise TimeoutError(f"timed out after {timeout}s waiting for {what}")

    async def wait_idle(self, session_id: str, stop_reason: str | None = "end_turn", *, timeout: float = 10.0) -> Json:  # noqa: ASYNC109
        """Wait until the session is idle with `stop_reason` (None: any) and return that idle event.

        For `end_turn` it also waits until no turn is active or queued, so it means "the agent is done".
        """

        def check() -> Json | None:
            session = self._store.session(session_id)
            if session.status != "idle" or (stop_reason == "end_turn" and (session.turn_active or session.queue)):
                return None
            last = next((e.event for e in reversed(session.log) if e.event["type"] == "session.status_idle"), None)
            if last is None or (stop_reason is not None and last["stop_reason"]["type"] != stop_reason):
                return None
            return dict(last)

        return await self._wait(self._until, check, timeout, f"session {session_id} idle ({stop_reason})")

    async def wait_status(self, session_id: str, status: str, *, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until the session's status is `status`."""

        def check() -> bool | None:
            return True if self._store.session(session_id).status == status else None

        await self._wait(self._until, check, timeout, f"session {session_id} {status}")

    async def wait_event(self, session_id: str, event_type: str, *, count: int = 1, timeout: float = 10.0) -> Json:  # noqa: ASYNC109
        """Wait until the session's log holds `count` events of `event_type`; return the `count`-th."""

        def check() -> Json | None:
            found = [e.event for e in self._store.session(session_id).log if e.event["type"] == event_type]
            return dict(found[count - 1]) if len(found) >= count else None

        return await self._wait(self._until, check, timeout, f"{count} x {event_type} in {session_id}")

    async def wait_streams(
        self,
        session_id: str,
        *,
        connects: int | None = None,
        open: int | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> None:
        """Wait until at least `connects` streams were ever opened and/or exactly `open` are open now."""

        def check() -> bool | None:
            session = self._store.session(session_id)
            enough = connects is None or session.stream_connects >= connects
            return True if enough and (open is None or len(session.streams) == open) else None

        await self._wait(self._until, check, timeout, f"streams of {session_id} (connects={connects}, open={open})")

    async def wait_requests(self, route: str, count: int, *, timeout: float = 10.0) -> list[RequestRecord]:  # noqa: ASYNC109
        """Wait until `count` requests matched `route`; return them."""
        from ._faults import RouteRule

        rule = RouteRule(route)

        def check() -> list[RequestRecord] | None:
            found = [r for r in self._requests if rule.matches(r.method, r.path)]
            return found if len(found) >= count else None

        return await self._wait(self._until, check, timeout, f"{count} requests on {route}")

    # -- request faults --------------------------------------------------------------------------------------------

    def fail_next(
        self,
        route: str,
        statuses: int | Iterable[int],
        *,
        headers: Mapping[str, str] | None = None,
        message: str | None = None,
        error_code: str | None = None,
    ) -> None:
        """Answer the next requests on `route` with `statuses` (one per request) and `headers`; `message` and
        `error_code` fill the envelope's `error.message` and `error.details.error_code` (the SDK picks some exception
        classes by the code).

        For example `fail_next("POST /v1/sessions/*/events", [503, 503])`, or `fail_next(route, 429,
        headers={"retry-after": "1"})`, or `fail_next(route, 500, headers={"x-should-retry": "false"})`.
        """
        codes = [statuses] if isinstance(statuses, int) else list(statuses)
        self._run(lambda: self._faults.fail_next(route, codes, headers=headers, message=message, error_code=error_code))

    def drop_responses(self, route: str, times: int = 1) -> None:
        """Handle the next `times` requests on `route` fully (a POST is stored) but cut the connection instead of
        answering: the client sees a transport error and, for the SDK, retries the same body."""
        self._run(self._faults.drop_responses, route, times)

    def latency(self, route: str, seconds: float | None) -> None:
        """Delay every request on `route` by `seconds` (None removes it)."""
        self._run(self._faults.set_latency, route, seconds)

    def clear_faults(self) -> None:
        """Remove every request fault rule, pending stream drop rule and stall."""

        def clear() -> None:
            self._faults.clear()
            self._stream_rules.clear()
            for tap in self._taps(None):
                tap.stalled = False
                tap.session.poke()

        self._run(clear)

    # -- stream faults ---------------------------------------------------------------------------------------------

    def drop_streams(self, session_id: str | None = None, *, after_events: int = 0) -> int:
        """Cut every open stream (of one session, or all) now, or after each sends `after_events` more events.

        Returns how many streams were hit.
        """

        def drop() -> int:
            taps = self._taps(session_id)
            for tap in taps:
                tap.drop(after_events)
            return len(taps)

        return self._run(drop)

    def drop_next_stream(self, session_id: str | None = None, *, after_events: int = 0) -> None:
        """Cut the next stream to open (on one session, or any) after it sent `after_events` events."""
        self._run(self._stream_rules.append, (session_id, after_events))

    def stall_streams(self, session_id: str | None = None) -> int:
        """Stop sending anything, pings included, on the open streams, with their sockets left open."""

        def stall() -> int:
            taps = self._taps(session_id)
            for tap in taps:
                tap.stalled = True
            return len(taps)

        return self._run(stall)

    def resume_streams(self, session_id: str | None = None) -> None:
        """Undo `stall_streams`: stalled streams deliver what they held back."""

        def resume() -> None:
            for tap in self._taps(session_id):
                tap.stalled = False
                tap.session.poke()

        self._run(resume)

    def duplicate_next_event(self, session_id: str, event_type: str | None = None) -> None:
        """Send the session's next event (of `event_type`, or any) twice on every stream that delivers it."""
        self._run(lambda: self._store.session(session_id).duplicate_next.append(event_type))

    def skip_next_event(self, session_id: str, event_type: str | None = None) -> None:
        """Store the session's next event (of `event_type`, or any) in its history but never send it on a stream.

        The stream stays open and delivers the events after it: a silent gap, which only a client that checks
        what an idle waits on against what it has seen (a reconciliation sweep) can notice.
        """
        self._run(lambda: self._store.session(session_id).skip_next.append(event_type))

    def stream_error(
        self, session_id: str | None = None, *, error_type: str = "overloaded_error", message: str = "Overloaded"
    ) -> int:
        """Send an in-stream `event: error` frame on the open streams, then end them."""
        data = error_frame(error_type, message)
        return self._run(self._inject, session_id, data, True)

    def malformed_frame(self, session_id: str | None = None) -> int:
        """Send a frame whose `data` is not JSON on the open streams (the SDK raises `JSONDecodeError`)."""
        return self._run(self._inject, session_id, MALFORMED, False)

    def _inject(self, session_id: str | None, data: bytes, close: bool) -> int:
        taps = self._taps(session_id)
        for tap in taps:
            tap.inject(data, close=close)
        return len(taps)

    # -- session levers --------------------------------------------------------------------------------------------

    def interrupt(self, session_id: str, thread_id: str | None = None) -> None:
        """Interrupt the session (or one thread) as a `user.interrupt` would, without storing the event."""
        self._run(lambda: self._store.session(session_id).interrupt(thread_id))

    def terminate(self, session_id: str) -> None:
        """Terminate the session: `session.status_terminated`, then its streams close."""
        self._run(lambda: self._store.session(session_id).terminate())
