"""Input validation: lax coercion, repairs, unknown keys, and error text a model can act on."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pytest
from corpus import RECEIVED, Address, Order, Point, tagged_union, var_kwargs
from pydantic import BaseModel as PydanticModel
from pydantic import Field, field_validator

from bridge import CallResult, Tool

pytestmark = pytest.mark.anyio


def get_weather(
    city: str,
    days: int = 3,
    unit: Literal["c", "f"] = "c",
    limit: Annotated[int, Field(ge=1, le=10)] = 5,
    tags: list[str] | None = None,
    address: Address | None = None,
) -> dict[str, Any]:
    """Get the weather."""
    return {"city": city, "days": days, "unit": unit, "limit": limit, "tags": tags, "address": address}


WEATHER = Tool.from_function(get_weather)


class Range(PydanticModel):
    low: int
    high: int

    @field_validator("high")
    @classmethod
    def at_most_100(cls, value: int) -> int:
        if value > 100:
            raise ValueError("high must be at most 100")
        return value


async def test_exact_error_text() -> None:
    """The error text lists each bad field with what was expected and what is allowed, then how to proceed."""
    result = await WEATHER.call(
        {"citty": "Paris", "days": "soon", "unit": "k", "limit": 11, "address": {"street": 1, "city": "x", "zipp": 1}}
    )
    assert result == CallResult.error(
        "Invalid input for tool get_weather (7 problems):\n"
        '- citty: unknown field; did you mean "city"? Allowed fields: city, days, unit, limit, tags, address.\n'
        '- address.zipp: unknown field; did you mean "zip"? Allowed fields: street, city, zip.\n'
        "- city: missing (required)\n"
        '- days: expected an integer; got "soon"\n'
        '- unit: expected one of "c", "f"; got "k"\n'
        "- limit: should be less than or equal to 10; got 11\n"
        "- address.street: expected a string; got 1\n"
        "Fix these fields and call get_weather again."
    )


async def test_error_text_has_no_pydantic_noise() -> None:
    """No pydantic URLs, error codes or class names reach the model."""
    result = await WEATHER.call({"city": 1.5, "days": [1], "limit": "x"})
    assert result.is_error
    for noise in ("pydantic", "errors.pydantic.dev", "int_parsing", "type=", "input_value"):
        assert noise not in result.text


async def test_long_values_are_not_echoed() -> None:
    """A long bad value is shortened in the error text."""
    result = await WEATHER.call({"city": "x", "days": "9" * 5_000 + "z"})
    assert result.is_error
    assert len(result.text) < 300
    assert "…" in result.text


async def test_lax_coercion() -> None:
    """Numbers sent as strings (and strings sent as numbers) are accepted."""
    result = await WEATHER.call({"city": 75001, "days": "5"})
    assert result.text.startswith('{"city":"75001","days":5,')


async def test_stringified_json_is_repaired() -> None:
    """A list or object parameter sent as a JSON string is parsed before validation."""
    result = await WEATHER.call({"city": "x", "tags": '["a", "b"]', "address": '{"street": "1 Main", "city": "y"}'})
    assert not result.is_error, result.text
    assert '"tags":["a","b"]' in result.text
    assert '"street":"1 Main"' in result.text


async def test_strings_are_not_repaired_for_string_parameters() -> None:
    """A string parameter keeps a JSON-looking string as text."""

    def echo(text: str) -> str:
        """Echo."""
        return text

    assert (await Tool.from_function(echo).call({"text": "[1, 2]"})).text == "[1, 2]"


async def test_null_for_a_defaulted_parameter_means_the_default() -> None:
    """`null` for a parameter that has a default and does not take null uses the default."""
    result = await WEATHER.call({"city": "x", "days": None, "unit": None})
    assert result.text.startswith('{"city":"x","days":3,"unit":"c",')


async def test_null_for_a_required_parameter_is_an_error() -> None:
    """`null` for a required non-nullable parameter is reported."""
    result = await WEATHER.call({"city": None})
    assert result.is_error
    assert "- city: expected a string; got null" in result.text


async def test_input_must_be_an_object() -> None:
    """A non-object input is one clear problem."""
    result = await WEATHER.call(["Paris"])  # type: ignore[arg-type]
    assert result.is_error
    assert "the input must be a JSON object; got an array of 1 item" in result.text


async def test_unknown_keys_in_nested_structures() -> None:
    """Unknown keys are reported inside nested models, lists of models and dataclasses."""

    def ship(order: Order, point: Point) -> str:
        """Ship."""
        return "ok"

    result = await Tool.from_function(ship).call(
        {
            "order": {"items": [{"sku": "a"}, {"sku": "b", "qty": 2}], "ship_to": {"street": "s", "city": "c"}},
            "point": {"x": 1, "z": 2},
        }
    )
    assert result.is_error
    assert '- order.items[1].qty: unknown field; did you mean "quantity"?' in result.text
    assert "- point.z: unknown field." in result.text


async def test_tagged_union_reports_the_intended_variant() -> None:
    """For a union of object variants, only the variant the model chose (by its `kind`) is reported."""
    result = await Tool.from_function(tagged_union).call({"shape": {"kind": "square", "side": "wide"}})
    assert result.is_error
    assert '- shape.side: expected a number; got "wide"' in result.text
    assert "radius" not in result.text


async def test_union_of_scalars_lists_every_alternative() -> None:
    """A value matching no member of a scalar union names every expected type."""

    def pick(value: int | bool) -> str:
        """Pick."""
        return "ok"

    result = await Tool.from_function(pick).call({"value": "maybe"})
    assert '- value: expected an integer or a boolean (true or false); got "maybe"' in result.text


async def test_var_kwargs_validate_their_values() -> None:
    """With `**kwargs: T`, extra keys are accepted and validated as T."""
    tool = Tool.from_function(var_kwargs)
    assert not (await tool.call({"name": "n", "color": "red", "size": 3})).is_error
    assert RECEIVED == {"name": "n", "labels": {"color": "red", "size": "3"}}
    result = await tool.call({"name": "n", "bad": {"x": 1}})
    assert "- bad: expected a string; got an object" in result.text


async def test_custom_validator_message_is_kept() -> None:
    """A field validator's own message reaches the model without pydantic's prefix."""

    def scan(window: Range) -> str:
        """Scan."""
        return "ok"

    result = await Tool.from_function(scan).call({"window": {"low": 1, "high": 500}})
    assert "- window.high: high must be at most 100" in result.text
