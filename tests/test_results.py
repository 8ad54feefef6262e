"""Return value -> result content: one conversion test per return kind, the output budget, and sanitising."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from anthropic.lib.tools import ToolError as SDKToolError
from pydantic import BaseModel, Field

from bridge import CallResult, ContentBlock, Tool, ToolError, ToolResult, document, image
from bridge.tools._results import shape_result

pytestmark = pytest.mark.anyio

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
PDF = b"%PDF-1.4\n%fake\n"


class User(BaseModel):
    name: str
    age: int
    nick: str | None = Field(default=None, serialization_alias="nickname")


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Kind(enum.Enum):
    A = "a"


class Mode(str, enum.Enum):  # noqa: UP042 - the mixin (not StrEnum) is the case under test
    FAST = "fast"


def _text(value: Any, budget: int = 100_000) -> str:
    result = shape_result(value, budget=budget)
    assert not result.is_error
    assert len(result.content) == 1
    assert result.content[0]["type"] == "text"
    return str(result.content[0]["text"])


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("hello", "hello"),
        ("", "(no output)"),
        (None, "(no output)"),
        ([], "(no output)"),
        ({}, "{}"),
        ({"b": 1, "a": [1, 2]}, '{"b":1,"a":[1,2]}'),
        ([1, "two", None], '[1,"two",null]'),
        (["a", "b"], '["a","b"]'),
        (0, "0"),
        (42, "42"),
        (1.5, "1.5"),
        (float("nan"), "null"),
        (True, "true"),
        (False, "false"),
        (User(name="x", age=3), '{"name":"x","age":3,"nickname":null}'),
        (Point(1, 2), '{"x":1,"y":2}'),
        ({"when": datetime.date(2024, 5, 1)}, '{"when":"2024-05-01"}'),
        (uuid.UUID(int=1), '"00000000-0000-0000-0000-000000000001"'),
        (Decimal("1.10"), '"1.10"'),
        (Kind.A, '"a"'),
        (Mode.FAST, "fast"),
        ({3, 1, 2}, "[1,2,3]"),
        ((1, 2), "[1,2]"),
        ({"é": "ü"}, '{"é":"ü"}'),
        ([{"type": "row", "id": 1}], '[{"type":"row","id":1}]'),
    ],
    ids=repr,
)
def test_conversion_of_every_return_kind(value: Any, text: str) -> None:
    """Each return kind becomes one text block: strings as is, everything else as compact JSON."""
    assert _text(value) == text


def test_a_dict_is_never_a_block_list() -> None:
    """A dict, even one shaped like a block, is data: it is posted as JSON text."""
    assert _text({"type": "text", "text": "hi"}) == '{"type":"text","text":"hi"}'


def test_a_model_is_json_not_repr() -> None:
    """A pydantic model never reaches the model as `name='x' age=3`."""
    assert "name='x'" not in _text(User(name="x", age=3))
    assert json.loads(_text([User(name="x", age=3)])) == [{"name": "x", "age": 3, "nickname": None}]


def test_block_lists_pass_through() -> None:
    """A list of valid content blocks is posted as those blocks."""
    blocks: list[dict[str, Any]] = [
        {"type": "text", "text": "see"},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
        {
            "type": "search_result",
            "source": "https://example.com",
            "title": "Example",
            "content": [{"type": "text", "text": "snippet"}],
        },
    ]
    assert shape_result(blocks) == CallResult(tuple(blocks))


def test_invalid_block_list_is_a_tool_failure() -> None:
    """A list of block-typed dicts that is not valid fails the tool (a bug in the tool, not data)."""
    from bridge.tools._results import ResultError

    with pytest.raises(ResultError, match="item 1"):
        shape_result([{"type": "text", "text": "ok"}, {"type": "image", "source": {"type": "base64"}}])


def test_image_and_document_helpers(tmp_path: Path) -> None:
    """`image()` and `document()` build blocks from bytes or paths; mixed lists turn strings into text blocks."""
    path = tmp_path / "chart.png"
    path.write_bytes(PNG)
    result = shape_result([image(path), "a chart", document(PDF, title="Report")])
    kinds = [block["type"] for block in result.content]
    assert kinds == ["image", "text", "document"]
    assert result.content[0]["source"]["media_type"] == "image/png"
    assert result.content[2]["source"]["media_type"] == "application/pdf"
    assert result.content[2]["title"] == "Report"
    text_doc = document(b"plain words", "text/plain").to_dict()
    assert text_doc["source"] == {"type": "text", "media_type": "text/plain", "data": "plain words"}
    assert shape_result(image(PNG)).content[0]["type"] == "image"


def test_image_needs_a_known_media_type() -> None:
    """Unknown bytes without a media type are refused with the accepted types listed."""
    with pytest.raises(ValueError, match="image/png"):
        image(b"not an image")


def test_tool_result_explicit_error_is_text_only() -> None:
    """`ToolResult(..., is_error=True)` posts an error; non-text blocks become a short note."""
    result = shape_result(ToolResult([image(PNG), "it broke"], is_error=True))
    assert result.is_error
    assert [block["type"] for block in result.content] == ["text", "text"]
    assert result.text == "[image omitted]\nit broke"
    assert shape_result(ToolResult({"a": 1})) == CallResult.of_text('{"a":1}')


def test_lone_surrogates_are_sanitised() -> None:
    """Lone UTF-16 surrogates (which would fail the POST) become U+FFFD in text and in JSON keys and values."""
    assert _text("bad \ud800 text") == "bad \ufffd text"
    assert _text({"k\udfff": ["\ud83d"]}) == '{"k\ufffd":["\ufffd"]}'
    assert _text("pair \ud83d\ude00 joined") == "pair \U0001f600 joined"


def test_text_budget_cuts_with_a_marker() -> None:
    """Long text is cut to the budget and says how much was dropped."""
    text = _text("x" * 10_000, budget=1_000)
    assert len(text) <= 1_000
    assert "[truncated: 10,000 characters" in text


def test_json_budget_keeps_json_valid() -> None:
    """An oversized list keeps its first items plus a marker item, and stays valid JSON."""
    text = _text(list(range(10_000)), budget=500)
    assert len(text) <= 500
    data = json.loads(text)
    assert data[:3] == [0, 1, 2]
    assert data[-1].startswith("[truncated: ")


def test_json_budget_shrinks_the_largest_member() -> None:
    """A dict with one huge member keeps its small members and shrinks the big one."""
    value = {"count": 5000, "rows": [{"id": i, "name": f"row {i}"} for i in range(5000)], "done": True}
    text = _text(value, budget=2_000)
    assert len(text) <= 2_000
    data = json.loads(text)
    assert data["count"] == 5000
    assert data["done"] is True
    assert data["rows"][0] == {"id": 0, "name": "row 0"}
    assert "more items" in data["rows"][-1]


def test_json_budget_with_many_keys_and_long_strings() -> None:
    """Many keys are dropped behind a marker key; a long string value keeps its head."""
    many = {f"key{i}": i for i in range(2_000)}
    data = json.loads(_text(many, budget=300))
    assert "[truncated]" in data
    assert data["key0"] == 0
    long = json.loads(_text({"log": "y" * 50_000}, budget=400))
    assert long["log"].startswith("yyy")
    assert "more characters" in long["log"]


async def test_output_budget_option_applies_per_tool() -> None:
    """`@tool(output_budget=...)` limits that tool's results."""

    def big() -> str:
        """Return a lot."""
        return "z" * 5_000

    result = await Tool.from_function(big, output_budget=200).call({})
    assert len(result.text) <= 200
    assert "truncated" in result.text


