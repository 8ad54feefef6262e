"""Input model -> Claude-ready JSON Schema, plus the lint report of what had to change.

pydantic's schema is correct but not what a model should read: it has auto titles, `$defs` + `$ref` indirection
that some clients strip, and nested objects left open. The Claude-ready form:

- root `type: object`; `$ref`s inlined (the tool's description of a field wins over the referenced type's);
- no `title` anywhere; every structured object closed with `additionalProperties: false` (a `dict[str, T]` stays a
  map, `**kwargs` keeps the object open);
- `anyOf` of bare types folded into a `type` list (`["string", "null"]`);
- with `strict=True`, only the strict-mode subset: every other keyword moves into the description and is listed in
  the lint report, while input validation still enforces the full constraints.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pydantic
from pydantic.json_schema import GenerateJsonSchema, PydanticJsonSchemaWarning
from pydantic_core import core_schema

from .._errors import DefinitionError
from ._budget import dumps
from ._lint import LintIssue

__all__ = ["SCHEMA_BUDGET", "build_schema", "build_schema_from_json", "strict_subset", "walk"]

SCHEMA_BUDGET = 64_000
"""Largest input schema (JSON characters) after inlining; past it the types need simplifying."""

_STRICT_FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "uri", "ipv4", "ipv6", "uuid"}
)
_STRICT_KEYS = frozenset(
    {"type", "anyOf", "allOf", "enum", "const", "description", "properties", "additionalProperties", "required"}
)
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "dependentSchemas")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_VALUES = ("items", "additionalProperties", "not", "contains", "propertyNames", "if", "then", "else")


class _Generator(GenerateJsonSchema):
    """pydantic's generator, with a pattern on decimal strings so the schema does not admit any string."""

    def get_decimal_pattern(self, schema: core_schema.DecimalSchema) -> str | None:
        return self.build_decimal_pattern(schema)


def walk(node: Any, fn: Callable[[dict[str, Any], str], dict[str, Any]], path: str = "") -> Any:
    """Rebuild a schema bottom-up, calling `fn(node, path)` on every subschema (never on `default`/`enum` data)."""
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: walk(sub, fn, f"{path}.{name}".lstrip(".")) for name, sub in value.items()}
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [walk(sub, fn, path) for sub in value]
        elif key in _SCHEMA_VALUES:
            out[key] = walk(value, fn, f"{path}[]" if key == "items" else path)
        else:
            out[key] = value
    return fn(out, path)


class _Inliner:
    """Replaces `$ref`s by their definitions, refusing recursion and runaway growth."""

    def __init__(self, defs: dict[str, Any], tool_name: str) -> None:
        self.defs = defs
        self.tool_name = tool_name
        self.nodes = 0

    def inline(self, node: Any, stack: tuple[str, ...] = ()) -> Any:
        if isinstance(node, list):
            return [self.inline(item, stack) for item in node]
        if not isinstance(node, dict):
            return node
        self.nodes += 1
        if self.nodes > SCHEMA_BUDGET // 4:
            raise DefinitionError(
                f"tool {self.tool_name!r}: the input schema grows past {SCHEMA_BUDGET:,} characters once shared "
                "types are inlined. Simplify the parameter types (fewer nested models, or pass a large structure "
                "as `dict[str, Any]`)."
            )
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(("#/$defs/", "#/definitions/")):
            name = ref.rsplit("/", 1)[1]
            if name not in self.defs:
                raise DefinitionError(f"tool {self.tool_name!r}: the schema refers to {ref!r}, which is not defined")
            if name in stack:
                cycle = " -> ".join((*stack[stack.index(name) :], name))
                raise DefinitionError(
                    f"tool {self.tool_name!r}: {name} is recursive ({cycle}), and a tool schema must be finite "
                    "once inlined. Bound the depth with a separate non-recursive model for the inner level, or "
                    "accept that part as `dict[str, Any]` and validate it in the tool."
                )
            target = self.inline(self.defs[name], (*stack, name))
            siblings = {key: self.inline(value, stack) for key, value in node.items() if key != "$ref"}
            return {**target, **siblings}
        # Values under data keywords are not schemas, but walking them is harmless: `$ref` never occurs in data
        # that pydantic emits for defaults and enums of JSON values.
        return {key: self.inline(value, stack) for key, value in node.items() if key != "$defs"}


_KEY_ORDER = {
    key: index
    for index, key in enumerate(
        (
            "type",
            "description",
            "enum",
            "const",
            "format",
            "anyOf",
            "items",
            "properties",
            "required",
            "additionalProperties",
            "default",
        )
    )
}


def _ordered(node: dict[str, Any]) -> dict[str, Any]:
    """Keys in a fixed, readable order (type and description first), so definitions diff cleanly."""
    return dict(sorted(node.items(), key=lambda item: _KEY_ORDER.get(item[0], len(_KEY_ORDER))))


