"""Signature -> Claude-ready input schema: an exact expected schema for every corpus signature, plus the rules.

Every schema must be valid JSON Schema (checked against the 2020-12 metaschema) and Claude-ready: root object, no
titles, no `$ref`/`$defs`, every object explicitly closed or explicitly a map, a valid name and a description.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
from corpus import CORPUS
from pydantic import BaseModel, Field, create_model

from bridge import DefinitionError, Tool

EXPECTED: dict[str, dict[str, Any]] = {
    "no_params": {"type": "object", "properties": {}, "additionalProperties": False},
    "one_str": {
        "type": "object",
        "properties": {"text": {"type": "string", "description": "The text to echo."}},
        "required": ["text"],
        "additionalProperties": False,
    },
    "primitives": {
        "type": "object",
        "properties": {
            "s": {"type": "string"},
            "i": {"type": "integer"},
            "f": {"type": "number"},
            "b": {"type": "boolean"},
        },
        "required": ["s", "i", "f", "b"],
        "additionalProperties": False,
    },
    "defaults": {
        "type": "object",
        "properties": {
            "limit": {"type": "integer", "default": 10},
            "verbose": {"type": "boolean", "default": False},
            "label": {"type": "string", "default": "x"},
            "ratio": {"type": "number", "default": 0.5},
        },
        "additionalProperties": False,
    },
    "optional_param": {
        "type": "object",
        "properties": {"name": {"type": ["string", "null"], "default": None}},
        "additionalProperties": False,
    },
    "optional_required": {
        "type": "object",
        "properties": {"name": {"type": ["string", "null"]}},
        "required": ["name"],
        "additionalProperties": False,
    },
    "union_scalars": {
        "type": "object",
        "properties": {"value": {"type": ["integer", "string"]}},
        "required": ["value"],
        "additionalProperties": False,
    },
    "literal_param": {
        "type": "object",
        "properties": {"unit": {"type": "string", "enum": ["c", "f"], "default": "c"}},
        "additionalProperties": False,
    },
    "literal_int": {
        "type": "object",
        "properties": {"level": {"type": "integer", "enum": [1, 2, 3]}},
        "required": ["level"],
        "additionalProperties": False,
    },
    "enum_param": {
        "type": "object",
        "properties": {"color": {"type": "string", "description": "A paint color.", "enum": ["red", "green"]}},
        "required": ["color"],
        "additionalProperties": False,
    },
    "int_enum": {
        "type": "object",
        "properties": {"priority": {"type": "integer", "description": "How urgent.", "enum": [1, 2]}},
        "required": ["priority"],
        "additionalProperties": False,
    },
    "list_param": {
        "type": "object",
        "properties": {"tags": {"type": "array", "items": {"type": "string"}}},
        "required": ["tags"],
        "additionalProperties": False,
    },
    "dict_param": {
        "type": "object",
        "properties": {"counts": {"type": "object", "additionalProperties": {"type": "integer"}}},
        "required": ["counts"],
        "additionalProperties": False,
    },
    "dict_any": {
        "type": "object",
        "properties": {"meta": {"type": "object", "additionalProperties": True}},
        "required": ["meta"],
        "additionalProperties": False,
    },
    "tuple_fixed": {
        "type": "object",
        "properties": {
            "point": {
                "type": "array",
                "maxItems": 2,
                "minItems": 2,
                "prefixItems": [{"type": "number"}, {"type": "number"}],
            }
        },
        "required": ["point"],
        "additionalProperties": False,
    },
    "tuple_var": {
        "type": "object",
        "properties": {"ids": {"type": "array", "items": {"type": "integer"}}},
        "required": ["ids"],
        "additionalProperties": False,
    },
    "set_param": {
        "type": "object",
        "properties": {"ids": {"type": "array", "items": {"type": "integer"}, "uniqueItems": True}},
        "required": ["ids"],
        "additionalProperties": False,
    },
    "datetime_param": {
        "type": "object",
        "properties": {"when": {"type": "string", "format": "date-time"}},
        "required": ["when"],
        "additionalProperties": False,
    },
    "date_param": {
        "type": "object",
        "properties": {"day": {"type": "string", "format": "date"}},
        "required": ["day"],
        "additionalProperties": False,
    },
    "uuid_param": {
        "type": "object",
        "properties": {"id": {"type": "string", "format": "uuid"}},
        "required": ["id"],
        "additionalProperties": False,
    },
    "decimal_param": {
        "type": "object",
        "properties": {
            "amount": {
                "anyOf": [
                    {"type": "number"},
                    {
                        "type": "string",
                        "pattern": "^[+-]?(?:(?:[0-9]+\\.?[0-9]*|\\.[0-9]+)(?:[eE][+-]?0*[0-9]{1,17})?)$",
                    },
                ]
            }
        },
        "required": ["amount"],
        "additionalProperties": False,
    },
    "model_param": {
        "type": "object",
        "properties": {
            "address": {
                "type": "object",
                "description": "Where to ship.",
                "properties": {
                    "street": {"type": "string", "description": "Street and number."},
                    "city": {"type": "string"},
                    "zip": {"type": ["string", "null"], "default": None},
                },
                "required": ["street", "city"],
                "additionalProperties": False,
            }
        },
        "required": ["address"],
        "additionalProperties": False,
    },
    "optional_model": {
        "type": "object",
        "properties": {
            "address": {
                "anyOf": [
                    {
                        "type": "object",
                        "description": "A postal address.",
                        "properties": {
                            "street": {"type": "string", "description": "Street and number."},
                            "city": {"type": "string"},
                            "zip": {"type": ["string", "null"], "default": None},
                        },
                        "required": ["street", "city"],
                        "additionalProperties": False,
                    },
                    {"type": "null"},
                ],
                "default": None,
            }
        },
        "additionalProperties": False,
    },
    "list_of_models": {
        "type": "object",
        "properties": {
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "description": "One line of an order.",
                    "properties": {
                        "sku": {"type": "string"},
                        "quantity": {"type": "integer", "default": 1, "minimum": 1},
                    },
                    "required": ["sku"],
                    "additionalProperties": False,
                },
            }
        },
        "required": ["items"],
        "additionalProperties": False,
    },
    "nested_models": {
        "type": "object",
        "properties": {
            "order": {
                "type": "object",
                "description": "An order with its shipping and billing addresses.",
                "properties": {
                    "items": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "description": "One line of an order.",
                            "properties": {
                                "sku": {"type": "string"},
                                "quantity": {"type": "integer", "default": 1, "minimum": 1},
                            },
                            "required": ["sku"],
                            "additionalProperties": False,
                        },
                    },
                    "ship_to": {
                        "type": "object",
                        "description": "A postal address.",
                        "properties": {
                            "street": {"type": "string", "description": "Street and number."},
                            "city": {"type": "string"},
                            "zip": {"type": ["string", "null"], "default": None},
                        },
                        "required": ["street", "city"],
                        "additionalProperties": False,
                    },
                    "bill_to": {
                        "anyOf": [
                            {
                                "type": "object",
                                "description": "A postal address.",
                                "properties": {
                                    "street": {"type": "string", "description": "Street and number."},
                                    "city": {"type": "string"},
                                    "zip": {"type": ["string", "null"], "default": None},
                                },
                                "required": ["street", "city"],
                                "additionalProperties": False,
                            },
                            {"type": "null"},
                        ],
                        "default": None,
                    },
                },
                "required": ["items", "ship_to"],
                "additionalProperties": False,
            }
        },
        "required": ["order"],
        "additionalProperties": False,
    },
    "dataclass_param": {
        "type": "object",
        "properties": {
            "point": {
                "type": "object",
                "description": "A point on a plane.",
                "properties": {"x": {"type": "number"}, "y": {"type": "number", "default": 0.0}},
                "required": ["x"],
                "additionalProperties": False,
            }
        },
        "required": ["point"],
        "additionalProperties": False,
    },
    "typeddict_param": {
        "type": "object",
        "properties": {
            "filters": {
                "type": "object",
                "description": "Search filters.",
                "properties": {"status": {"type": "string", "enum": ["open", "closed"]}, "owner": {"type": "string"}},
                "required": ["status"],
                "additionalProperties": False,
            }
        },
        "required": ["filters"],
        "additionalProperties": False,
    },
    "annotated_field": {
        "type": "object",
        "properties": {
            "limit": {"type": "integer", "description": "Rows to return.", "default": 10, "maximum": 100, "minimum": 1}
        },
        "additionalProperties": False,
    },
    "annotated_str": {
        "type": "object",
        "properties": {"query": {"type": "string", "description": "What to search for."}},
        "required": ["query"],
        "additionalProperties": False,
    },
    "field_default": {
        "type": "object",
        "properties": {"limit": {"type": "integer", "description": "Rows to return.", "default": 10, "minimum": 1}},
        "additionalProperties": False,
    },
    "string_constraints": {
        "type": "object",
        "properties": {"code": {"type": "string", "maxLength": 8, "minLength": 2, "pattern": "^[A-Z]+$"}},
        "required": ["code"],
        "additionalProperties": False,
    },
    "list_constraints": {
        "type": "object",
        "properties": {"values": {"type": "array", "items": {"type": "integer"}, "maxItems": 5, "minItems": 1}},
        "required": ["values"],
        "additionalProperties": False,
    },
    "tagged_union": {
        "type": "object",
        "properties": {
            "shape": {
                "anyOf": [
                    {
                        "type": "object",
                        "properties": {"kind": {"type": "string", "const": "circle"}, "radius": {"type": "number"}},
                        "required": ["kind", "radius"],
                        "additionalProperties": False,
                    },
                    {
                        "type": "object",
                        "properties": {"kind": {"type": "string", "const": "square"}, "side": {"type": "number"}},
                        "required": ["kind", "side"],
                        "additionalProperties": False,
                    },
                ]
            }
        },
        "required": ["shape"],
        "additionalProperties": False,
    },
    "var_kwargs": {
        "type": "object",
        "properties": {"name": {"type": "string"}},
        "required": ["name"],
        "additionalProperties": {"type": "string"},
    },
    "context_anywhere": {
        "type": "object",
        "properties": {"query": {"type": "string"}, "limit": {"type": "integer", "default": 5}},
        "required": ["query"],
        "additionalProperties": False,
    },
    "keyword_only": {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "string", "default": "x"}},
        "required": ["a"],
        "additionalProperties": False,
    },
    "numpy_doc": {
        "type": "object",
        "properties": {
            "a": {"type": "integer", "description": "The first."},
            "b": {"type": "string", "description": "The second."},
        },
        "required": ["a", "b"],
        "additionalProperties": False,
    },
    "rest_doc": {
        "type": "object",
        "properties": {
            "a": {"type": "integer", "description": "The first."},
            "b": {"type": "string", "description": "The second."},
        },
        "required": ["a", "b"],
        "additionalProperties": False,
    },
    "precedence": {
        "type": "object",
        "properties": {
            "a": {"type": "integer", "description": "From Field."},
            "b": {"type": "integer", "description": "From Annotated."},
            "c": {"type": "integer", "description": "From the docstring."},
        },
        "required": ["a", "b", "c"],
        "additionalProperties": False,
    },
    "any_param": {"type": "object", "properties": {"value": {}}, "required": ["value"], "additionalProperties": False},
    "nested_list": {
        "type": "object",
        "properties": {"matrix": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}}},
        "required": ["matrix"],
        "additionalProperties": False,
    },
    "optional_list": {
        "type": "object",
        "properties": {
            "tags": {"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}], "default": None}
        },
        "additionalProperties": False,
    },
}


def _nodes(schema: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every subschema with its path (data under `default`/`enum`/`const` is not walked)."""
    if not isinstance(schema, dict):
        return
    yield path, schema
    for key in ("properties", "patternProperties"):
        for name, sub in schema.get(key, {}).items():
            yield from _nodes(sub, f"{path}.{name}")
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        for index, sub in enumerate(schema.get(key, [])):
            yield from _nodes(sub, f"{path}/{key}[{index}]")
    for key in ("items", "additionalProperties", "not"):
        yield from _nodes(schema.get(key), f"{path}/{key}")


