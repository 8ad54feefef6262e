"""Registration refusals: what cannot be served fails at `Tool.from_function`, with the fix in the message."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

import pytest
from corpus import Address
from pydantic import BaseModel

from bridge import DefinitionError, Tool, ToolContext, ToolOptions, tool


class Node(BaseModel):
    name: str
    children: list[Node] = []


def test_positional_only_is_refused() -> None:
    """Positional-only parameters cannot arrive by name."""

    def f(a: int, /) -> None:
        """F."""

    with pytest.raises(DefinitionError, match=r"positional-only.*Remove the '/'"):
        Tool.from_function(f)


def test_var_args_is_refused() -> None:
    """`*args` is refused with a list parameter suggested."""

    def f(*items: str) -> None:
        """F."""

    with pytest.raises(DefinitionError, match=r"items: list\[str\]"):
        Tool.from_function(f)


def test_lambda_needs_a_name() -> None:
    """An unnamed lambda is refused until it gets `name=`."""
    with pytest.raises(DefinitionError, match="pass name="):
        Tool.from_function(lambda x: x)
    assert Tool.from_function(lambda x: x, name="echo", description="Echo.").name == "echo"


@pytest.mark.parametrize("name", ["has space", "dots.not.ok", "x" * 65, "", "ünï"])
def test_invalid_names_are_errors(name: str) -> None:
    """Names outside `^[a-zA-Z0-9_-]{1,64}$` are errors (not warnings), with a corrected suggestion."""
    with pytest.raises(DefinitionError, match="Claude accepts 1-64"):
        tool(name=name)


def test_unrepresentable_type_is_refused() -> None:
    """A type with no JSON form is refused, naming the parameter."""

    def f(lock: threading.Lock) -> None:
        """F."""

    with pytest.raises(DefinitionError, match=r"parameter 'lock'.*cannot be validated from JSON"):
        Tool.from_function(f)


def test_callable_type_has_no_json_schema() -> None:
    """A callable parameter validates in pydantic but has no JSON Schema: refused."""

    def f(callback: Callable[[int], int]) -> None:
        """F."""

    with pytest.raises(DefinitionError, match="no JSON Schema"):
        Tool.from_function(f)


def test_recursive_model_is_a_clear_error() -> None:
    """A recursive model cannot be inlined: the error names the cycle and the ways out."""

    def f(tree: Node) -> None:
        """F."""

    with pytest.raises(DefinitionError, match=r"Node is recursive \(Node -> Node\).*dict\[str, Any\]"):
        Tool.from_function(f)


def test_generators_are_refused() -> None:
    """A generator function returns no value to post."""

    def f() -> Any:
        """F."""
        yield 1

    with pytest.raises(DefinitionError, match="generator"):
        Tool.from_function(f)


def test_bad_option_combinations() -> None:
    """Unsafe or meaningless option values fail when the decorator runs."""
    with pytest.raises(DefinitionError, match="both read_only and destructive"):
        tool(read_only=True, destructive=True)
    with pytest.raises(DefinitionError, match="timeout"):
        ToolOptions(timeout=0)
    with pytest.raises(DefinitionError, match="max_concurrency"):
        ToolOptions(max_concurrency=0)
    with pytest.raises(DefinitionError, match="output_budget"):
        ToolOptions(output_budget=10)
    with pytest.raises(DefinitionError, match="set max_concurrency"):
        ToolOptions(concurrency_key="order_id")


def test_concurrency_key_must_be_a_parameter() -> None:
    """`concurrency_key` must name an input field."""

    def refund(order_id: str) -> None:
        """Refund."""

    with pytest.raises(DefinitionError, match="not one of its parameters"):
        Tool.from_function(refund, max_concurrency=1, concurrency_key="order")
    assert (
        Tool.from_function(refund, max_concurrency=1, concurrency_key="order_id").options.concurrency_key == "order_id"
    )


def test_unresolvable_annotation_names_the_fix() -> None:
    """A forward reference that cannot be resolved says where to define the type."""

    def f(x: Missing) -> None:  # type: ignore[name-defined]  # noqa: F821
        """F."""

    with pytest.raises(DefinitionError, match="Define that type at module level"):
        Tool.from_function(f)


def test_partials_methods_and_callable_objects() -> None:
    """Partials, bound methods and callable objects are tools; the bound or fixed arguments are hidden."""

    def scale(factor: int, x: int) -> int:
        """Scale x."""
        return factor * x

    class Counter:
        def bump(self, by: int = 1) -> int:
            """Bump the counter."""
            return by

        def __call__(self, address: Address) -> str:
            """Describe an address."""
            return address.city

    assert list(Tool.from_function(functools.partial(scale, 2)).input_schema["properties"]) == ["x"]
    assert Tool.from_function(functools.partial(scale, 2)).name == "scale"
    assert Tool.from_function(functools.partial(scale, 2)).description == "Scale x."
    assert Tool.from_function(Counter().bump).name == "bump"
    described = Tool.from_function(Counter(), name="describe")
    assert list(described.input_schema["properties"]) == ["address"]
    assert described.description == "Describe an address."


def test_context_is_hidden_in_any_position_and_form() -> None:
    """`ToolContext`, `ToolContext | None` and a keyword-only context are all hidden from the schema."""

    def f(a: int, ctx: ToolContext | None = None, *, c: ToolContext) -> None:
        """F."""

    assert list(Tool.from_function(f).input_schema["properties"]) == ["a"]


def test_invalid_property_names_are_refused() -> None:
    """Parameter names the API rejects as property keys are refused."""
    namespace: dict[str, Any] = {}
    exec('def f(café: int) -> None:\n    """F."""', namespace)
    with pytest.raises(DefinitionError, match="Rename the parameter"):
        Tool.from_function(namespace["f"])
