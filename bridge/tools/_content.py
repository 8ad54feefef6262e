"""Result content: `CallResult` (what gets posted), `ToolResult` (what a tool may return), and block helpers.

A `user.custom_tool_result` carries a list of content blocks (text, image, document, search_result) and an
`is_error` flag. The API accepts only text on an error result, so every error path here produces text-only content.
Blocks built by `image()` and `document()` are `ContentBlock` objects rather than bare dicts, so a tool returning a
plain dict is always data (sent as JSON) and never mistaken for a block.
"""

from __future__ import annotations

import base64
import mimetypes
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "BLOCK_TYPES",
    "NO_OUTPUT",
    "CallResult",
    "ContentBlock",
    "ToolResult",
    "document",
    "image",
    "text_block",
]

NO_OUTPUT = "(no output)"
"""The text posted for `None`, `""` or an empty list: the API needs at least something the model can read."""

BLOCK_TYPES = frozenset({"text", "image", "document", "search_result"})
"""Content block types a custom tool result may carry."""

_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_DOCUMENT_TYPES = frozenset({"application/pdf", "text/plain"})


def text_block(text: str) -> dict[str, Any]:
    """A text content block."""
    return {"type": "text", "text": text}


@dataclass(frozen=True)
class CallResult:
    """The outcome of one tool call, exactly as it will be posted.

    Attributes:
        content: Content blocks as JSON-ready dicts (text, image, document, search_result).
        is_error: True when the call failed; then `content` is text only.
    """

    content: tuple[dict[str, Any], ...]
    is_error: bool = False

    @classmethod
    def error(cls, text: str) -> CallResult:
        """A text-only error result, for failures outside the tool (timeouts, unknown tool, shutdown...)."""
        return cls((text_block(text or "error"),), is_error=True)

    @classmethod
    def of_text(cls, text: str) -> CallResult:
        """A successful text-only result."""
        return cls((text_block(text or NO_OUTPUT),))

    @property
    def text(self) -> str:
        """The text blocks joined by newlines (non-text blocks are left out)."""
        return "\n".join(block["text"] for block in self.content if block.get("type") == "text")

    def to_event(self, tool_use_id: str) -> dict[str, Any]:
        """The `user.custom_tool_result` event answering the call `tool_use_id`."""
        return {
            "type": "user.custom_tool_result",
            "custom_tool_use_id": tool_use_id,
            "content": [dict(block) for block in self.content],
            "is_error": self.is_error,
        }


@dataclass(frozen=True)
class ContentBlock:
    """One ready-made content block (see `image()` and `document()`); returned alone or inside a list."""

    block: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The block as a JSON-ready dict."""
        return dict(self.block)


@dataclass(frozen=True)
class ToolResult:
    """An explicit result: use it to return mixed content or to flag an error without raising.

    Args:
        content: A string, a `ContentBlock`, or a list of strings, `ContentBlock`s and block dicts. Anything else is
            converted as a plain return value would be (JSON text).
        is_error: Post the result as an error. Error results are text-only: other blocks become a short note.
    """

    content: Any
    is_error: bool = False


def _read(source: bytes | str | Path) -> tuple[bytes, str | None]:
    """Bytes and a guessed media type from raw bytes or a file path."""
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source), None
    path = Path(source)
    guessed, _ = mimetypes.guess_type(path.name)
    return path.read_bytes(), guessed


def _sniff_image(data: bytes) -> str | None:
    """The image media type from the file's magic bytes."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def image(source: bytes | str | Path, media_type: str | None = None) -> ContentBlock:
    """An image block from bytes or a file path.

    Args:
        source: The image bytes, or the path of an image file.
        media_type: One of image/jpeg, image/png, image/gif, image/webp; detected from the bytes when omitted.

    Raises:
        ValueError: The media type is missing or not one the API accepts.
    """
    data, guessed = _read(source)
    media_type = media_type or _sniff_image(data) or guessed
    if media_type not in _IMAGE_TYPES:
        raise ValueError(f"image media type must be one of {sorted(_IMAGE_TYPES)}, got {media_type!r}")
    encoded = base64.b64encode(data).decode("ascii")
    return ContentBlock({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": encoded}})


def document(
    source: bytes | str | Path,
    media_type: str | None = None,
    *,
    title: str | None = None,
    context: str | None = None,
) -> ContentBlock:
    """A document block (PDF or plain text) from bytes or a file path.

    Args:
        source: The document bytes, or the path of a .pdf or .txt file.
        media_type: `application/pdf` or `text/plain`; detected from the bytes or the file name when omitted.
        title: A title the model sees with the document.
        context: Extra context about the document for the model.

    Raises:
        ValueError: The media type is missing or unsupported, or a text document is not UTF-8.
    """
    data, guessed = _read(source)
    media_type = media_type or ("application/pdf" if data.startswith(b"%PDF") else guessed)
    if media_type not in _DOCUMENT_TYPES:
        raise ValueError(f"document media type must be one of {sorted(_DOCUMENT_TYPES)}, got {media_type!r}")
    src: dict[str, Any]
    if media_type == "text/plain":
        src = {"type": "text", "media_type": "text/plain", "data": data.decode("utf-8")}
    else:
        src = {"type": "base64", "media_type": media_type, "data": base64.b64encode(data).decode("ascii")}
    block: dict[str, Any] = {"type": "document", "source": src}
    if title is not None:
        block["title"] = title
    if context is not None:
        block["context"] = context
    return ContentBlock(block)


def block_problem(block: Mapping[str, Any]) -> str | None:
    """Why `block` is not a content block the API accepts, or None when it is.

    Only the shape is checked (type, required keys, source kinds); the API does the rest.
    """
    kind = block.get("type")
    if kind == "text":
        return None if isinstance(block.get("text"), str) else "a text block needs a string 'text'"
    if kind in ("image", "document"):
        source = block.get("source")
        if not isinstance(source, Mapping):
            return f"an {kind} block needs a 'source' object"
        allowed = {"base64", "url", "file"} | ({"text"} if kind == "document" else set())
        src_kind = source.get("type")
        if src_kind not in allowed:
            return f"{kind} source type must be one of {sorted(allowed)}, got {src_kind!r}"
        required = {"base64": ("data", "media_type"), "text": ("data",), "url": ("url",), "file": ("file_id",)}
        missing = [key for key in required[src_kind] if not isinstance(source.get(key), str)]
        return f"{kind} {src_kind} source needs string {missing}" if missing else None
    if kind == "search_result":
        missing = [key for key in ("source", "title") if not isinstance(block.get(key), str)]
        content = block.get("content")
        if missing:
            return f"a search_result block needs string {missing}"
        if not isinstance(content, Sequence) or not all(
            isinstance(item, Mapping) and item.get("type") == "text" and isinstance(item.get("text"), str)
            for item in content
        ):
            return "a search_result block needs 'content': a list of text blocks"
        return None
    return f"unknown content block type {kind!r} (allowed: {sorted(BLOCK_TYPES)})"
