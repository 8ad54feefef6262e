"""How a validation failure reads: one line per bad field, by path, with what was expected and what is allowed.

The model fixes its call from this text, so it names fields the way the model wrote them (`order.items[1].qty`),
says what was expected in plain words ("an integer", `one of "c", "f"`), hints at the intended key for a near miss,
and echoes only short values. pydantic's error codes, URLs and union-member tags never show.

Also here: the small JSON Schema navigation the validator and the text share (the schema is the Claude-ready one,
so error paths follow what the model was shown).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pydantic

__all__ = [
    "InputError",
    "Path",
    "Problem",
    "child_schema",
    "describe_validation_error",
    "did_you_mean",
    "echo",
    "object_branches",
    "problem_text",
    "pydantic_problems",
    "schema_types",
]

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
class Problem:
    path: Path
    message: str


def schema_types(node: Mapping[str, Any]) -> set[str]:
    """The JSON types a schema node accepts ("any" for an unconstrained node)."""
    found: set[str] = set()
    kind = node.get("type")
    if isinstance(kind, str):
        found.add(kind)
    elif isinstance(kind, list):
        found.update(kind)
    for branch in node.get("anyOf", []) + node.get("oneOf", []):
        found |= schema_types(branch)
    if not found and not any(key in node for key in ("enum", "const", "anyOf", "oneOf", "allOf", "not")):
        found.add("any")
    return found


def object_branches(node: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The object-shaped alternatives of a node (the node itself, or its anyOf/oneOf branches)."""
    if "properties" in node or node.get("type") == "object":
        return [node]
    branches: list[Mapping[str, Any]] = []
    for branch in node.get("anyOf", []) + node.get("oneOf", []):
        branches.extend(object_branches(branch))
    return branches


def _array_items(node: Mapping[str, Any]) -> Mapping[str, Any] | None:
    if isinstance(node.get("items"), Mapping):
        return node["items"]  # type: ignore[no-any-return]
    for branch in node.get("anyOf", []) + node.get("oneOf", []):
        items = _array_items(branch)
        if items is not None:
            return items
    return None


def child_schema(node: Mapping[str, Any] | None, key: str | int) -> Mapping[str, Any] | None:
    """The subschema at `key` below `node`, or None when the schema does not say."""
    if node is None:
        return None
    if isinstance(key, int):
        prefix = node.get("prefixItems")
        if isinstance(prefix, list) and key < len(prefix):
            return prefix[key]  # type: ignore[no-any-return]
        return _array_items(node)
    for branch in object_branches(node):
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


def echo(value: Any) -> str:
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


def _is_abbreviation(short: str, name: str) -> bool:
    """True when `short` abbreviates `name`: same first letter, its letters in order (qty -> quantity)."""
    short, name = short.lower(), name.lower()
    if len(short) < 2 or len(short) >= len(name) or short[0] != name[0]:
        return False
    rest = iter(name)
    return all(char in rest for char in short)


def did_you_mean(key: str, names: Sequence[str]) -> str:
    """A hint naming the declared field the model most likely meant, or ""."""
    lowered = {name.lower(): name for name in names}
    match = lowered.get(key.lower()) or next(iter(difflib.get_close_matches(key, names, n=1, cutoff=0.6)), None)
    if match is None:
        match = next((name for name in names if _is_abbreviation(key, name)), None)
    return f'; did you mean "{match}"?' if match else ""


def problem_text(tool_name: str, problems: list[Problem]) -> str:
    count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    lines = [f"Invalid input for tool {tool_name} ({count}):"]
    lines.extend(f"- {_render(problem.path)}: {problem.message}" for problem in problems)
    lines.append(f"Fix {'these fields' if len(problems) > 1 else 'this field'} and call {tool_name} again.")
    return "\n".join(lines)


def _clean_path(
    schema: Mapping[str, Any], loc: tuple[str | int, ...]
) -> tuple[Path, Mapping[str, Any] | None, tuple[tuple[Path, str], ...]]:
    """Split an error location into the field path, its schema node, and the union branches it went through.

    pydantic puts union member tags ('int', 'Cat', 'function-after[...]') and dict-key markers into locations;
    they are not fields, so they are dropped from the path and returned as (path so far, tag) pairs.
    """
    node: Mapping[str, Any] | None = schema
    path: list[str | int] = []
    tags: list[tuple[Path, str]] = []
    tagged: Mapping[str, Any] | None = None
    for part in loc:
        if part == "[key]":
            continue
        child = child_schema(node, part)
        is_union = node is not None and ("anyOf" in node or "oneOf" in node or isinstance(node.get("type"), list))
        if child is None and isinstance(part, str) and is_union and node is not tagged:
            tags.append((tuple(path), part))
            tagged = node  # one member tag per union; the next unknown name is a real key
            continue
        path.append(part)
        node = child
    return tuple(path), node, tuple(tags)


def _merge(messages: list[str]) -> str:
    """Join the messages of one field; "expected A; got X" + "expected B; got X" -> "expected A or B; got X"."""
    if len(messages) > 1 and all(m.startswith("expected ") and "; got " in m for m in messages):
        gots = {m.rsplit("; got ", 1)[1] for m in messages}
        if len(gots) == 1:
            expected = " or ".join(m.removeprefix("expected ").rsplit("; got ", 1)[0] for m in messages)
            return f"expected {expected}; got {gots.pop()}"
    return " or ".join(messages)


def _describe(error: Any, node: Mapping[str, Any] | None) -> str:
    kind: str = error["type"]
    got = echo(error.get("input"))
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


def pydantic_problems(exc: pydantic.ValidationError, schema: Mapping[str, Any], skip: set[Path]) -> list[Problem]:
    """One problem per field path from a pydantic error.

    For a union of objects, a branch whose discriminator (a `const` field) did not match is dropped when another
    branch matched it, so the model reads the errors of the variant it meant, not of every variant.
    """
    entries = []
    dead: set[tuple[Path, str]] = set()
    for error in exc.errors(include_url=False):
        path, node, tags = _clean_path(schema, error["loc"])
        entries.append((error, path, node, tags))
        if tags and error["type"] == "literal_error" and node is not None and "const" in node:
            dead.add(tags[-1])
    live = {tag for _, _, _, tags in entries for tag in tags if tag not in dead}
    by_path: dict[Path, list[str]] = {}
    for error, path, node, tags in entries:
        if any(tag in dead and any(other[0] == tag[0] for other in live) for tag in tags):
            continue
        unknown = error["type"] in ("extra_forbidden", "unexpected_keyword_argument")
        if unknown and path in skip:
            continue
        message = "unknown field" if unknown else _describe(error, node)
        by_path.setdefault(path, [])
        if message not in by_path[path]:
            by_path[path].append(message)
    return [Problem(path, _merge(messages)) for path, messages in by_path.items()]


def describe_validation_error(exc: pydantic.ValidationError, schema: Mapping[str, Any], tool_name: str) -> str:
    """The model-facing text for a pydantic error raised while validating a tool's input against `schema`."""
    return problem_text(tool_name, pydantic_problems(exc, schema, set()))
