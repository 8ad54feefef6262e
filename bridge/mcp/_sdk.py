"""The one module that knows which `mcp` package generation is installed.

The extra pins `mcp>=1.10,<3`. Both generations ship a low-level `Server`, `stdio_server` and the streamable-HTTP
`StreamableHTTPSessionManager`, and both speak the same wire shapes, but they register handlers differently:

- 1.x: `server.request_handlers[types.CallToolRequest] = handler(request)`; the request's context (id, `_meta`,
  session) is read from `server.request_context`, a context variable.
- 2.x: `Server(name, on_call_tool=handler(ctx, params))`; the context is the handler's first argument.

Everything else in `bridge.mcp` builds wire-format dicts (`{"content": [...], "isError": ...}`) and receives a
`Request`, so this is the only place that touches either API. Asking the user (form-mode elicitation, for approval
policies that say "ask") is offered on 2.x only, and only to a client that declared the capability: on the 2025
protocols as an `elicitation/create` request to the client (`Request.elicit`); on 2026-07-28, which has no channel
back to the client, as an `input_required` result the client answers by retrying the call (`Request.retry`,
`input_required`). Elsewhere both are None and such calls are refused (fail closed). The result models of both
generations validate the same camelCase wire dicts, which keeps the adapters short.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .._errors import ConfigError

__all__ = [
    "APPROVAL_PROMPT",
    "MCP_EXTRA",
    "Elicit",
    "ListTools",
    "Report",
    "Request",
    "Retry",
    "ToolCall",
    "build_server",
    "input_required",
    "require_mcp",
]

MCP_EXTRA = "pip install 'tool-bridge[mcp]'"

Report = Callable[[float, float | None, str | None], Awaitable[None]]
"""Sends one `notifications/progress` for the current request: `(progress, total, message)`."""

APPROVAL_PROMPT = "approval"  # the key of the approval prompt in an `input_required` result
_PROMPT_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}

Elicit = Callable[[str], Awaitable[str]]
"""Asks the client's user to confirm `message` (form-mode `elicitation/create`, no fields); returns the user's action:
`"accept"`, `"decline"` or `"cancel"`. Raises whatever the SDK raises when the client fails to answer."""


@dataclass(frozen=True)
class Retry:
    """A 2026-07-28 call from a client that can be asked by an `input_required` result and a retried call.

    Attributes:
        answers: The user's action (`"accept"`, `"decline"`, `"cancel"`) per prompt key, on a retried call.
        state: The `requestState` the client echoed back on a retried call (attacker-controlled: verify it).
    """

    answers: Mapping[str, str]
    state: str | None


def input_required(message: str, state: str) -> dict[str, Any]:
    """A `tools/call` answer asking the user to confirm `message` (2026-07-28): the client retries the call with the
    user's action and `state`."""
    prompt = {"mode": "form", "message": message, "requestedSchema": _PROMPT_SCHEMA}
    request = {"method": "elicitation/create", "params": prompt}
    return {"resultType": "input_required", "inputRequests": {APPROVAL_PROMPT: request}, "requestState": state}


@dataclass(frozen=True)
class Request:
    """What a tool call needs to know about the MCP request that carries it.

    Attributes:
        request_id: The JSON-RPC id of the `tools/call` request (unique per connection).
        session_id: The `Mcp-Session-Id` of a streamable-HTTP session, else None (stdio: one client per process).
        report: Sends a progress notification; None when the client sent no progress token.
        elicit: Asks the client's user to confirm something; None when the client cannot be asked that way (it
            declared no form-mode elicitation capability, or the transport has no channel back to it).
        retry: Set when the client can be asked by an `input_required` result instead (2026-07-28).
    """

    request_id: str
    session_id: str | None
    report: Report | None
    elicit: Elicit | None = None
    retry: Retry | None = None


ListTools = Callable[[], list[dict[str, Any]]]
ToolCall = Callable[[str, Mapping[str, Any], Request], Awaitable[dict[str, Any]]]


def require_mcp() -> Any:
    """The `mcp` package, or a `ConfigError` naming the extra to install."""
    try:
        return importlib.import_module("mcp")
    except ImportError as exc:
        raise ConfigError(f"serving tools over MCP needs the official `mcp` package: {MCP_EXTRA}") from exc


def is_v2() -> bool:
    """True for the 2.x generation (handlers passed to the `Server` constructor)."""
    from mcp.server.lowlevel import Server

    return "on_call_tool" in inspect.signature(Server.__init__).parameters


