"""Strict validation against the SDK's own pydantic models, for what clients send and what tests receive.

The SDK's models accept unknown fields (`extra="allow"`) and parse unknown event types as the first union member, so
a plain parse proves little. `validate_event` picks the model by `type`, runs `model_validate` (real validation, not
`construct`) and then rejects any field the model does not declare, at any depth. The emulator uses the same check to
answer malformed posted events with the 400 the real API would send.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar, get_args, get_origin

import pydantic
from anthropic._models import BaseModel
from anthropic.types.beta.sessions.beta_managed_agents_session_event import BetaManagedAgentsSessionEvent
from anthropic.types.beta.sessions.beta_managed_agents_stream_session_events import (
    BetaManagedAgentsStreamSessionEvents,
)

from ._util import invalid

__all__ = [
    "EVENT_MODELS",
    "LISTED_EVENT_TYPES",
    "SENDABLE_EVENT_TYPES",
    "check_sent_events",
    "validate_event",
    "validate_model",
]

Json = dict[str, Any]


def _by_type(union: Any) -> dict[str, type[BaseModel]]:
    (members, *_) = get_args(union)
    models: dict[str, type[BaseModel]] = {}
    for model in get_args(members):
        annotation = model.model_fields["type"].annotation
        if get_origin(annotation) is Literal:
            for value in get_args(annotation):
                models[value] = model
    return models


EVENT_MODELS: dict[str, type[BaseModel]] = _by_type(BetaManagedAgentsStreamSessionEvents)
"""Every event type that can arrive on a session stream, with its SDK model."""
LISTED_EVENT_TYPES: frozenset[str] = frozenset(_by_type(BetaManagedAgentsSessionEvent))
"""The event types that can appear in `GET /events` (the stream adds only the preview types)."""
SENDABLE_EVENT_TYPES = frozenset(
    {
        "user.message",
        "user.interrupt",
        "user.tool_confirmation",
        "user.custom_tool_result",
        "user.tool_result",
        "user.define_outcome",
        "system.message",
    }
)
_REQUIRED_SENT = {
    "user.message": ("content",),
    "user.tool_confirmation": ("tool_use_id", "result"),
    "user.custom_tool_result": ("custom_tool_use_id",),
    "user.tool_result": ("tool_use_id",),
    "user.define_outcome": ("description", "rubric"),
    "system.message": ("content",),
}


def _extras(value: Any, path: str) -> list[str]:
    if isinstance(value, pydantic.BaseModel):
        found = [f"{path}.{key}" for key in (value.model_extra or {})]
        for name in type(value).model_fields:
            found += _extras(getattr(value, name), f"{path}.{name}")
        return found
    if isinstance(value, list | tuple):
        return [e for i, item in enumerate(value) for e in _extras(item, f"{path}[{i}]")]
    if isinstance(value, dict):
        return [e for k, item in value.items() for e in _extras(item, f"{path}.{k}")]
    return []


M = TypeVar("M", bound=pydantic.BaseModel)


def validate_model(model: type[M], data: Any) -> M:
    """Validate `data` strictly against an SDK model: `model_validate`, then no undeclared field at any depth.

    Raises:
        ValueError: Validation fails (`pydantic.ValidationError` is a `ValueError`) or an undeclared field is present.
    """
    parsed = model.model_validate(data)
    extras = _extras(parsed, model.__name__)
    if extras:
        raise ValueError(f"fields unknown to the SDK model {model.__name__}: {', '.join(extras)}")
    return parsed


def validate_event(data: Json) -> BaseModel:
    """Validate one event strictly against the SDK model for its `type` and return the parsed model.

    Raises:
        ValueError: The type is unknown to the SDK, validation fails, or a field the model does not declare is present.
    """
    model = EVENT_MODELS.get(data.get("type", ""))
    if model is None:
        raise ValueError(f"event type {data.get('type')!r} is unknown to the SDK")
    return validate_model(model, data)


def check_sent_events(events: Any, *, allowed: frozenset[str] = SENDABLE_EVENT_TYPES) -> list[Json]:
    """Check a POSTed `events` array as the API would, answering a 400 for the first bad entry."""
    if not isinstance(events, list) or not events:
        raise invalid("events: expected a non-empty list")
    checked = []
    for index, event in enumerate(events):
        if not isinstance(event, dict) or event.get("type") not in allowed:
            kind = event.get("type") if isinstance(event, dict) else None
            raise invalid(f"events[{index}].type: {kind!r} cannot be sent; expected one of {sorted(allowed)}")
        for field in _REQUIRED_SENT.get(event["type"], ()):
            if field not in event:
                raise invalid(f"events[{index}].{field}: field required")
        if event["type"] == "user.tool_confirmation" and event["result"] not in ("allow", "deny"):
            raise invalid(f"events[{index}].result: expected 'allow' or 'deny'")
        stored = {**event, "id": "sevt_check", "processed_at": "2026-01-01T00:00:00Z"}
        try:
            validate_event(stored)
        except (ValueError, pydantic.ValidationError) as exc:
            raise invalid(f"events[{index}]: {exc}") from None
        checked.append(event)
    return checked