def claude_ready_problems(definition: dict[str, Any], *, open_root: bool = False) -> list[str]:
    """Why a definition is not Claude-ready (empty when it is)."""
    problems = []
    if definition.get("type") != "custom":
        problems.append("type is not 'custom'")
    if not re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", definition.get("name", "")):
        problems.append("invalid name")
    if not str(definition.get("description", "")).strip():
        problems.append("no description")
    schema = definition["input_schema"]
    if schema.get("type") != "object":
        problems.append("root is not an object")
    for path, node in _nodes(schema):
        for banned in ("title", "$ref", "$defs", "definitions", "discriminator"):
            if banned in node:
                problems.append(f"{path or '(root)'} has {banned}")
        kind = node.get("type")
        kinds: list[Any] = kind if isinstance(kind, list) else [kind]
        if "object" in kinds or "properties" in node:
            if "additionalProperties" not in node:
                problems.append(f"{path or '(root)'} is not explicitly closed or open")
            elif "properties" in node and node["additionalProperties"] is not False and not (open_root and not path):
                problems.append(f"{path or '(root)'} has properties but is not closed")
    return problems


def test_corpus_is_large_enough() -> None:
    """The corpus covers at least 30 signatures and each has an expected schema."""
    assert len(CORPUS) >= 30
    assert sorted(EXPECTED) == sorted(fn.__name__ for fn in CORPUS)


