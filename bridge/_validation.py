"""Validate a call's input and, when it is wrong, tell the model exactly how to fix it.

Validation is lax (pydantic's default coercions: "7" -> 7, 7 -> "7") with two repairs models often need: a list or
object parameter sent as a JSON string (`"[1, 2]"`) is parsed, and `null` for a parameter that has a default and
does not accept null means "use the default". Unknown keys are errors at every depth (pydantic would silently drop
them inside nested models), each with a "did you mean" when a declared name is close.

The error text names every bad field by path, what was expected and what is allowed, in a few plain lines: no
pydantic URLs, no error codes, and input values echoed only when short.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pydantic

from ._signature import CompiledSignature

__all__ = ["InputError", "InputValidator", "describe_validation_error"]

Path = tuple[str | int, ...]

_EXPECTED = {
    "int": "an integer",
    "float": "a number",
    "bool": "a boolean (true or false)",
    "string": "a string",
    "str": "a string",
    "list": "an array",
    "tuple": "an array",
    "set": "an array",
    "frozen_set": "an array",
    "dict": "an object",
    "model": "an object",
    "model_attributes": "an object",
    "dataclass": "an object",
    "typed_dict": "an object",
    "datetime": "a date-time string such as 2024-05-01T12:00:00Z",
    "date": "a date string such as 2024-05-01",
    "time": "a time string such as 12:00:00",
    "timedelta": "a duration (seconds, or ISO 8601 such as PT5M)",
    "uuid": "a UUID string",
    "decimal": "a decimal number",
    "none": "null",
    "bytes": "a string",
    "url": "a URL",
    "enum": "one of the allowed values",
}
_PREFIXES = sorted(_EXPECTED, key=len, reverse=True)
_MAX_ECHO = 40


class InputError(Exception):
    """The input does not fit the tool's schema; `str(exc)` is the text for the model."""


@dataclass(frozen=True)
class _Problem:
    path: Path
    message: str


def _types(node: Mapping[str, Any]) -> set[str]:
    """The JSON types a schema node accepts ("any" for an unconstrained node)."""
    found: set[str] = set()
    kind = node.get("type")
    if isinstance(kind, str):
        found.add(kind)
    elif isinstance(kind, list):
        found.update(kind)
    for branch in node.get("anyOf", []) + node.get("oneOf", []):
        found |= _types(branch)
    if not found and not any(key in node for key in ("enum", "const", "anyOf", "oneOf", "allOf", "not")):
        found.add("any")
    return found


