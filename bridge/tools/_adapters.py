"""Accept the SDK's tool objects (`@beta_tool`, `@beta_async_tool`, `async_mcp_tool`, ...) as tools.

A `@beta_tool` whose function has a real signature is rebuilt from that function, so it gets everything a `@tool`
gets (closed schemas, model-friendly validation errors, JSON for dict returns). Anything else with `to_dict()` and
`call()` (MCP tools, tools with a hand-written `input_schema`) is wrapped as is: its schema is made Claude-ready,
its own validation is kept, and its pydantic errors are reported field by field. Either way the SDK's cleanup
(`close`, context-manager tools) runs when the toolset closes.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import pydantic

from .._errors import DefinitionError
from ._compile import Impl
from ._context import ToolContext
from ._lint import LintIssue
from ._problems import InputError, describe_validation_error
from ._resources import Resource
from ._schema import build_schema_from_json
from ._tool import Tool

__all__ = ["adapt"]


def _is_sdk_tool(obj: object) -> bool:
    return callable(getattr(obj, "to_dict", None)) and callable(getattr(obj, "call", None))


def _only_var_kwargs(fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    return all(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _cleanup(obj: Any, name: str) -> Resource | None:
    """A resource whose exit runs the SDK's cleanup for `obj`, when it has any."""
    if not (getattr(obj, "close", None) or getattr(obj, "aclose", None) or hasattr(obj, "_context_manager")):
        return None

    @contextlib.asynccontextmanager
    async def closing() -> AsyncIterator[None]:
        from anthropic.lib.tools._beta_functions import aclose_runnable_tool

        try:
            yield
        finally:
            await aclose_runnable_tool(obj)

    return Resource(closing, f"SDK tool {name!r} cleanup")


def _wrap(obj: Any) -> Tool:
    """A `Tool` that delegates validation and execution to an SDK tool object."""
    spec = obj.to_dict()
    name = str(spec.get("name") or "")
    description = str(spec.get("description") or "").strip()
    if not description:
        raise DefinitionError(f"SDK tool {name!r} has no description, and Managed Agents requires one")
    schema, issues = build_schema_from_json(dict(spec.get("input_schema") or {"type": "object"}), name)
    call = obj.call
    is_async = inspect.iscoroutinefunction(call)

    def bind(data: object, context: ToolContext, tool_name: str) -> tuple[list[Any], dict[str, Any]]:
        if not isinstance(data, dict):
            raise InputError(f"Invalid input for tool {tool_name}: the input must be a JSON object.")
        return [data], {}

    def reraise(exc: Exception) -> None:
        cause = exc.__cause__
        if isinstance(exc, ValueError) and isinstance(cause, pydantic.ValidationError):
            raise InputError(describe_validation_error(cause, schema, name)) from None
        raise exc

    if is_async:

        async def run(data: dict[str, Any]) -> Any:
            try:
                return await call(data)
            except ValueError as exc:
                reraise(exc)

    else:

        def run(data: dict[str, Any]) -> Any:  # type: ignore[misc]
            try:
                return call(data)
            except ValueError as exc:
                reraise(exc)

    issues.append(LintIssue("", "note", "wrapped SDK tool: input is validated by the tool itself"))
    return Tool(name, _options_for(name), Impl(run, is_async, description, schema, tuple(issues), bind))


def schema_impl(
    name: str,
    description: str,
    input_schema: Mapping[str, Any],
    fn: Callable[[dict[str, Any], ToolContext], Awaitable[Any]],
) -> Impl:
    """The `Impl` of `Tool.from_schema`: a Claude-ready copy of `input_schema`, and `fn` called with the raw input."""
    description = description.strip()
    if not description:
        raise DefinitionError(f"tool {name!r} has no description, and Managed Agents requires one")
    schema, issues = build_schema_from_json(dict(input_schema), name)

    def bind(data: object, context: ToolContext, tool_name: str) -> tuple[list[Any], dict[str, Any]]:
        if not isinstance(data, dict):
            raise InputError(f"Invalid input for tool {tool_name}: the input must be a JSON object.")
        return [data, context], {}

    return Impl(fn, True, description, schema, tuple(issues), bind)


def _options_for(name: str) -> Any:
    from ._decorator import ToolOptions

    return ToolOptions(name=name)


def adapt(item: Any) -> tuple[Tool, Resource | None]:
    """A `Tool` for anything `Toolset` accepts besides toolsets, plus the SDK cleanup to run on close.

    Raises:
        DefinitionError: The item cannot be a tool.
    """
    if isinstance(item, Tool):
        return item, None
    if _is_sdk_tool(item):
        func = getattr(item, "func", None)
        name = getattr(item, "name", None)
        if callable(func) and not _only_var_kwargs(func):
            description = getattr(item, "description", None) or None
            tool = Tool.from_function(func, name=name, description=description)
        else:
            tool = _wrap(item)
        return tool, _cleanup(item, tool.name)
    if callable(item):
        return Tool.from_function(item), None
    raise DefinitionError(f"cannot make a tool from {type(item).__name__}: {item!r}; pass a function or a Tool")