@pytest.mark.parametrize("fn", CORPUS, ids=lambda fn: fn.__name__)
def test_exact_schema(fn: Callable[..., Any]) -> None:
    """Each corpus signature produces exactly the expected schema."""
    assert Tool.from_function(fn).input_schema == EXPECTED[fn.__name__]


@pytest.mark.parametrize("fn", CORPUS, ids=lambda fn: fn.__name__)
def test_schema_is_valid_json_schema(fn: Callable[..., Any]) -> None:
    """Each schema passes the JSON Schema 2020-12 metaschema."""
    jsonschema.Draft202012Validator.check_schema(Tool.from_function(fn).input_schema)


@pytest.mark.parametrize("fn", CORPUS, ids=lambda fn: fn.__name__)
def test_definition_is_claude_ready(fn: Callable[..., Any]) -> None:
    """Each definition meets the Claude-ready rules (only `**kwargs` leaves the root open)."""
    definition = Tool.from_function(fn).definition()
    assert claude_ready_problems(definition, open_root=fn.__name__ == "var_kwargs") == []


class Doc(BaseModel):
    title: str
    type: str = "x"
    properties: dict[str, str] = {}


def test_property_names_that_are_schema_keywords_survive() -> None:
    """Fields named `title`, `type` or `properties` are kept; only schema-level titles go."""

    def f(doc: Doc, title: str = "a") -> None:
        """F."""

    schema = Tool.from_function(f).input_schema
    assert list(schema["properties"]) == ["doc", "title"]
    assert list(schema["properties"]["doc"]["properties"]) == ["title", "type", "properties"]


def test_schema_size_budget() -> None:
    """A schema that grows past the budget once shared types are inlined is refused with what to do."""
    leaf = create_model("Leaf", **{f"f{i}": (str, Field(description="x" * 40)) for i in range(40)})  # type: ignore[call-overload]
    mid = create_model("Mid", **{f"m{i}": (leaf, ...) for i in range(40)})  # type: ignore[call-overload]

    def f(big: Any) -> None:
        """F."""

    f.__annotations__["big"] = mid  # a real class object, not a string the module cannot resolve
    with pytest.raises(DefinitionError, match=r"Simplify the parameter types"):
        Tool.from_function(f)