def _object_branches(node: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The object-shaped alternatives of a node (the node itself, or its anyOf/oneOf branches)."""
    if "properties" in node or node.get("type") == "object":
        return [node]
    branches: list[Mapping[str, Any]] = []
    for branch in node.get("anyOf", []) + node.get("oneOf", []):
        branches.extend(_object_branches(branch))
    return branches


def _array_items(node: Mapping[str, Any]) -> Mapping[str, Any] | None:
    if isinstance(node.get("items"), Mapping):
        return node["items"]  # type: ignore[no-any-return]
    for branch in node.get("anyOf", []) + node.get("oneOf", []):
        items = _array_items(branch)
        if items is not None:
            return items
    return None


def _child(node: Mapping[str, Any] | None, key: str | int) -> Mapping[str, Any] | None:
    """The subschema at `key` below `node`, or None when the schema does not say."""
    if node is None:
        return None
    if isinstance(key, int):
        prefix = node.get("prefixItems")
        if isinstance(prefix, list) and key < len(prefix):
            return prefix[key]  # type: ignore[no-any-return]
        return _array_items(node)
    for branch in _object_branches(node):
        properties = branch.get("properties", {})
        if key in properties:
            return properties[key]  # type: ignore[no-any-return]
        extra = branch.get("additionalProperties")
        if isinstance(extra, Mapping):
            return extra
    return None


def _render(path: Path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "(input)"


def _echo(value: Any) -> str:
    """A short, safe rendering of what the model sent."""
    if isinstance(value, str):
        shown = value if len(value) <= _MAX_ECHO else value[: _MAX_ECHO - 1] + "…"
        return json.dumps(shown, ensure_ascii=False)
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        text = repr(value)
        return text if len(text) <= _MAX_ECHO else "a long number"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, Sequence):
        return f"an array of {len(value)} item{'s' if len(value) != 1 else ''}"
    return f"a {type(value).__name__}"


def _allowed(node: Mapping[str, Any] | None) -> list[Any] | None:
    if node is None:
        return None
    if isinstance(node.get("enum"), list):
        return list(node["enum"])
    if "const" in node:
        return [node["const"]]
    values: list[Any] = []
    for branch in node.get("anyOf", []):
        sub = _allowed(branch)
        if sub is None:
            return None
        values.extend(sub)
    return values or None


def _did_you_mean(key: str, names: Sequence[str]) -> str:
    lowered = {name.lower(): name for name in names}
    match = lowered.get(key.lower()) or next(iter(difflib.get_close_matches(key, names, n=1, cutoff=0.6)), None)
    return f'; did you mean "{match}"?' if match else ""


def _text(tool_name: str, problems: list[_Problem]) -> str:
    count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    lines = [f"Invalid input for tool {tool_name} ({count}):"]
    lines.extend(f"- {_render(problem.path)}: {problem.message}" for problem in problems)
    lines.append(f"Fix {'these fields' if len(problems) > 1 else 'this field'} and call {tool_name} again.")
    return "\n".join(lines)


def _clean_path(schema: Mapping[str, Any], loc: tuple[str | int, ...]) -> tuple[Path, Mapping[str, Any] | None]:
    """Drop pydantic's union-member and dict-key markers from an error location; find its schema node."""
    node: Mapping[str, Any] | None = schema
    path: list[str | int] = []
    for part in loc:
        if part == "[key]":
            continue
        child = _child(node, part)
        if child is None and isinstance(part, str) and node is not None and ("anyOf" in node or "oneOf" in node):
            continue  # a union member tag such as 'int' or 'function-after[...]'
        path.append(part)
        node = child
    return tuple(path), node


def _describe(error: Any, node: Mapping[str, Any] | None) -> str:
    kind: str = error["type"]
    got = _echo(error.get("input"))
    if kind == "missing":
        return "missing (required)"
    allowed = _allowed(node)
    if kind in ("literal_error", "enum") or (allowed and kind.endswith("_type")):
        values = ", ".join(json.dumps(v, ensure_ascii=False) for v in allowed or [])
        return f"expected one of {values}; got {got}" if values else f"not an allowed value; got {got}"
    if kind.endswith(("_type", "_parsing", "_from_float", "_parsing_size")) or kind == "none_required":
        for prefix in _PREFIXES:
            if kind.startswith(prefix + "_"):
                return f"expected {_EXPECTED[prefix]}; got {got}"
    message: str = error.get("msg", "invalid")
    message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    for prefix in ("Input should", "String should", "List should", "Dictionary should", "Tuple should"):
        if message.startswith(prefix):
            message = "should" + message[len(prefix) :]
    return f"{message}; got {got}" if kind not in ("value_error", "assertion_error") else message


def _pydantic_problems(exc: pydantic.ValidationError, schema: Mapping[str, Any], skip: set[Path]) -> list[_Problem]:
    """One problem per field path from a pydantic error (union alternatives joined with "or")."""
    by_path: dict[Path, list[str]] = {}
    for error in exc.errors(include_url=False):
        path, node = _clean_path(schema, error["loc"])
        if error["type"] == "extra_forbidden" and path in skip:
            continue
        message = _describe(error, node) if error["type"] != "extra_forbidden" else "unknown field"
        by_path.setdefault(path, [])
        if message not in by_path[path]:
            by_path[path].append(message)
    return [_Problem(path, " or ".join(messages)) for path, messages in by_path.items()]


def describe_validation_error(exc: pydantic.ValidationError, schema: Mapping[str, Any], tool_name: str) -> str:
    """The model-facing text for a pydantic error raised while validating a tool's input against `schema`."""
    return _text(tool_name, _pydantic_problems(exc, schema, set()))


class InputValidator:
    """Validates raw tool input against a compiled signature and its Claude-ready schema."""

    def __init__(self, compiled: CompiledSignature, schema: Mapping[str, Any]) -> None:
        self.compiled = compiled
        self.schema = schema
        properties: Mapping[str, Any] = schema.get("properties", {})
        self._repairable = [
            name
            for name, node in properties.items()
            if _types(node) & {"array", "object"} and not _types(node) & {"string", "any"}
        ]
        self._null_means_default = [
            p.name
            for p in compiled.params
            if p.has_default and not _types(properties.get(p.name, {})) & {"null", "any"}
        ]

    def _repair(self, data: dict[str, Any]) -> None:
        for name in self._repairable:
            value = data.get(name)
            if isinstance(value, str) and value.lstrip()[:1] in ("[", "{"):
                try:
                    parsed = json.loads(value)
                except ValueError:
                    continue
                if isinstance(parsed, list | dict):
                    data[name] = parsed
        for name in self._null_means_default:
            if name in data and data[name] is None:
                del data[name]

    def _unknown_keys(self, value: Any, node: Mapping[str, Any] | None, path: Path, out: list[_Problem]) -> None:
        if node is None:
            return
        if isinstance(value, Mapping):
            branches = _object_branches(node)
            if not branches:
                return
            if all(branch.get("additionalProperties") is False for branch in branches):
                names = list(dict.fromkeys(name for branch in branches for name in branch.get("properties", {})))
                for key in value:
                    if key not in names:
                        hint = _did_you_mean(str(key), names) or "."
                        allowed = f" Allowed fields: {', '.join(names)}." if 0 < len(names) <= 20 else ""
                        out.append(_Problem((*path, str(key)), f"unknown field{hint}{allowed}"))
            for key, item in value.items():
                self._unknown_keys(item, _child(node, str(key)), (*path, str(key)), out)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self._unknown_keys(item, _child(node, index), (*path, index), out)

    def validate(self, data: object, tool_name: str) -> pydantic.BaseModel:
        """The validated input model.

        Args:
            data: The call's input, as decoded from the event.
            tool_name: The name the model called the tool by (for the error text).

        Raises:
            InputError: With the text the model should read.
        """
        if not isinstance(data, Mapping):
            raise InputError(_text(tool_name, [_Problem((), f"the input must be a JSON object; got {_echo(data)}")]))
        raw = dict(data)
        self._repair(raw)
        problems: list[_Problem] = []
        self._unknown_keys(raw, self.schema, (), problems)
        reported = {problem.path for problem in problems}
        try:
            validated = self.compiled.model.model_validate(raw)
        except pydantic.ValidationError as exc:
            problems.extend(_pydantic_problems(exc, self.schema, reported))
            raise InputError(_text(tool_name, problems)) from None
        if problems:
            raise InputError(_text(tool_name, problems))
        return validated
