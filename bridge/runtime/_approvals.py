"""`Approvals`: the calls parked until a person (or an app) decides, and the ways decisions come in.

A call whose policy says "ask" is journaled as `awaiting_approval` (so it survives a restart) and its task waits here
for one of: `approve()` / `deny()` from the app (the HTTP endpoint of `bridge run` calls these too), a decision left
in the journal's inbox by another process (`bridge approvals approve ...`, read by `poll()` every
`ApprovalSettings.poll_interval` seconds while anything is parked), its deadline (`ApprovalSettings.timeout`, kept in
the journal, so a restart does not extend it), or the session no longer waiting (an interrupt withdraws it).

The executor (`_executor.py`) parks and unparks calls and journals every decision with who made it and when; this
object only hands decisions to the parked calls and tells listeners about new ones. All of it runs on the event loop:
call `approve()` and `deny()` from the loop's thread.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .._errors import ConfigError
from ..journal import ApprovalOutcome, ApprovalRecord, InboxDecision, Journal
from ._limits import _changed_repr

__all__ = [
    "ApprovalListener",
    "ApprovalSettings",
    "Approvals",
    "PendingApproval",
    "Waiter",
    "denial_message",
    "denial_text",
]

logger = logging.getLogger("bridge.approvals")

_STASH = 10_000  # inbox decisions kept for calls not parked (yet): a restarted bridge parks them again later


@dataclass(frozen=True, repr=False)
class ApprovalSettings:
    """How long calls wait for a decision, and what happens when nobody decides.

    Args:
        timeout: Seconds a parked call waits for a decision (counted from when it was first parked, across
            restarts).
        on_timeout: `"deny"` (default) answers the call with an `is_error` "denied by timeout" result; `"allow"`
            runs it.
        poll_interval: Seconds between reads of the journal's inbox, for decisions made by another process
            (`bridge approvals approve`), while any call is parked. Nothing is read while none is.
    """

    timeout: float = 3600.0
    on_timeout: Literal["deny", "allow"] = "deny"
    poll_interval: float = 1.0

    def __post_init__(self) -> None:
        problems = [
            f"ApprovalSettings.{name} must be a positive number of seconds, got {value!r}"
            for name, value in (("timeout", self.timeout), ("poll_interval", self.poll_interval))
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf
        ]
        if self.on_timeout not in ("deny", "allow"):
            problems.append(f"ApprovalSettings.on_timeout must be 'deny' or 'allow', got {self.on_timeout!r}")
        if problems:
            raise ConfigError(problems)

    def __repr__(self) -> str:
        return _changed_repr(self)


@dataclass(frozen=True)
class PendingApproval:
    """A call waiting for a decision.

    Attributes:
        call_id: The `agent.custom_tool_use` event id: approve or deny the call by it.
        session_id: The session the call belongs to.
        tool_name: The tool the agent called.
        input: The call's input as the agent sent it (read-only).
        thread_id: The sub-agent thread that made the call, if any.
        requested_at: When it was first parked (seconds since the epoch).
        deadline: When it times out (seconds since the epoch).
    """

    call_id: str
    session_id: str
    tool_name: str
    input: Mapping[str, Any]
    thread_id: str | None
    requested_at: float
    deadline: float

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the HTTP endpoint's format)."""
        return {**dataclasses.asdict(self), "input": dict(self.input)}


ApprovalListener = Callable[[PendingApproval], None]


@dataclass(eq=False)
class Waiter:
    """One parked call: the executor waits on `event`; the first decision sets `decision`."""

    pending: PendingApproval
    event: anyio.Event = dataclasses.field(default_factory=anyio.Event)
    decision: ApprovalRecord | None = None

    def decide(self, outcome: ApprovalOutcome, by: str, reason: str | None) -> bool:
        if self.decision is not None:
            return False
        pending = self.pending
        self.decision = ApprovalRecord(outcome, pending.requested_at, pending.deadline, by, reason, time.time())
        self.event.set()
        return True