def _posted_size(result: CallResult) -> int:
    return sum(len(json.dumps(block, ensure_ascii=False, separators=(",", ":"))) for block in result.content)


def test_budget_drops_an_oversized_image_with_a_marker() -> None:
    """A 2 MB image is counted by its base64 size: it does not fit 100,000 characters and a marker says so."""
    result = shape_result(image(PNG + b"\x00" * 2_000_000))
    assert not result.is_error
    assert [block["type"] for block in result.content] == ["text"]
    assert result.text.startswith("[image omitted: 2,666,7")
    assert "100,000-character output budget" in result.text
    assert _posted_size(result) < 200


def test_budget_counts_every_block_first_come_first_kept() -> None:
    """Blocks are kept in order while they fit; one that does not is replaced in place, and smaller ones still fit."""
    small, big = image(PNG), image(PNG + b"\x00" * 3_000)
    result = shape_result([small, "a caption", big, document(PDF), "x" * 5_000], budget=2_000)
    kinds = [block["type"] for block in result.content]
    assert kinds == ["image", "text", "text", "document", "text"]
    assert result.content[0] == small.to_dict()
    assert result.content[2]["text"].startswith(
        f"[image omitted: {_posted_size(CallResult((big.to_dict(),))):,} characters"
    )
    assert result.content[3] == document(PDF).to_dict()
    assert "[truncated: 5,000 characters" in result.content[4]["text"]
    assert _posted_size(result) <= 2_000 + 100  # block JSON adds a few characters around each text

    text_first = shape_result(["y" * 1_900, small], budget=2_000)
    assert [block["type"] for block in text_first.content] == ["text", "text"]
    assert text_first.content[1]["text"].startswith("[image omitted: ")
    assert "more than the 100 left" in text_first.content[1]["text"]