def _claude_ready(node: dict[str, Any], path: str) -> dict[str, Any]:
    """Drop titles, close structured objects, fold `anyOf` of bare types."""
    node.pop("title", None)
    node.pop("discriminator", None)  # OpenAPI, not JSON Schema; its mapping points at $defs that are gone
    if "oneOf" in node and "anyOf" not in node:
        node["anyOf"] = node.pop("oneOf")
    if "properties" in node:
        node.setdefault("type", "object")
        node.setdefault("additionalProperties", False)
    elif node.get("type") == "object":
        node.setdefault("additionalProperties", True)
    branches = node.get("anyOf")
    if isinstance(branches, list) and branches and all(set(b) == {"type"} for b in branches):
        types: list[str] = []
        for branch in branches:
            for kind in branch["type"] if isinstance(branch["type"], list) else [branch["type"]]:
                if kind not in types:
                    types.append(kind)
        del node["anyOf"]
        node["type"] = types[0] if len(types) == 1 else types
    return _ordered(node)


def build_schema(
    model: type[pydantic.BaseModel], tool_name: str, extras: pydantic.TypeAdapter[Any] | None = None
) -> tuple[dict[str, Any], list[LintIssue]]:
    """The Claude-ready (non-strict) input schema of a generated input model.

    Args:
        model: The generated input model.
        tool_name: For error messages.
        extras: The `dict[str, T]` adapter for `**kwargs`; its value schema becomes `additionalProperties`.

    Raises:
        DefinitionError: A type has no JSON Schema, a model is recursive, or the schema is too large.
    """
    issues: list[LintIssue] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PydanticJsonSchemaWarning)
        try:
            raw = model.model_json_schema(mode="validation", schema_generator=_Generator)
            if extras is not None:
                extra_schema = extras.json_schema(mode="validation", schema_generator=_Generator)
                raw["additionalProperties"] = extra_schema.get("additionalProperties", True)
                raw.setdefault("$defs", {}).update(extra_schema.get("$defs", {}))
        except pydantic.PydanticInvalidForJsonSchema as exc:
            raise DefinitionError(
                f"tool {tool_name!r}: a parameter type has no JSON Schema ({exc.message}). Use JSON-friendly types "
                "(str, int, float, bool, list, dict, Literal, Enum, datetime, pydantic models, dataclasses)."
            ) from None
    for warning in caught:
        if issubclass(warning.category, PydanticJsonSchemaWarning):
            issues.append(LintIssue("", "lossy", str(warning.message).split(" [")[0]))
    schema, more = build_schema_from_json(raw, tool_name)
    return schema, issues + more


def build_schema_from_json(raw: dict[str, Any], tool_name: str) -> tuple[dict[str, Any], list[LintIssue]]:
    """Make any JSON Schema for a tool input Claude-ready (inline, untitle, close); see the module docstring.

    Raises:
        DefinitionError: The schema is recursive or too large once inlined.
    """
    raw = dict(raw)
    defs = raw.pop("$defs", None) or raw.pop("definitions", None) or {}
    schema = _Inliner(defs, tool_name).inline(raw)
    schema = walk(schema, _claude_ready)
    schema.pop("description", None)  # the model's docstring is the tool description, not a schema annotation
    if schema.get("type", "object") != "object":
        raise DefinitionError(f"tool {tool_name!r}: the input schema must describe an object, got {raw!r:.200}")
    schema["type"] = "object"
    schema.setdefault("properties", {})
    schema.setdefault("additionalProperties", False)
    size = len(dumps(schema))
    if size > SCHEMA_BUDGET:
        raise DefinitionError(
            f"tool {tool_name!r}: the input schema is {size:,} characters once inlined (budget {SCHEMA_BUDGET:,}). "
            "Simplify the parameter types, or accept large structures as `dict[str, Any]`."
        )
    return schema, []


def _describe(value: Any) -> str:
    return value if isinstance(value, str) else dumps(value)


def strict_subset(schema: dict[str, Any]) -> tuple[dict[str, Any], list[LintIssue]]:
    """The strict-mode subset of a Claude-ready schema; unsupported keywords move into descriptions."""
    issues: list[LintIssue] = []

    def convert(node: dict[str, Any], path: str) -> dict[str, Any]:
        node = dict(node)
        kept: dict[str, Any] = {}
        moved: list[str] = []
        kind = node.pop("type", None)
        if isinstance(kind, list):
            node["anyOf"] = [{"type": k} for k in kind] + node.get("anyOf", [])
        elif kind is not None:
            kept["type"] = kind
        if "oneOf" in node:
            node["anyOf"] = node.pop("oneOf")
        fmt = node.pop("format", None)
        if fmt in _STRICT_FORMATS:
            kept["format"] = fmt
        elif fmt is not None:
            moved.append(f"format: {fmt}")
        if "items" in node:
            kept["items"] = node.pop("items")
        if node.get("minItems") in (0, 1):
            kept["minItems"] = node.pop("minItems")
        extra = node.get("additionalProperties")
        if kind == "object" and extra is not False:
            issues.append(
                LintIssue(
                    path,
                    "lossy",
                    "a free-form object cannot be expressed in strict mode: the model can only "
                    "send the listed properties (none for a plain dict)",
                )
            )
            node["additionalProperties"] = False
        for key in list(node):
            if key in _STRICT_KEYS:
                kept[key] = node.pop(key)
        if kind == "object":
            kept.setdefault("properties", {})
        for key, value in node.items():
            moved.append(f"{key}: {_describe(value)}")
        if moved:
            note = "; ".join(moved)
            description = kept.get("description")
            kept["description"] = f"{description} ({note})" if description else f"({note})"
            issues.append(LintIssue(path, "moved", f"{note} moved into the description (not enforced by strict mode)"))
        return _ordered(kept)

    return walk(schema, convert), issues
