"""What the emulator does where the real API's behaviour is unknown: every such choice is a field here.

The SDK cannot tell us how the real Managed Agents API answers a duplicate tool result, a result after an interrupt,
an agent version conflict or an oversized page, nor its keep-alive cadence (`managed-agents-wire.md`, "What the SDK
cannot tell us"). The emulator picks a plausible default for each and lets tests choose the other answer, so the
bridge can be tested against both until contract tests against the real API settle them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Behavior"]


@dataclass(frozen=True)
class Behavior:
    """The emulator's answers to the real API's unknowns (and a few fidelity switches).

    Attributes:
        duplicate_results: A second `user.custom_tool_result` for an already answered call: `"accept"` stores and
            echoes it (the default; the SDK gives no hint, and accepting makes duplicates visible in history), or
            `"reject"` answers `duplicate_result_status`. Either way the invariant checker counts it.
        duplicate_result_status: Status used when `duplicate_results="reject"` (400, final for the SDK).
        late_results: A result for a call that was interrupted or whose thread or session ended: `"accept"` (stored,
            counted as late) or `"reject"` (400).
        unknown_result_status: Status for a result naming no `agent.custom_tool_use` of the session (400).
        terminated_post_status: Status for any event posted to a terminated session (400).
        version_conflict_status: Status for `agents.update(version=N)` when N is stale. 409 is the natural guess,
            but the SDK retries 409 twice before raising; set 400 to make it final.
        max_events_limit: Largest `limit` accepted by `GET /events` (the SDK runner sends 1000).
        default_events_limit: `limit` of `GET /events` when the caller sends none.
        max_list_limit: Largest `limit` for agents, environments, sessions and versions lists.
        default_list_limit: Their default `limit` (20, as the SDK docstrings say).
        ping_interval: Seconds between `event: ping` keep-alives on an idle stream (the real cadence is unknown;
            the SDK's read timeout is 600 s).
        terminated_stream: What a stream opened on a terminated session does: `"close"` at once (default) or
            `"hang"` (stays open with pings, as an API that never closes it would).
        emit_spans: Emit `span.model_request_start/end` around each model step, as the real API does.
        require_beta_header: Answer 400 unless `anthropic-beta` names `managed-agents-2026-04-01`.
        interrupt_stop_reason: Stop reason of the idle that follows a `user.interrupt` (`end_turn`).
        interrupted_calls: What a `user.interrupt` (of the session, or of one thread) does to the custom tool calls
            the agent is blocked on: `"abandon"` them (the default: the turn, or the thread, stops and a result
            posted later is late), or `"keep"` them pending: the agent was already paused on them, so the session
            (and the thread) idles again with `requires_action` listing them, and the turn resumes once they are
            answered. Which one the real API does is unknown; a client must handle both.
        strict_query: Answer 400 for a query parameter the SDK does not send on that route (a third-party report says
            the real API rejects e.g. `after_id` on `GET /events`), so a client cannot rely on one that is ignored.
    """

    duplicate_results: Literal["accept", "reject"] = "accept"
    duplicate_result_status: int = 400
    late_results: Literal["accept", "reject"] = "accept"
    unknown_result_status: int = 400
    terminated_post_status: int = 400
    version_conflict_status: int = 409
    max_events_limit: int = 1000
    default_events_limit: int = 1000
    max_list_limit: int = 100
    default_list_limit: int = 20
    ping_interval: float = 15.0
    terminated_stream: Literal["close", "hang"] = "close"
    emit_spans: bool = True
    require_beta_header: bool = True
    interrupt_stop_reason: Literal["end_turn", "retries_exhausted"] = "end_turn"
    interrupted_calls: Literal["abandon", "keep"] = "abandon"
    strict_query: bool = True