class Approvals:
    """The calls waiting for approval in this bridge, and the way to decide them: `bridge.approvals`.

    ```python
    async with bridge.approvals.subscribe() as requests:
        async for pending in requests:
            if await ask_a_human(pending):
                bridge.approvals.approve(pending.call_id, by="alice")
            else:
                bridge.approvals.deny(pending.call_id, "not during the freeze", by="alice")
    ```

    Args:
        journal: The bridge's journal (its inbox carries decisions made by other processes).
        settings: Timeout, what a timeout means, and the inbox polling interval.
    """

    def __init__(self, journal: Journal, settings: ApprovalSettings | None = None) -> None:
        self.settings = settings or ApprovalSettings()
        self._journal = journal
        self._waiters: dict[str, Waiter] = {}
        self._listeners: list[ApprovalListener] = []
        self._streams: list[MemoryObjectSendStream[PendingApproval]] = []
        self._stash: OrderedDict[str, InboxDecision] = OrderedDict()
        self._seen = 0  # the last inbox sequence number read
        self._busy = anyio.Event()  # set while any call is parked: the poll runs

    def __repr__(self) -> str:
        return f"Approvals(pending={len(self._waiters)}, {self.settings!r})"

    def __len__(self) -> int:
        return len(self._waiters)

    # -- for the app -----------------------------------------------------------------------------------------------

    def pending(self) -> list[PendingApproval]:
        """The calls waiting for a decision now, oldest first."""
        return sorted((w.pending for w in self._waiters.values()), key=lambda p: p.requested_at)

    def get(self, call_id: str) -> PendingApproval | None:
        """The waiting call with this id, or None (decided, withdrawn, timed out, or never asked)."""
        waiter = self._waiters.get(call_id)
        return None if waiter is None else waiter.pending

    def approve(self, call_id: str, *, by: str = "app") -> bool:
        """Let the call run. Returns False when it is not waiting (any more): the first decision wins.

        Args:
            call_id: The call's id (`PendingApproval.call_id`).
            by: Who decided; kept in the journal.
        """
        waiter = self._waiters.get(call_id)
        return waiter is not None and waiter.decide(ApprovalOutcome.APPROVED, by, None)

    def deny(self, call_id: str, reason: str | None = None, *, by: str = "app") -> bool:
        """Answer the call with an `is_error` result, "denied by <by>: <reason>"; it does not run. Returns False when
        it is not waiting (any more).

        Args:
            call_id: The call's id (`PendingApproval.call_id`).
            reason: Why; the model reads it, so say what it may do instead.
            by: Who decided; kept in the journal and shown to the model.
        """
        waiter = self._waiters.get(call_id)
        return waiter is not None and waiter.decide(ApprovalOutcome.DENIED, by, reason)

    def add_listener(self, listener: ApprovalListener) -> Callable[[], None]:
        """Call `listener` (on the event loop; it must be quick) with each call parked from now on; returns a function
        that unsubscribes."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    @asynccontextmanager
    async def subscribe(self, buffer: int = 100) -> AsyncIterator[MemoryObjectReceiveStream[PendingApproval]]:
        """The calls waiting now, then each one parked later, as an async iterator.

        A subscriber that falls `buffer` requests behind misses requests (logged) rather than holding calls up;
        `pending()` always has the full list.
        """
        send, receive = anyio.create_memory_object_stream[PendingApproval](max(buffer, len(self._waiters)))
        for pending in self.pending():
            send.send_nowait(pending)
        self._streams.append(send)
        try:
            async with receive:
                yield receive
        finally:
            self._streams.remove(send)
            send.close()

    # -- for the executor ------------------------------------------------------------------------------------------

    def park(self, pending: PendingApproval) -> Waiter:
        """Register a parked call; a decision already in the inbox for it is applied at once."""
        waiter = self._waiters[pending.call_id] = Waiter(pending)
        self._busy.set()
        if (stashed := self._stash.pop(pending.call_id, None)) is not None:
            self._apply(stashed)
        for listener in list(self._listeners):
            try:
                listener(pending)
            except Exception:
                logger.exception("approval listener %r raised; ignored", listener)
        for stream in list(self._streams):
            try:
                stream.send_nowait(pending)
            except anyio.WouldBlock:
                logger.warning("an approvals subscriber fell behind; it missed call %s", pending.call_id)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass
        return waiter

    def unpark(self, waiter: Waiter) -> None:
        if self._waiters.get(waiter.pending.call_id) is waiter:
            del self._waiters[waiter.pending.call_id]
        if not self._waiters:
            self._busy = anyio.Event()

    async def poll(self) -> None:
        """Apply decisions other processes leave in the journal's inbox, while any call is parked; until cancelled."""
        while True:
            await self._busy.wait()
            try:
                found = await self._journal.decisions(self._seen)
            except Exception:
                logger.exception("reading approval decisions from the journal failed; retrying")
                found = []
            for decision in found:
                self._seen = max(self._seen, decision.seq)
                self._apply(decision)
            await anyio.sleep(self.settings.poll_interval)

    def _apply(self, decision: InboxDecision) -> None:
        waiter = self._waiters.get(decision.tool_use_id)
        if waiter is None or (decision.session_id is not None and decision.session_id != waiter.pending.session_id):
            self._stash[decision.tool_use_id] = decision  # its call may be parked again after a restart
            if len(self._stash) > _STASH:
                self._stash.popitem(last=False)
            return
        outcome = ApprovalOutcome.APPROVED if decision.approve else ApprovalOutcome.DENIED
        if waiter.decide(outcome, decision.by, decision.reason):
            logger.info("call %s %s by %s (from the journal's inbox)", decision.tool_use_id, outcome, decision.by)


def denial_text(decision: ApprovalRecord) -> str:
    """What the model reads about a call that was not allowed to run."""
    return denial_message(decision.by, decision.reason)


def denial_message(by: str | None, reason: str | None) -> str:
    """The denial text for a decision by `by` (default "policy") for `reason`; `bridge mcp serve` sends it too."""
    why = f": {reason}" if reason else ""
    return f"Denied by {by or 'policy'}{why}. The call did not run."
