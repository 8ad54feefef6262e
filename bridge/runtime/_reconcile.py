"""The reconciliation sweep: the backstop for a stream that silently skips an event (`reliability.md` §4.4, R8).

A reconnect reads what was missed while the stream was down, but a stream can also skip an event and carry on: the
session then idles with `requires_action` naming a call the bridge never saw, and waits for it forever. Two checks
close that gap:

- **On each idle.** A `session.status_idle` lists, under `requires_action`, every event the session is blocked on.
  Ids the intake has not seen are read from the history: only tool calls and their results, from the newest point
  up to which the history was already read in full (the first read's end, then each sweep's idle), so a sweep
  costs one small request. What is found goes through the intake's deduplication to the dispatcher, which answers
  it like any other call (a result found beside it means another client answered it: it is not run).
- **Periodically.** If the idle itself was skipped, nothing triggers the first check. So a session whose stream
  delivered nothing for a whole `Timeouts.sweep` has its latest status read from the history; a status event the
  stream skipped is delivered (so an `end_turn` that never arrived still ends `Bridge.ask`), and an idle is checked
  as above.

An id the history does not show as a custom tool call (a built-in tool awaiting confirmation, say) is not looked up
again. A failed read is logged and left to the next idle or the next periodic sweep.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from datetime import datetime
from typing import Any

import anyio
from anthropic.resources.beta.sessions.events import AsyncEvents

from ._intake import Event, Intake
from ._limits import Timeouts
from ._observe import Observer, log_extra
from ._plan import blocked_on
from ._sdk import Failure, classify, describe, mapped

__all__ = ["Reconciler"]

logger = logging.getLogger("bridge.intake")

_CALL_TYPES = ["agent.custom_tool_use", "user.custom_tool_result"]
_STATUS_TYPES = ["session.status_idle", "session.status_running", "session.status_terminated"]


class _ReadFailed(Exception):
    """A history read failed in a way worth retrying later."""


class Reconciler:
    """Finds, in the history, the tool calls a session waits on that its stream never delivered.

    Args:
        session_id: The session.
        events: `client.beta.sessions.events` (with the SDK's ordinary retries).
        intake: The session's intake: what was seen, and the deduplicated way in to the dispatcher.
        timeouts: `sweep` (the periodic check) and `request`.
        observer: Counts the calls found (`BridgeStats.reconciled`).
        requests: The bridge-wide limiter of API requests in flight.
        remember: How many ids that were looked up in vain to remember.
    """

    def __init__(
        self,
        session_id: str,
        *,
        events: AsyncEvents,
        intake: Intake,
        timeouts: Timeouts,
        observer: Observer,
        requests: anyio.CapacityLimiter,
        remember: int = 10_000,
    ) -> None:
        self.session_id = session_id
        self._events = events
        self._intake = intake
        self._timeouts = timeouts
        self._observer = observer
        self._requests = requests
        self._remember = remember
        self._looked_up: OrderedDict[str, None] = OrderedDict()
        self._read_to: datetime | None = None  # every call made up to here is known (with `intake.backfilled_to`)

    def __repr__(self) -> str:
        return f"Reconciler({self.session_id!r}, read_to={self._read_to!r})"

    async def check(self, idle: Event) -> None:
        """Read from the history the calls `idle` says the session waits on that the stream did not deliver."""
        missing = [i for i in blocked_on(idle) if not self._intake.seen(i) and i not in self._looked_up]
        if not missing:
            return
        for event_id in missing:  # claimed before the read, so a concurrent check does not read them again
            self._looked_up[event_id] = None
        since = self._read_to or self._intake.backfilled_to
        try:
            history = await self._read(types=_CALL_TYPES, order="asc", limit=1000, since=since)
        except _ReadFailed:
            for event_id in missing:
                self._looked_up.pop(event_id, None)
            return
        at = getattr(idle, "processed_at", None)
        if isinstance(at, datetime) and (self._read_to is None or at > self._read_to):
            self._read_to = at  # the read began after the idle: it returned every call made before it
        await self._intake.deliver(history)
        found = [i for i in missing if self._intake.seen(i)]
        while len(self._looked_up) > self._remember:
            self._looked_up.popitem(last=False)
        if found:
            self._observer.count("reconciled", len(found))
            logger.warning(
                "the event stream skipped %d tool call(s) the session waits on; read them from the history",
                len(found),
                extra=log_extra(self.session_id, tool_use_ids=found),
            )
        if len(found) < len(missing):
            logger.debug(
                "the session waits on events that are not custom tool calls: %s",
                ", ".join(i for i in missing if i not in found),
                extra=log_extra(self.session_id),
            )

    async def run(self) -> None:
        """Every `Timeouts.sweep` seconds, sweep the session if its stream delivered nothing meanwhile."""
        await self._intake.connected.wait()
        while not self._intake.stopped:
            activity = self._intake.activity
            await anyio.sleep(self._timeouts.sweep)
            if self._intake.activity == activity and not self._intake.stopped:
                await self.sweep()

    async def sweep(self) -> None:
        """Read the session's latest status from the history; deliver it if the stream skipped it, check an idle."""
        try:
            found = await self._read(types=_STATUS_TYPES, order="desc", limit=1, since=None)
        except _ReadFailed:
            return
        if not found:
            return
        latest = found[0]
        await self._intake.deliver([latest])
        if latest.type == "session.status_idle":
            await self.check(latest)

    async def _read(self, *, types: list[str], order: str, limit: int, since: datetime | None) -> list[Event]:
        params: dict[str, Any] = {"types": types, "order": order, "limit": limit, "timeout": self._timeouts.request}
        if since is not None:
            params["created_at_gte"] = since
        try:
            async with self._requests:
                if limit == 1:
                    page = await self._events.list(self.session_id, **params)
                    return list(page.data[:1])
                return [event async for event in self._events.list(self.session_id, **params)]
        except Exception as exc:
            kind = classify(exc)
            if kind is None:
                raise
            if kind is Failure.ACCESS:
                raise mapped(exc, f"session {self.session_id}") from exc
            logger.warning(
                "reconciling with the history failed (%s); retrying at the next idle or sweep",
                describe(exc),
                extra=log_extra(self.session_id),
            )
            raise _ReadFailed from exc
