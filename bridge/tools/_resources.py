"""Resources a toolset opens on enter and closes on exit: context-manager tools and toolset lifespans.

A resource is opened by the first toolset that enters while it is closed, and closed by that same toolset's exit (so
enter and exit happen in the same task, as anyio cancel scopes inside the context manager require). A sync context
manager is entered in a worker thread so a slow connect does not block the event loop; its closing is shielded from
cancellation, with a time limit, so a shutdown cannot skip cleanup nor hang on it forever. An async context manager is
exited directly (it may hold a task group open across its yield, whose scope must exit where it was entered) and
bounds its own cleanup.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any

import anyio
import anyio.to_thread

from .._errors import DefinitionError
from ._compile import Impl, build_impl

__all__ = ["CLOSE_TIMEOUT", "Resource", "ToolResource"]

CLOSE_TIMEOUT = 30.0
"""Seconds a resource's cleanup may take during shutdown before it is abandoned (and logged)."""

_log = logging.getLogger("bridge.tools")


class Resource:
    """Something with a context-manager factory that must be open while its toolset is.

    Args:
        factory: Called with no arguments; returns a sync or async context manager.
        label: For logs and errors.
    """

    def __init__(self, factory: Callable[[], Any], label: str) -> None:
        self.factory = factory
        self.label = label
        self.value: Any = None
        self.is_open = False

    def opened(self, value: Any) -> None:
        """Hook: the context manager was entered and yielded `value`."""

    def closed(self) -> None:
        """Hook: the context manager was exited."""

    async def open(self, stack: AsyncExitStack) -> bool:
        """Enter the resource and push its exit onto `stack`; False when it was open already."""
        if self.is_open:
            return False
        manager = self.factory()
        if hasattr(manager, "__aenter__"):
            value = await manager.__aenter__()
            exit_fn: Callable[..., Any] = manager.__aexit__
        elif hasattr(manager, "__enter__"):
            value = await anyio.to_thread.run_sync(manager.__enter__)
            exit_fn = manager.__exit__
        else:
            raise DefinitionError(f"{self.label}: the factory must return a context manager, got {manager!r}")

        async def close(
            exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
        ) -> bool:
            self.is_open = False
            self.value = None
            self.closed()
            if inspect.iscoroutinefunction(exit_fn):
                # Exited directly, in no scope of ours: an async context manager may hold a task group open across
                # its yield, and anyio requires its cancel scope to exit where it was entered. It bounds its own
                # cleanup.
                return bool(await exit_fn(exc_type, exc, tb))
            with anyio.move_on_after(CLOSE_TIMEOUT, shield=True) as scope:
                suppress = await anyio.to_thread.run_sync(exit_fn, exc_type, exc, tb)
            if scope.cancelled_caught:
                _log.warning("%s: cleanup did not finish within %.0f s and was abandoned", self.label, CLOSE_TIMEOUT)
                return False
            return bool(suppress)

        stack.push_async_exit(close)
        self.value, self.is_open = value, True
        self.opened(value)
        return True


class ToolResource(Resource):
    """A tool defined as a context-manager factory: the yielded function becomes the tool's implementation."""

    def __init__(self, factory: Callable[..., Any], name: str, options: Any) -> None:
        wrapped = getattr(factory, "__wrapped__", factory)
        if inspect.signature(wrapped).parameters:
            raise DefinitionError(
                f"tool {name!r}: a context-manager tool factory takes no parameters; it opens the resource and "
                "yields the function the model calls. Move the parameters to the yielded function."
            )
        super().__init__(factory, f"tool {name!r}")
        self.name = name
        self.options = options
        self.factory_doc: str | None = getattr(factory, "__doc__", None)
        self.impl: Impl | None = None

    def opened(self, value: Any) -> None:
        if not callable(value):
            raise DefinitionError(f"{self.label}: the context manager must yield the tool function, got {value!r}")
        self.impl = build_impl(value, self.name, self.options, fallback_doc=self.factory_doc)

    def closed(self) -> None:
        self.impl = None
