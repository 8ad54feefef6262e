"""Return value -> result content: one conversion for every kind of value a tool may return.

The rules, in order:

- `ToolResult` is explicit; its content goes through the rules below and its `is_error` is kept.
- `str` is text; `None`, `""` and `[]` are "(no output)".
- A `ContentBlock` (from `image()`/`document()`) is that block; a list holding at least one `ContentBlock` and
  otherwise strings or blocks is a block list (strings become text blocks).
- A list whose items are all dicts with a content-block `type` is a block list and must be valid, else the tool fails.
- Everything else (dict, list, number, bool, pydantic model, dataclass, datetime...) is compact JSON text, so a dict
  is never mistaken for blocks and a model never reaches the model as `name='x' age=3`.

Every text is sanitised (lone surrogates become U+FFFD) and the whole result is held to an output budget of
characters: text is cut and JSON loses items and keys behind a visible marker (so it stays valid JSON); an image,
document or search result counts its JSON size, base64 included, and one that does not fit is replaced by a text
marker saying so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pydantic_core

from ._budget import dumps, truncate_json, truncate_text
from ._content import BLOCK_TYPES, NO_OUTPUT, CallResult, ContentBlock, ToolResult, block_problem, text_block

__all__ = ["DEFAULT_OUTPUT_BUDGET", "ResultError", "error_text", "sanitize", "shape_result", "to_json"]

DEFAULT_OUTPUT_BUDGET = 100_000
"""Characters a result may carry unless the tool sets `output_budget`: about 25k tokens of text, or an image or
document of about 73 KB (base64 makes 4 characters of 3 bytes). Raise it on tools that return larger media."""


class ResultError(Exception):
    """A tool returned something that cannot be posted (an invalid block, an object with no JSON form)."""


def sanitize(text: str) -> str:
    """Replace lone UTF-16 surrogates (which cannot be encoded as UTF-8 and fail the POST) with U+FFFD.

    Also turns str subclasses (a `(str, Enum)` member...) into plain `str` holding the same characters.
    """
    if type(text) is not str:
        text = str.__str__(text)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _jsonable(value: Any) -> Any:
    """A JSON-ready copy of `value`: sets sorted, strings sanitised, NaN/inf as null, objects via pydantic."""
    if isinstance(value, str):
        return sanitize(value)
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {sanitize(str(key)): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, set | frozenset):
        items = [_jsonable(item) for item in value]
        try:
            return sorted(items)
        except TypeError:
            return sorted(items, key=repr)
    try:
        converted = pydantic_core.to_jsonable_python(value, by_alias=True)
    except pydantic_core.PydanticSerializationError as exc:
        raise ResultError(f"returned a {type(value).__name__}, which has no JSON form: {exc}") from None
    return _jsonable(converted)


def to_json(value: Any) -> str:
    """Compact, deterministic JSON text for any JSON-able value (models, dataclasses, datetimes included)."""
    return pydantic_core.to_json(_jsonable(value)).decode("utf-8")


def error_text(text: str, budget: int = DEFAULT_OUTPUT_BUDGET) -> CallResult:
    """A text-only error result held to the budget."""
    return CallResult((text_block(truncate_text(sanitize(text) or "error", budget)),), is_error=True)


def _is_block_dict(item: object) -> bool:
    return isinstance(item, Mapping) and item.get("type") in BLOCK_TYPES


def _blocks(items: Sequence[Any]) -> list[dict[str, Any]]:
    """Validated content blocks from a list of strings, `ContentBlock`s and block dicts."""
    blocks: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        if isinstance(item, str):
            blocks.append(text_block(item))
            continue
        block = item.to_dict() if isinstance(item, ContentBlock) else item
        if not isinstance(block, Mapping):
            raise ResultError(f"item {index} of the returned content list is a {type(item).__name__}, not a block")
        problem = block_problem(block)
        if problem is not None:
            raise ResultError(f"item {index} of the returned content list is invalid: {problem}")
        blocks.append(_jsonable(block))
    return blocks


def _as_blocks(value: Any) -> list[dict[str, Any]] | None:
    """The value as content blocks, or None when it is data to send as JSON."""
    if isinstance(value, ContentBlock):
        return _blocks([value])
    if isinstance(value, list | tuple) and value:
        if any(isinstance(item, ContentBlock) for item in value) and all(
            isinstance(item, str | ContentBlock) or _is_block_dict(item) for item in value
        ):
            return _blocks(value)
        if all(_is_block_dict(item) for item in value):
            return _blocks(value)
    return None


def _budgeted(blocks: list[dict[str, Any]], budget: int) -> list[dict[str, Any]]:
    """Hold the blocks' total size to `budget` characters, first come first kept.

    A text block counts its characters and is cut to what is left. Any other block counts the characters of its
    JSON (base64 data included) and is kept whole or replaced, in place, by a text marker naming what was dropped:
    a half image is no image, and a silent drop would leave the model guessing.
    """
    remaining = budget
    out: list[dict[str, Any]] = []
    for block in blocks:
        if block["type"] == "text":
            text = sanitize(block["text"])
            if len(text) > remaining:
                text = truncate_text(text, max(remaining, 0))
            remaining -= len(text)
            out.append({**block, "text": text})
            continue
        size = len(dumps(block))
        if size > remaining:
            left = max(remaining, 0)
            block = text_block(
                f"[{block['type']} omitted: {size:,} characters, more than the {left:,} left of this result's "
                f"{budget:,}-character output budget]"
            )
            size = len(block["text"])
        remaining -= size
        out.append(block)
    return out


def shape_result(value: Any, *, budget: int = DEFAULT_OUTPUT_BUDGET) -> CallResult:
    """Convert a tool's return value into the content to post.

    Raises:
        ResultError: The value cannot be posted (invalid blocks, no JSON form); the caller reports it as a tool
            failure, because it is a bug in the tool, not something the model did.
    """
    is_error = False
    if isinstance(value, ToolResult):
        value, is_error = value.content, value.is_error
    blocks = _as_blocks(value)
    if blocks is None:
        if value is None or (isinstance(value, str | list | tuple) and len(value) == 0):
            text = NO_OUTPUT
        elif isinstance(value, str):
            text = truncate_text(sanitize(value), budget)
        else:
            text = truncate_json(_jsonable(value), budget)
        blocks = [text_block(text)]
    else:
        if is_error:
            blocks = [
                block if block["type"] == "text" else text_block(f"[{block['type']} omitted]") for block in blocks
            ]
        blocks = _budgeted(blocks, budget)
    return CallResult(tuple(blocks), is_error=is_error)
