"""The HTTP tools, closures over one `Fetcher`, built into a `Toolset`.

`get` is `read_only` and `idempotent`; `post` (only when the operator enables it) is neither, so the runtime never
re-runs it after a crash, and it sends `Idempotency-Key: <session_id>:<tool_use_id>` so a server can dedupe too.
Every answer is a JSON header line (status, final URL, sizes, whether it was cut), then the response headers and
content type, then the body text, each inside its own untrusted-data boundary (the server wrote all of them).
Values of the operator's injected headers are redacted from everything the model sees, in case a server echoes
them back.

No `from __future__ import annotations`: the annotations use local values (the caps) and are evaluated here.
"""

import json as jsonlib
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import Field

from bridge import Tool, ToolContext, ToolError, Toolset

from .._fence import fence
from ._fetch import Fetched, Fetcher

__all__ = ["build_toolset"]

_TEXTUAL = ("text/", "json", "xml", "javascript", "x-www-form-urlencoded", "yaml", "csv")


def _is_text(fetched: Fetched) -> bool:
    kind = fetched.content_type.split(";", 1)[0].strip().lower()
    if kind and not any(marker in kind for marker in _TEXTUAL):
        return False
    return b"\x00" not in fetched.body[:8192]


def _redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "[redacted]")
    return text


def build_toolset(fetcher: Fetcher, *, name: str, prefix: str | None, allow_post: bool, secrets: list[str]) -> Toolset:
    """The tools over `fetcher`, named `<prefix>_<tool>` (`http_get`, `http_post`)."""
    limits = fetcher.limits
    MaxChars = Annotated[int | None, Field(ge=1, le=limits.max_chars_limit)]
    Headers = Annotated[dict[str, str] | None, Field(description="Extra request headers (only some names allowed).")]
    where = jsonlib.dumps(fetcher.scope.describe())
    hidden = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)  # whole values before their parts

    def render(fetched: Fetched, start_index: int, max_chars: int | None) -> str:
        header: dict[str, Any] = {
            "status": fetched.status,
            "method": fetched.method,
            "url": fetched.url,
            "bytes": len(fetched.body),
            "truncated_at_bytes": limits.max_response_bytes if fetched.truncated else None,
            "redirects": fetched.redirects,
            "elapsed_ms": round(fetched.elapsed_ms, 1),
        }
        # The server wrote the response headers (Content-Type included): they are untrusted text like the body.
        meta = jsonlib.dumps({"content_type": fetched.content_type, "headers": fetched.headers}, ensure_ascii=False)
        shown = fence(_redact(meta, hidden), source=f"the HTTP response headers of {fetched.url}")
        if not _is_text(fetched):
            header["note"] = f"binary body ({len(fetched.body)} bytes) not shown; its type is in the response headers"
            return _redact(jsonlib.dumps(header), hidden) + "\n" + shown
        text = _redact(fetched.body.decode(fetched.charset or "utf-8", errors="replace"), hidden)
        cap = max_chars or limits.max_chars
        if start_index > len(text):
            raise ToolError(f"invalid_input: start_index {start_index} is past the end ({len(text)} characters)")
        page = text[start_index : start_index + cap]
        header.update(start_index=start_index, chars=len(page), total_chars=len(text))
        if start_index + cap < len(text):
            header["next_start_index"] = start_index + cap
        source = f"the HTTP response of {fetched.url}"
        return (
            _redact(jsonlib.dumps(header, ensure_ascii=False), hidden)
            + "\n"
            + shown
            + "\n"
            + fence(page, source=source)
        )

    async def get(
        url: str, headers: Headers = None, start_index: Annotated[int, Field(ge=0)] = 0, max_chars: MaxChars = None
    ) -> str:
        """Fetch a URL with GET and return its status, some headers, and the body text.

        Only the configured destinations are reachable; redirects are followed when they stay allowed. Long
        bodies come in pages: call again with start_index=next_start_index.

        Args:
            url: An absolute http(s) URL.
            headers: Extra request headers, e.g. {"Accept": "application/json"}.
            start_index: The first character of the body text to return.
            max_chars: The most characters of body text to return.
        """
        fetched = await fetcher.fetch("GET", url, headers=headers)
        return render(fetched, start_index, max_chars)

    async def post(
        ctx: ToolContext,
        url: str,
        json: Any = None,
        body: str | None = None,
        headers: Headers = None,
        max_chars: MaxChars = None,
    ) -> str:
        """Send a POST request to a URL and return the response's status, some headers, and the body text.

        Give either json (sent as application/json) or body (sent as is, with your Content-Type header).
        The request carries an Idempotency-Key unique to this call.

        Args:
            url: An absolute http(s) URL.
            json: A JSON value to send.
            body: Raw text to send instead of json.
            headers: Extra request headers, e.g. {"Content-Type": "text/csv"}.
            max_chars: The most characters of body text to return.
        """
        if json is not None and body is not None:
            raise ToolError("invalid_input: give json or body, not both")
        sent = dict(headers or {})
        if json is not None:
            payload = jsonlib.dumps(json, ensure_ascii=False).encode()
            sent.setdefault("Content-Type", "application/json")
        else:
            payload = (body or "").encode()
        key = f"{ctx.session_id}:{ctx.tool_use_id}"
        fetched = await fetcher.fetch("POST", url, headers=sent, body=payload, idempotency_key=key)
        return render(fetched, 0, max_chars)

    for fn in (get, post):
        _add_note(fn, f"Reachable: {where}.")
    tools = [Tool.from_function(get, name="get", read_only=True, idempotent=True, timeout=limits.timeout + 5)]
    if allow_post:
        tools.append(Tool.from_function(post, name="post", idempotent=False, timeout=limits.timeout + 5))
    return Toolset(tools, name=name, prefix=prefix or None)


def _add_note(fn: Callable[..., Any], note: str) -> None:
    """Put the destinations at the end of the description, before the Args section."""
    doc = fn.__doc__ or ""
    head, sep, args = doc.partition("\n\n        Args:")
    fn.__doc__ = f"{head}\n\n        {note}{sep}{args}"
