"""MCP results -> custom tool result content (`toolkits.mcp._results`), block by block."""

from __future__ import annotations

import base64

import mcp.types as mt

from bridge import ToolResult
from toolkits.mcp._results import map_result

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"0" * 16).decode()


def mapped(*content: object, structured: object = None, is_error: bool = False) -> ToolResult:
    """Map a result holding `content`, trusted (no untrusted-data boundary)."""
    result = mt.CallToolResult(content=list(content), structured_content=structured, is_error=is_error)  # type: ignore[arg-type]
    return map_result(result, server="s", trusted=True)


def test_structured_content_is_json_and_its_text_copy_is_not_repeated() -> None:
    """structuredContent becomes compact JSON, unless a text block already says the same: never sent twice."""
    assert mapped(structured={"a": [1, 2]}).content == '{"a":[1,2]}'
    assert mapped(mt.TextContent(type="text", text='{"a": 1}'), structured={"a": 1}).content == '{"a": 1}'
    assert mapped(mt.TextContent(type="text", text="hi"), structured={"result": "hi"}).content == "hi"


def test_unsupported_content_becomes_a_visible_marker() -> None:
    """Audio and resource links are replaced by markers naming what was left out."""
    audio = mt.AudioContent(type="audio", data=PNG, mime_type="audio/wav")
    link = mt.ResourceLink(type="resource_link", uri="file:///x.txt", name="x")
    result = mapped(audio, link)
    assert "[audio (audio/wav" in result.content
    assert "[resource link 'x': file:///x.txt (not fetched)]" in result.content


def test_embedded_resources_become_text_or_blocks() -> None:
    """A text resource is text headed by its URI; a PDF blob is a document block."""
    text = mt.EmbeddedResource(
        type="resource", resource=mt.TextResourceContents(uri="file:///a.md", text="# A", mime_type="text/markdown")
    )
    pdf = mt.EmbeddedResource(
        type="resource",
        resource=mt.BlobResourceContents(uri="file:///b.pdf", blob=PNG, mime_type="application/pdf"),
    )
    result = mapped(text, pdf)
    assert result.content[0] == {"type": "text", "text": "[resource file:///a.md (text/markdown)]\n# A"}
    assert result.content[1]["type"] == "document"


def test_error_results_are_text_only() -> None:
    """isError becomes is_error, and an image in it becomes a marker."""
    image = mt.ImageContent(type="image", data=PNG, mime_type="image/png")
    result = mapped(mt.TextContent(type="text", text="boom"), image, is_error=True)
    assert result.is_error
    assert result.content == "boom\n[image omitted]"


def test_untrusted_text_is_fenced() -> None:
    """Text from an untrusted server is wrapped in a nonce boundary that names the server."""
    result = map_result(
        mt.CallToolResult(content=[mt.TextContent(type="text", text="hi")]), server="files", trusted=False
    )
    assert "MCP server 'files'" in result.content
    assert "\nhi\n</untrusted-data-" in result.content