async def test_output_budget_option_admits_large_media() -> None:
    """A tool that returns large media raises its `output_budget`, and the image goes through whole."""
    photo = image(PNG + b"\x00" * 300_000)

    def snapshot() -> ContentBlock:
        """Return a photo."""
        return photo

    assert (await Tool.from_function(snapshot).call({})).content[0]["type"] == "text"
    result = await Tool.from_function(snapshot, output_budget=500_000).call({})
    assert result.content == (photo.to_dict(),)


async def test_tool_errors_are_text_only_results() -> None:
    """`ToolError` (ours or the SDK's) becomes a text-only error result with its message."""

    def ours() -> None:
        """Fail."""
        raise ToolError("nope")

    def sdk() -> None:
        """Fail."""
        raise SDKToolError([{"type": "text", "text": "sdk says no"}])

    assert await Tool.from_function(ours).call({}) == CallResult.error("nope")
    assert await Tool.from_function(sdk).call({}) == CallResult.error("sdk says no")


async def test_unconvertible_return_is_masked() -> None:
    """A return value with no JSON form fails the tool with a masked reference, not a crash."""

    def odd() -> object:
        """Return something odd."""
        return object()

    result = await Tool.from_function(odd).call({})
    assert result.is_error
    assert result.text.startswith("tool odd failed (ref ")


async def test_validation_error_inside_the_body_is_the_tools_error() -> None:
    """A pydantic ValidationError raised by the tool's own code is masked, not reported as bad input."""

    def parse(raw: str) -> int:
        """Parse a user record."""
        return User.model_validate_json(raw).age

    result = await Tool.from_function(parse).call({"raw": "{}"})
    assert result.is_error
    assert result.text.startswith("tool parse failed (ref ")
    assert "Invalid input" not in result.text


def test_call_result_helpers() -> None:
    """`CallResult.text`, `.error()` and `.to_event()` give the posted shape."""
    result = CallResult(
        ({"type": "text", "text": "a"}, ContentBlock({"type": "x"}).to_dict(), {"type": "text", "text": "b"})
    )
    assert result.text == "a\nb"
    assert CallResult.error("boom").to_event("toolu_1") == {
        "type": "user.custom_tool_result",
        "custom_tool_use_id": "toolu_1",
        "content": [{"type": "text", "text": "boom"}],
        "is_error": True,
    }
