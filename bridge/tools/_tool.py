"""`Tool`: a function, its frozen options and its compiled input schema, callable the way the bridge calls it.

`Tool.call` is the one path every call takes, in tests and in the runtime: validate the input, run the function
(sync functions in a worker thread), shape the return value. It never raises for bad input or for the tool's own
exceptions; those become `is_error` results. Cancellation always propagates, and it sets the context's cancel flag
first: a sync tool's thread cannot be stopped, only abandoned, so the flag is how it learns to stop on its own.

A tool may also be a context-manager factory (`@contextmanager` / `@asynccontextmanager`) that opens a resource and
yields the function that uses it. Its schema is built from the yielded function when its toolset is opened
(`async with toolset`), and the resource is closed when the toolset closes.
"""

from __future__ import annotations

import copy
import functools
import inspect
import secrets
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from .._errors import DefinitionError, ToolError
from ._budget import dumps
from ._compile import Impl, build_impl, function_name, is_cm_factory
from ._content import CallResult
from ._context import ToolContext
from ._decorator import ToolOptions, check_name, options_of
from ._docstrings import parse_docstring
from ._lint import LintReport
from ._problems import InputError
from ._resources import ToolResource
from ._results import DEFAULT_OUTPUT_BUDGET, error_text, shape_result

__all__ = ["RunSync", "Tool", "default_run_sync"]

T = TypeVar("T")
RunSync = Callable[[Callable[[], T]], Awaitable[T]]
"""How sync tool functions are run: given a no-argument callable, run it (in a thread) and return its result."""


def _tool_errors() -> tuple[type[Exception], ...]:
    """Our `ToolError`, and the SDK's (`anthropic.lib.tools.ToolError`) so `@beta_tool` bodies port unchanged.

    The SDK is not imported for this (it takes about a second): a tool can only raise the SDK's class after
    importing it, so when `anthropic.lib.tools` is not loaded, no such exception exists.
    """
    sdk = getattr(sys.modules.get("anthropic.lib.tools"), "ToolError", None)
    if isinstance(sdk, type) and issubclass(sdk, Exception):
        return (ToolError, sdk)
    return (ToolError,)


def _told(exc: Exception) -> str | None:
    """The text of an exception group made only of `ToolError`s (a tool's own task group), else None."""
    if not isinstance(exc, ExceptionGroup):
        return None
    matched, rest = exc.split(_tool_errors())
    if matched is None or rest is not None:
        return None
    messages: list[str] = []
    stack: list[BaseException] = [matched]
    while stack:
        current = stack.pop(0)
        if isinstance(current, BaseExceptionGroup):
            stack.extend(current.exceptions)
        else:
            messages.append(str(current))
    return "\n".join(messages)


async def default_run_sync(fn: Callable[[], T]) -> T:
    """Run a sync tool in anyio's worker threads; on cancellation the thread is abandoned, not waited for."""
    return await anyio.to_thread.run_sync(fn, abandon_on_cancel=True)


