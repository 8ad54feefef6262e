"""Strict mode and the lint report: what moved into descriptions, what was lossy, and the definition's size."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Annotated, Any

import jsonschema  # type: ignore[import-untyped]
import pytest
from pydantic import Field

from bridge import Tool

pytestmark = pytest.mark.anyio


def search(
    query: Annotated[str, Field(min_length=2, description="What to find.")],
    limit: Annotated[int, Field(ge=1, le=50)] = 10,
    since: timedelta | None = None,
    tags: list[str] | None = None,
) -> str:
    """Search the catalog."""
    return "ok"


def test_strict_subset_moves_constraints_into_descriptions() -> None:
    """`strict=True` keeps only the strict-mode keywords; the rest move into descriptions, listed in the lint."""
    tool = Tool.from_function(search, strict=True)
    assert tool.input_schema == {
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": "What to find. (minLength: 2)"},
            "limit": {"type": "integer", "description": "(default: 10; maximum: 50; minimum: 1)"},
            "since": {
                "anyOf": [{"type": "string", "format": "duration"}, {"type": "null"}],
                "description": "(default: null)",
            },
            "tags": {
                "anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}],
                "description": "(default: null)",
            },
        },
        "required": ["query"],
        "additionalProperties": False,
    }
    moved = {issue.path: issue.message for issue in tool.lint.moved}
    assert (
        moved["limit"]
        == "default: 10; maximum: 50; minimum: 1 moved into the description (not enforced by strict mode)"
    )
    assert set(moved) == {"query", "limit", "since", "tags"}


async def test_strict_tools_still_validate_every_constraint() -> None:
    """Input to a strict tool is still checked against the full constraints."""
    tool = Tool.from_function(search, strict=True)
    result = await tool.call({"query": "a", "limit": 500})
    assert result.is_error
    assert "- query: should have at least 2 characters" in result.text
    assert "- limit: should be less than or equal to 50" in result.text


def test_strict_mode_flags_free_form_objects_as_lossy() -> None:
    """A `dict` parameter cannot be expressed in strict mode: the lint says so."""

    def tag(labels: dict[str, str]) -> None:
        """Tag things."""

    tool = Tool.from_function(tag, strict=True)
    assert tool.input_schema["properties"]["labels"] == {
        "type": "object",
        "properties": {},
        "additionalProperties": False,
    }
    assert [issue.path for issue in tool.lint.lossy] == ["labels"]


def test_strict_schema_is_valid_json_schema() -> None:
    """The strict subset is still valid JSON Schema."""
    jsonschema.Draft202012Validator.check_schema(Tool.from_function(search, strict=True).input_schema)


def test_lint_size_is_the_definition_in_bytes() -> None:
    """`lint.size` is the byte size of the JSON definition."""
    tool = Tool.from_function(search)
    assert tool.lint.size == len(json.dumps(tool.definition(), separators=(",", ":"), ensure_ascii=False).encode())
    assert str(tool.lint).startswith(f"search: {tool.lint.size:,} bytes")


def test_unannotated_parameters_are_lossy() -> None:
    """A parameter without a type annotation is reported: the model may send anything."""

    def f(x, y: int) -> None:  # type: ignore[no-untyped-def]
        """F.

        Args:
            x: Anything.
            y: A number.
        """

    report = Tool.from_function(f).lint
    assert [(issue.path, issue.kind) for issue in report.issues] == [("x", "lossy")]
    assert not report.clean


def test_a_well_documented_tool_is_clean() -> None:
    """A typed, documented tool has an empty lint report."""

    def f(x: int, names: list[str] | None = None) -> Any:
        """F.

        Args:
            x: A number.
            names: Some names.
        """

    assert Tool.from_function(f).lint.clean
    assert Tool.from_function(f).lint.issues == ()
