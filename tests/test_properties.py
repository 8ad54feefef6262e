"""Property tests over the corpus: the schema and the validator agree, and validation never raises.

- Any input generated from a tool's schema is accepted and reaches the function unchanged in meaning (each value
  equals what the parameter's own type makes of it; omitted parameters get their defaults).
- A generated input broken in one place (unknown key, missing required field, wrong type) gets an `is_error` result
  that names the field.
- Arbitrary JSON as input never raises out of `Tool.call`.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any, TypeVar

import _hypothesis_compat  # noqa: F401  (must precede hypothesis_jsonschema use)
import anyio
import pydantic
import pytest
from corpus import CORPUS, RECEIVED
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from bridge import CallResult, Tool

T = TypeVar("T")
SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


async def _inline(fn: Callable[[], T]) -> T:
    return fn()


def _call(tool: Tool, data: Any) -> CallResult:
    return anyio.run(lambda: tool.call(data, run_sync=_inline))


def _draft7(node: Any) -> Any:
    """hypothesis-jsonschema reads draft 7: express `prefixItems` tuples as `items` lists, add known formats."""
    if isinstance(node, list):
        return [_draft7(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _draft7(value) for key, value in node.items() if key not in ("default",)}
    if "prefixItems" in out:
        out["items"] = out.pop("prefixItems")
        out["additionalItems"] = False
    if out.get("format") == "uuid":
        del out["format"]
        out["pattern"] = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
    return out


def _inputs(tool: Tool) -> st.SearchStrategy[Any]:
    return from_schema(_draft7(tool.input_schema))


def _annotations(fn: Callable[..., Any]) -> dict[str, Any]:
    hints = typing.get_type_hints(fn, include_extras=True)
    return {name: hints.get(name, Any) for name in inspect.signature(fn).parameters}


def _expected(fn: Callable[..., Any], data: dict[str, Any]) -> dict[str, Any]:
    """What each parameter's own type makes of the input, with defaults for omitted parameters."""
    expected: dict[str, Any] = {}
    annotations = _annotations(fn)
    params = inspect.signature(fn).parameters
    declared = {name for name, p in params.items() if p.kind is not inspect.Parameter.VAR_KEYWORD}
    for name, param in params.items():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            extras = {key: value for key, value in data.items() if key not in declared}
            value_type = annotations[name]
            expected[name] = pydantic.TypeAdapter(dict[str, value_type]).validate_python(extras)  # type: ignore[valid-type]
        elif name in data:
            expected[name] = pydantic.TypeAdapter(annotations[name]).validate_python(data[name])
        elif param.default is not inspect.Parameter.empty and name != "ctx":
            default = param.default
            expected[name] = default.default if isinstance(default, pydantic.fields.FieldInfo) else default
    return expected


@pytest.mark.parametrize("fn", CORPUS, ids=lambda fn: fn.__name__)
def test_generated_input_reaches_the_function(fn: Callable[..., Any]) -> None:
    """Every input the schema allows is accepted and arrives as the parameter's type interprets it."""
    tool = Tool.from_function(fn)

    @SETTINGS
    @given(_inputs(tool))
    def check(data: dict[str, Any]) -> None:
        result = _call(tool, data)
        assert not result.is_error, result.text
        assert _expected(fn, data) == RECEIVED

    check()


def _mutations(tool: Tool, data: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    """Broken copies of a valid input, each with the field its error must name."""
    schema = tool.input_schema
    broken: list[tuple[dict[str, Any], str]] = []
    if schema.get("additionalProperties") is False:
        broken.append(({**data, "zz_unknown": 1}, "zz_unknown"))
    for name in schema.get("required", []):
        broken.append(({key: value for key, value in data.items() if key != name}, name))
    for name, node in schema["properties"].items():
        if node == {}:
            continue
        text = str(node)
        accepts_object = "'object'" in text
        wrong = 12345 if accepts_object else {"unexpected": [1, 2]}
        if accepts_object and "'integer'" in text:
            continue
        broken.append(({**data, name: wrong}, name))
    return broken


@pytest.mark.parametrize("fn", CORPUS, ids=lambda fn: fn.__name__)
def test_mutated_input_names_the_field(fn: Callable[..., Any]) -> None:
    """A valid input broken in one place is an error whose text names that field."""
    tool = Tool.from_function(fn)

    @SETTINGS
    @given(_inputs(tool))
    def check(data: dict[str, Any]) -> None:
        for bad, field in _mutations(tool, data):
            result = _call(tool, bad)
            assert result.is_error, (bad, field)
            assert f"- {field}" in result.text, result.text
            assert "pydantic" not in result.text

    check()


@pytest.mark.parametrize("fn", CORPUS[::4], ids=lambda fn: fn.__name__)
def test_validation_never_raises(fn: Callable[..., Any]) -> None:
    """Arbitrary JSON input (objects, arrays, scalars) always yields a result, never an exception."""
    tool = Tool.from_function(fn)

    @SETTINGS
    @given(JSON)
    def check(data: Any) -> None:
        assert isinstance(_call(tool, data), CallResult)

    check()


@pytest.mark.parametrize(
    "text",
    [
        "0E1000000000000000000",  # found by hypothesis: the exponent is past what `Decimal` accepts
        "1E-1000000000000000000",
        "12.5E99999999999999999",
        "-0.5e-00000000000000000000042",
        "123456789012345678901234567890E12345678901234567",
        "1.5",
        "1e",
    ],
)
def test_decimal_strings_are_admitted_by_the_schema_exactly_when_validation_accepts_them(text: str) -> None:
    """Every Decimal string the schema admits is accepted (huge exponents are refused by both, not only one)."""
    import re

    from corpus import decimal_param

    tool = Tool.from_function(decimal_param)
    (_, string_schema) = tool.input_schema["properties"]["amount"]["anyOf"]
    in_schema = re.search(string_schema["pattern"], text) is not None
    accepted = not _call(tool, {"amount": text}).is_error
    assert accepted or not in_schema  # the schema may be stricter than validation, never looser
    assert in_schema or text in ("1E-1000000000000000000", "1e", "0E1000000000000000000")