class Tool:
    """A function served as a custom tool: name, description, Claude-ready input schema and options.

    Build one with `Tool.from_function(fn)` (or let `Toolset` do it). Instances are immutable; `renamed()` returns a
    copy sharing the compiled function and any open resource.
    """

    def __init__(
        self, name: str, options: ToolOptions, impl: Impl | None, resource: ToolResource | None = None
    ) -> None:
        self._name = check_name(name)
        self._options = options
        self._impl = impl
        self._resource = resource  # a ToolResource for context-manager factories (see _resources.py)

    @classmethod
    def from_function(cls, fn: Callable[..., Any], **overrides: Any) -> Tool:
        """Build a tool from a function (decorated with `@tool` or not).

        Args:
            fn: The function, a callable object, a `functools.partial`, or a context-manager factory that yields one.
            **overrides: `ToolOptions` fields that replace what `@tool` set.

        Raises:
            DefinitionError: The function cannot be a tool; the message says what to change.
        """
        if isinstance(fn, Tool):
            return fn.with_options(**overrides) if overrides else fn
        if not callable(fn):
            raise DefinitionError(f"a tool must be a function, got {type(fn).__name__}: {fn!r}")
        options = (options_of(fn) or ToolOptions()).replace(**overrides)
        name = options.name or function_name(fn)
        if name is None:
            raise DefinitionError(f"{fn!r} has no usable name (a lambda or a callable object); pass name=...")
        if is_cm_factory(fn):
            return cls(name, options, None, ToolResource(fn, name, options))
        return cls(name, options, build_impl(fn, name, options))

    @classmethod
    def from_schema(
        cls,
        name: str,
        description: str,
        input_schema: Mapping[str, Any],
        fn: Callable[[dict[str, Any], ToolContext], Awaitable[Any]],
        **options: Any,
    ) -> Tool:
        """Build a tool from a JSON Schema someone else wrote (an MCP server's, an OpenAPI operation's...).

        The schema is made Claude-ready by the same rules as a function's (`$ref`s inlined, titles dropped, objects
        closed). `fn(input, context)` gets the input object as sent and validates it itself; what it returns or
        raises is shaped exactly as for a function tool.

        Args:
            name: The tool name (Claude's rules: 1-64 letters, digits, `_`, `-`).
            description: What the model reads; must not be empty.
            input_schema: A JSON Schema describing an object.
            fn: An async function `(input, context) -> value`.
            **options: `ToolOptions` fields (`timeout`, `read_only`, `output_budget`, ...).

        Raises:
            DefinitionError: Bad name, no description, or a schema that is not an object, is recursive or too large.
        """
        from ._adapters import schema_impl

        tool_options = ToolOptions(name=name, **options)
        return cls(name, tool_options, schema_impl(name, description, input_schema, fn))

    def with_options(self, **changes: Any) -> Tool:
        """A copy with options changed; the schema is rebuilt when `strict` or `description` changes."""
        options = self._options.replace(**changes)
        name = options.name or self._name
        impl = self._impl
        if impl is not None and ({"strict", "description", "concurrency_key"} & changes.keys()):
            impl = build_impl(impl.fn, name, options)
        return Tool(name, options, impl, self._resource)

    def renamed(self, name: str) -> Tool:
        """The same tool under another name (for prefixes and renames)."""
        return Tool(name, self._options.replace(name=name), self._impl, self._resource)

    def _current(self) -> Impl | None:
        if self._impl is not None:
            return self._impl
        return self._resource.impl if self._resource is not None else None

    def _require(self) -> Impl:
        impl = self._current()
        if impl is None:
            raise DefinitionError(
                f"tool {self._name!r} is defined by a context manager and its schema is known only once it is "
                "open: use `async with toolset:` before asking for its definition"
            )
        return impl

    @property
    def name(self) -> str:
        """The name the agent calls the tool by."""
        return self._name

    @property
    def options(self) -> ToolOptions:
        """The frozen options (`@tool(...)` plus overrides)."""
        return self._options

    @property
    def description(self) -> str:
        """The description the model reads."""
        impl = self._current()
        if impl is not None:
            return impl.description
        return self._options.description or parse_docstring(getattr(self._resource, "factory_doc", None)).description

    @property
    def input_schema(self) -> dict[str, Any]:
        """The Claude-ready JSON Schema of the input (a copy: safe to mutate)."""
        return copy.deepcopy(self._require().input_schema)

    @property
    def is_async(self) -> bool:
        """True when the function is a coroutine function (it runs on the event loop, not in a thread)."""
        impl = self._current()
        return impl.is_async if impl is not None else False

    @property
    def is_resource(self) -> bool:
        """True for context-manager factory tools, which must be opened by their toolset before use."""
        return self._resource is not None

    @property
    def resource(self) -> ToolResource | None:
        """The resource holder of a context-manager factory tool (toolset use), or None."""
        return self._resource

    def definition(self) -> dict[str, Any]:
        """The `{"type": "custom", ...}` definition for `agents.create` / `agents.update`."""
        impl = self._require()
        return {
            "type": "custom",
            "name": self._name,
            "description": impl.description,
            "input_schema": copy.deepcopy(impl.input_schema),
        }

    @property
    def lint(self) -> LintReport:
        """What the definition changed, dropped or could not express, and its size in bytes."""
        impl = self._require()
        size = len(dumps(self.definition()).encode("utf-8"))
        return LintReport(self._name, size, impl.issues)

    def __repr__(self) -> str:
        return f"<Tool {self._name}{' (resource)' if self._resource is not None else ''}>"

    def validate_input(self, input: Mapping[str, Any]) -> dict[str, Any] | None:
        """The input as the function would receive it (validated, by parameter name), or None if it is invalid
        (the call's answer is then the validation error) or the tool's resource is not open."""
        impl = self._current()
        if impl is None:
            return None
        if impl.validate is None:  # a wrapped SDK tool validates inside its own call
            return dict(input) if isinstance(input, Mapping) else None
        try:
            return impl.validate(input, self._name)
        except InputError:
            return None

    async def call(
        self,
        input: Mapping[str, Any],
        context: ToolContext | None = None,
        *,
        run_sync: RunSync[Any] | None = None,
    ) -> CallResult:
        """Validate `input`, run the tool, and shape its result.

        Args:
            input: The `input` object of the `agent.custom_tool_use` event.
            context: The call's context; a default one (session "test") is made when omitted.
            run_sync: Runs sync functions; defaults to a worker thread abandoned on cancellation.

        Returns:
            The result to post. Bad input, `ToolError` and any other exception become `is_error` results (other
            exceptions masked as "tool X failed (ref ...)", traceback logged). Cancellation propagates, after
            setting the context's cancel flag.
        """
        budget = self._options.output_budget or DEFAULT_OUTPUT_BUDGET
        impl = self._current()
        if impl is None:
            return CallResult.error(f"tool {self._name} is not available: its resources are not open")
        ctx = context if context is not None else ToolContext(tool_name=self._name)
        try:
            args, kwargs = impl.bind(input, ctx, self._name)
        except InputError as exc:
            return error_text(str(exc), budget)
        try:
            if impl.is_async:
                value = await impl.fn(*args, **kwargs)
            else:
                value = await (run_sync or default_run_sync)(functools.partial(impl.fn, *args, **kwargs))
                if inspect.isawaitable(value):
                    value = await value
            return shape_result(value, budget=budget)
        except anyio.get_cancelled_exc_class():
            ctx.cancel()  # an abandoned worker thread polling `ctx.cancelled` learns that nobody waits for it now
            raise
        except InputError as exc:
            return error_text(str(exc), budget)
        except _tool_errors() as exc:
            return error_text(str(exc), budget)
        except Exception as exc:
            told = _told(exc)
            if told is not None:
                return error_text(told, budget)
            ref = secrets.token_hex(4)
            ctx.log.error("tool %s failed (ref %s): %s", self._name, ref, type(exc).__name__, exc_info=exc)
            return CallResult.error(f"tool {self._name} failed (ref {ref})")