def build_server(name: str, version: str, list_tools: ListTools, call_tool: ToolCall) -> Any:
    """A low-level `mcp` `Server` answering `tools/list` and `tools/call` with the given functions."""
    require_mcp()
    build = _build_v2 if is_v2() else _build_v1
    return build(name, version, list_tools, call_tool)


def _session_id(http_request: Any) -> str | None:
    headers = getattr(http_request, "headers", None)
    return headers.get("mcp-session-id") if headers is not None else None


def _build_v2(name: str, version: str, list_tools: ListTools, call_tool: ToolCall) -> Any:
    import mcp_types as types  # type: ignore[import-not-found,unused-ignore]
    from mcp.server.lowlevel import Server

    async def on_list_tools(ctx: Any, params: Any) -> Any:
        return types.ListToolsResult.model_validate({"tools": list_tools()})

    async def on_call_tool(ctx: Any, params: Any) -> Any:
        meta = ctx.meta or {}
        report: Report | None = None
        if meta.get("progress_token", meta.get("progressToken")) is not None:
            session = ctx.session

            async def report(progress: float, total: float | None, message: str | None) -> None:
                await session.report_progress(progress, total, message)

        elicit = _elicit_v2(ctx)
        retry = _retry_v2(ctx, params) if elicit is None else None
        request = Request(str(ctx.request_id), _session_id(ctx.request), report, elicit, retry)
        wire = await call_tool(params.name, params.arguments or {}, request)
        if wire.get("resultType") == "input_required":
            return types.InputRequiredResult.model_validate(wire)
        return types.CallToolResult.model_validate(wire)

    return Server(name, version=version, on_list_tools=on_list_tools, on_call_tool=on_call_tool)


def _can_elicit(session: Any) -> bool:
    """Whether the client declared form-mode elicitation."""
    capabilities = getattr(session, "client_capabilities", None)
    elicitation = getattr(capabilities, "elicitation", None)
    # An empty `elicitation: {}` (protocol 2025-06-18) means form mode; later clients name the modes they support.
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)


def _elicit_v2(ctx: Any) -> Elicit | None:
    """A confirmation prompt through the client, if it declared form-mode elicitation and can be sent a request."""
    session = ctx.session
    if not _can_elicit(session) or not getattr(session, "can_send_request", False):
        return None
    request_id = ctx.request_id

    async def elicit(message: str) -> str:
        result = await session.elicit_form(message, _PROMPT_SCHEMA, related_request_id=request_id)
        return str(result.action)

    return elicit


def _retry_v2(ctx: Any, params: Any) -> Retry | None:
    """The 2026-07-28 multi-round-trip way to ask, if the connection speaks it and the client declared elicitation."""
    from mcp_types.version import MODERN_PROTOCOL_VERSIONS  # type: ignore[import-not-found,unused-ignore]

    session = ctx.session
    if getattr(session, "protocol_version", None) not in MODERN_PROTOCOL_VERSIONS or not _can_elicit(session):
        return None
    responses = getattr(params, "input_responses", None) or {}
    answers = {str(key): str(getattr(value, "action", "")) for key, value in responses.items()}
    return Retry(answers, getattr(params, "request_state", None))


def _build_v1(name: str, version: str, list_tools: ListTools, call_tool: ToolCall) -> Any:
    from mcp.server.lowlevel import Server

    types: Any = importlib.import_module("mcp.types")
    # Registered as raw request handlers, not through `@server.call_tool()`: that decorator validates the input
    # with `jsonschema` first (other error texts than ours) and turns exceptions into unmasked error text.
    server: Any = Server(name, version=version)

    async def on_list_tools(request: Any) -> Any:
        return types.ServerResult(types.ListToolsResult.model_validate({"tools": list_tools()}))

    async def on_call_tool(request: Any) -> Any:
        ctx = server.request_context
        token = getattr(ctx.meta, "progressToken", None) if ctx.meta is not None else None
        report: Report | None = None
        if token is not None:
            session, request_id = ctx.session, ctx.request_id

            async def report(progress: float, total: float | None, message: str | None) -> None:
                await session.send_progress_notification(
                    token, progress, total, message=message, related_request_id=request_id
                )

        info = Request(str(ctx.request_id), _session_id(ctx.request), report)
        wire = await call_tool(request.params.name, request.params.arguments or {}, info)
        return types.ServerResult(types.CallToolResult.model_validate(wire))

    server.request_handlers[types.ListToolsRequest] = on_list_tools
    server.request_handlers[types.CallToolRequest] = on_call_tool
    return server
