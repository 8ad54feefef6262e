"""Planning a history batch: a call answered, interrupted or ended later in the same batch is never started."""

from __future__ import annotations

from typing import Any

from bridge.runtime._intake import parse_event
from bridge.runtime._plan import Plan

T = "2026-05-01T12:00:00.000001Z"


def use(i: str, thread: str | None = None) -> Any:
    extra = {"session_thread_id": thread} if thread else {}
    return parse_event({"id": i, "type": "agent.custom_tool_use", "processed_at": T, "name": "t", "input": {}, **extra})


def echo(i: str) -> Any:
    return parse_event({"id": f"r{i}", "type": "user.custom_tool_result", "custom_tool_use_id": i, "processed_at": T})


def idle(*ids: str, thread: str | None = None) -> Any:
    reason = {"type": "requires_action", "event_ids": list(ids)} if ids else {"type": "end_turn"}
    if thread:
        return parse_event(
            {
                "id": "i",
                "type": "session.thread_status_idle",
                "processed_at": T,
                "session_thread_id": thread,
                "agent_name": "a",
                "stop_reason": reason,
            }
        )
    return parse_event({"id": "i", "type": "session.status_idle", "processed_at": T, "stop_reason": reason})


def interrupt(thread: str | None = None) -> Any:
    return parse_event({"id": "x", "type": "user.interrupt", "processed_at": T, "session_thread_id": thread})


def test_answered_calls_are_known_with_their_echo() -> None:
    """A tool use followed by its result in the same batch is answered, with the echo's id."""
    plan = Plan.of([use("a"), use("b"), idle("a", "b"), echo("a")])
    assert plan.answered == {"a": "ra"}
    assert plan.gone == set()


def test_interrupted_then_idle_not_listing_the_call_is_gone() -> None:
    """An interrupt followed by an end_turn idle means nobody waits for the call any more."""
    plan = Plan.of([use("a"), idle("a"), interrupt(), idle()])
    assert plan.gone == {"a"}
    assert plan.interrupted == set()


def test_interrupt_without_a_later_idle_leaves_the_call_parked() -> None:
    """After an interrupt with no idle yet, the call is interrupted (parked, not run), not yet gone."""
    plan = Plan.of([use("a"), use("b", thread="t"), interrupt(thread="t")])
    assert plan.interrupted == {"b"}
    assert plan.gone == set()


def test_an_idle_listing_an_interrupted_call_revives_it() -> None:
    """If the session still lists the call as blocking after the interrupt, it must be answered."""
    plan = Plan.of([use("a"), interrupt(), idle("a")])
    assert plan.interrupted == set()
    assert plan.gone == set()


def test_thread_and_session_termination_end_their_calls() -> None:
    """A terminated thread ends only its calls; a terminated session ends all."""
    thread_end = parse_event(
        {
            "id": "e",
            "type": "session.thread_status_terminated",
            "processed_at": T,
            "session_thread_id": "t",
            "agent_name": "a",
        }
    )
    assert Plan.of([use("a"), use("b", thread="t"), thread_end]).gone == {"b"}
    terminated = parse_event({"id": "z", "type": "session.status_terminated", "processed_at": T})
    assert Plan.of([use("a"), use("b", thread="t"), terminated]).gone == {"a", "b"}


def test_a_thread_idle_decides_only_that_threads_interrupted_calls() -> None:
    """A sub-agent's end_turn idle drops its own interrupted calls and leaves the primary's untouched."""
    plan = Plan.of([use("a"), use("b", thread="t"), interrupt(), idle(thread="t")])
    assert plan.gone == {"b"}
    assert plan.interrupted == {"a"}
