"""Session events, typed by the SDK's own models: the runtime matches on these classes, never on `type` strings.

`Event` is the SDK's union of every event a session's history or stream carries. The names below are the members
the runtime acts on; a mistyped one fails at import and under mypy, which a `.type == "agent.custom_tool_usee"`
comparison never would.
"""

from __future__ import annotations

import typing
from typing import Any, TypeAlias

import pydantic
from anthropic.types.beta import BetaManagedAgentsSessionUpdatedEvent as Updated
from anthropic.types.beta.sessions import BetaManagedAgentsAgentCustomToolUseEvent as ToolUse
from anthropic.types.beta.sessions import BetaManagedAgentsAgentMessageEvent as AgentMessage
from anthropic.types.beta.sessions import BetaManagedAgentsSessionDeletedEvent as Deleted
from anthropic.types.beta.sessions import BetaManagedAgentsSessionEvent
from anthropic.types.beta.sessions import BetaManagedAgentsSessionRequiresAction as RequiresAction
from anthropic.types.beta.sessions import BetaManagedAgentsSessionStatusIdleEvent as Idle
from anthropic.types.beta.sessions import BetaManagedAgentsSessionStatusRunningEvent as Running
from anthropic.types.beta.sessions import BetaManagedAgentsSessionStatusTerminatedEvent as Terminated
from anthropic.types.beta.sessions import BetaManagedAgentsSessionThreadStatusIdleEvent as ThreadIdle
from anthropic.types.beta.sessions import BetaManagedAgentsSessionThreadStatusTerminatedEvent as ThreadTerminated
from anthropic.types.beta.sessions import BetaManagedAgentsTextBlock as TextBlock
from anthropic.types.beta.sessions import BetaManagedAgentsUserCustomToolResultEvent as ToolResult
from anthropic.types.beta.sessions import BetaManagedAgentsUserInterruptEvent as Interrupt
from anthropic.types.beta.sessions import BetaManagedAgentsUserMessageEvent as UserMessage

__all__ = [
    "AgentMessage",
    "Deleted",
    "Event",
    "Idle",
    "Interrupt",
    "RequiresAction",
    "Running",
    "Terminated",
    "TextBlock",
    "ThreadIdle",
    "ThreadTerminated",
    "ToolResult",
    "ToolUse",
    "Updated",
    "UserMessage",
    "blocked_on",
    "parse_event",
    "type_name",
]

Event: TypeAlias = BetaManagedAgentsSessionEvent
"""Any session event (one of the SDK's `BetaManagedAgents...Event` models)."""


def _event_models() -> dict[str, type[pydantic.BaseModel]]:
    models: dict[str, type[pydantic.BaseModel]] = {}
    for model in typing.get_args(typing.get_args(BetaManagedAgentsSessionEvent)[0]):
        for literal in typing.get_args(model.model_fields["type"].annotation):
            models[literal] = model
    return models


_MODELS = _event_models()


def type_name(model: type[pydantic.BaseModel]) -> str:
    """The wire `type` of an event class (for `types[]` filters of history reads), read from the SDK's model."""
    (literal,) = typing.get_args(model.model_fields["type"].annotation)
    return str(literal)


def parse_event(data: Any) -> Event | None:
    """The typed SDK model of one event's JSON, or None for an unknown type or a shape the SDK's model rejects."""
    if not isinstance(data, dict):
        return None
    model = _MODELS.get(data.get("type", ""))
    if model is None:
        return None
    try:
        return typing.cast(Event, model.model_validate(data))
    except pydantic.ValidationError:
        return None


def blocked_on(idle: Idle | ThreadIdle) -> list[str]:
    """The event ids an idle says the session (or thread) is blocked on; empty unless `requires_action`."""
    match idle.stop_reason:
        case RequiresAction(event_ids=ids):
            return list(ids or [])
        case _:
            return []
