"""Claude content blocks -> MCP content: the same shaped result, in the other protocol's words.

A tool's return value is shaped once, by `bridge.tools` (JSON for data, the output budget, error text); this module only
re-spells the blocks:

| Claude block                      | MCP content                                                     |
|-----------------------------------|-----------------------------------------------------------------|
| `text`                            | `text`                                                          |
| `image` (base64)                  | `image` (`data`, `mimeType`)                                    |
| `document` (base64 PDF)           | `resource` embedding a blob (`application/pdf`)                 |
| `document` (plain text)           | `resource` embedding text (`text/plain`)                        |
| `image` / `document` by URL       | `resource_link` to that URL                                     |
| `search_result`                   | `text`: title, source, then the passages                        |
| `image` / `document` by file id   | `text` naming the Files API id (no MCP equivalent)              |

Embedded documents get a `bridge://` URI naming the tool, the request and the block's position, so a client that
stores resources can tell them apart; their title, when set, becomes the resource's `_meta.title`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from ..tools import CallResult

__all__ = ["to_mcp_result"]


def to_mcp_result(result: CallResult, *, tool: str, request_id: str) -> dict[str, Any]:
    """The wire `CallToolResult` (`content`, `isError`) for a shaped call result."""
    base = f"bridge://{quote(tool)}/{quote(request_id)}"
    content = [_block(block, f"{base}/{i}") for i, block in enumerate(result.content)]
    return {"content": content, "isError": result.is_error}


def _block(block: Mapping[str, Any], uri: str) -> dict[str, Any]:
    kind = block.get("type")
    if kind == "text":
        return {"type": "text", "text": block["text"]}
    if kind == "image":
        return _media(block, uri, "image")
    if kind == "document":
        return _media(block, uri, "document")
    if kind == "search_result":
        passages = [item["text"] for item in block.get("content", ()) if isinstance(item, Mapping)]
        return {"type": "text", "text": "\n".join([f"{block['title']} ({block['source']})", *passages])}
    return {"type": "text", "text": f"({kind} block not representable over MCP)"}


def _media(block: Mapping[str, Any], uri: str, kind: str) -> dict[str, Any]:
    source: Mapping[str, Any] = block["source"]
    src = source.get("type")
    if src == "url":
        link: dict[str, Any] = {"type": "resource_link", "uri": source["url"], "name": block.get("title") or kind}
        return link
    if src == "file":
        return {"type": "text", "text": f"({kind} stored in the Files API as {source['file_id']})"}
    if kind == "image":
        return {"type": "image", "data": source["data"], "mimeType": source["media_type"]}
    media_type = source.get("media_type", "application/pdf")
    resource: dict[str, Any] = {"uri": uri, "mimeType": media_type}
    resource["text" if src == "text" else "blob"] = source["data"]
    embedded: dict[str, Any] = {"type": "resource", "resource": resource}
    if block.get("title"):
        resource["_meta"] = {"title": block["title"]}
    return embedded
