"""`Toolset`: a registry of tools, composed by prefix, filter, rename and merge, with a resource lifecycle.

A toolset is what a user hands to the bridge and what a toolkit pack returns. Composition never mutates: each
operation returns a new toolset sharing the same tools (and their open resources). Names are unique within a
toolset; a duplicate is an error at construction, never a silent override.

Timeouts and approval policies resolve per tool the same way: the tool's own option, else the innermost toolset's
that contains it and sets one, else None (the bridge's default).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any

from .._errors import DefinitionError
from ._adapters import adapt
from ._approval import ApprovalPolicy, check_policy
from ._content import CallResult
from ._context import ToolContext
from ._decorator import check_name
from ._resources import Resource, ToolResource
from ._tool import RunSync, Tool

__all__ = ["Toolset"]


def _prefixed(prefix: str, name: str) -> str:
    return f"{prefix}{name}" if prefix.endswith(("_", "-")) else f"{prefix}_{name}"


class Toolset:
    """An ordered registry of uniquely named tools.

    Args:
        tools: Functions (with or without `@tool`), `Tool`s, other `Toolset`s, the SDK's `@beta_tool` /
            `@beta_async_tool` objects, or lists of these.
        name: A label for logs and `bridge tools`.
        prefix: Prepended to every tool name (`prefix="db"` makes `query` into `db_query`).
        timeout: Seconds allowed per call for tools that set no `timeout` of their own.
        approval: The approval policy of tools that set no `approval` of their own (see `bridge.Approval`).
        lifespan: A context-manager factory (sync or async) opened on `async with toolset` and closed on exit:
            connection pools and clients the tools share.

    Raises:
        DefinitionError: A tool cannot be registered, or two tools share a name.
    """

    def __init__(
        self,
        tools: Iterable[Any] = (),
        *,
        name: str | None = None,
        prefix: str | None = None,
        timeout: float | None = None,
        lifespan: Callable[[], Any] | None = None,
        approval: ApprovalPolicy | None = None,
    ) -> None:
        if timeout is not None and not timeout > 0:
            raise DefinitionError(f"toolset timeout must be a positive number of seconds, got {timeout!r}")
        self.name = name
        self.timeout = timeout
        self.approval = check_policy(approval)
        self._tools: dict[str, Tool] = {}
        self._inherited: dict[str, float] = {}
        self._policies: dict[str, ApprovalPolicy] = {}  # approval policies inherited from inner toolsets
        self._resources: list[Resource] = []
        self._stack: AsyncExitStack | None = None
        self._depth = 0
        if lifespan is not None:
            self._resources.append(Resource(lifespan, f"toolset {name or '(unnamed)'} lifespan"))
        self._include(tools)
        if prefix:
            self._tools = {_prefixed(prefix, n): t.renamed(_prefixed(prefix, n)) for n, t in self._tools.items()}
            self._inherited = {_prefixed(prefix, n): v for n, v in self._inherited.items()}
            self._policies = {_prefixed(prefix, n): v for n, v in self._policies.items()}

    def _include(self, items: Iterable[Any]) -> None:
        if isinstance(items, str | bytes | Mapping) or not isinstance(items, Iterable):
            raise DefinitionError(f"Toolset takes a list of tools, got {type(items).__name__}: {items!r}")
        for item in items:
            if isinstance(item, Toolset):
                self._add_resources(item._resources)  # its lifespans open before its tools' resources
                for tool in item:
                    self._add(tool, item._inherited.get(tool.name, item.timeout))
                    policy = item._policies.get(tool.name, item.approval)
                    if policy is not None:
                        self._policies[tool.name] = policy
            elif isinstance(item, list | tuple):
                self._include(item)
            else:
                tool, resource = adapt(item)
                self._add(tool, None)
                if resource is not None:
                    self._add_resources([resource])

    def _add_resources(self, resources: Iterable[Resource]) -> None:
        for resource in resources:
            if not any(resource is known for known in self._resources):
                self._resources.append(resource)

    def _add(self, tool: Tool, inherited: float | None) -> None:
        if tool.name in self._tools and self._tools[tool.name] is not tool:
            raise DefinitionError(
                f"two tools are named {tool.name!r}; names must be unique. Rename one (@tool(name=...) or "
                "toolset.rename({...})) or put one group under a prefix (Toolset([...], prefix=...))."
            )
        self._tools[tool.name] = tool
        if inherited is not None:
            self._inherited[tool.name] = inherited
        if tool.resource is not None:
            self._add_resources([tool.resource])

    @classmethod
    def coerce(cls, obj: Any) -> Toolset:
        """A toolset from a function, `Tool`, `Toolset`, SDK tool, or a list of any of them."""
        if isinstance(obj, Toolset):
            return obj
        return cls(obj if isinstance(obj, list | tuple) else [obj])

    @classmethod
    def merge(cls, *toolsets: Toolset | Iterable[Any]) -> Toolset:
        """One toolset holding every tool of `toolsets`; duplicate names are an error."""
        return cls([ts if isinstance(ts, Toolset) else cls.coerce(ts) for ts in toolsets])

    def _derive(
        self, tools: dict[str, Tool], inherited: dict[str, float], renamed: Mapping[str, str] | None = None
    ) -> Toolset:
        """A toolset of `tools` with this one's settings; `renamed` maps each new name to its old one."""
        derived = Toolset(name=self.name, timeout=self.timeout, approval=self.approval)
        derived._tools = tools
        derived._inherited = inherited
        old = renamed or {}
        derived._policies = {n: self._policies[old.get(n, n)] for n in tools if old.get(n, n) in self._policies}
        used = {id(tool.resource) for tool in tools.values() if tool.resource is not None}
        derived._resources = [r for r in self._resources if not isinstance(r, ToolResource) or id(r) in used]
        return derived

    def add(self, fn_or_tool: Any) -> Tool:
        """Register one more tool (a function, `Tool` or SDK tool) and return it."""
        tool, resource = adapt(fn_or_tool)
        self._add(tool, None)
        if resource is not None:
            self._add_resources([resource])
        return tool

    def get(self, name: str) -> Tool:
        """The tool called `name`.

        Raises:
            KeyError: No such tool.
        """
        return self._tools[name]

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(list(self._tools.values()))

    def __len__(self) -> int:
        return len(self._tools)

    def __repr__(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        return f"<Toolset{label} {', '.join(self._tools) or '(empty)'}>"

    def names(self) -> list[str]:
        """Tool names in registration order."""
        return list(self._tools)

    def definitions(self) -> list[dict[str, Any]]:
        """The exact `tools=[...]` list for `agents.create` / `agents.update` (`{"type": "custom", ...}` each)."""
        return [tool.definition() for tool in self._tools.values()]

    def timeout_for(self, name: str) -> float | None:
        """The call timeout for tool `name`: its own option, else its toolset's, else None (the bridge default).

        Raises:
            KeyError: No such tool.
        """
        tool = self._tools[name]
        if tool.options.timeout is not None:
            return tool.options.timeout
        return self._inherited.get(name, self.timeout)

    def approval_for(self, name: str) -> ApprovalPolicy | None:
        """The approval policy of tool `name`: its own option, else its toolset's, else None (the bridge's).

        Raises:
            KeyError: No such tool.
        """
        tool = self._tools[name]
        if tool.options.approval is not None:
            return tool.options.approval
        return self._policies.get(name, self.approval)

    def with_prefix(self, prefix: str) -> Toolset:
        """A toolset whose tool names all start with `prefix` (an `_` is added unless it ends in `_` or `-`)."""
        tools = {_prefixed(prefix, n): t.renamed(_prefixed(prefix, n)) for n, t in self._tools.items()}
        renamed = {_prefixed(prefix, n): n for n in self._tools}
        return self._derive(tools, {_prefixed(prefix, n): v for n, v in self._inherited.items()}, renamed)

    def filter(self, predicate: Callable[[Tool], bool]) -> Toolset:
        """A toolset with only the tools for which `predicate(tool)` is true."""
        tools = {n: t for n, t in self._tools.items() if predicate(t)}
        return self._derive(tools, {n: v for n, v in self._inherited.items() if n in tools})

    def rename(self, mapping: Mapping[str, str]) -> Toolset:
        """A toolset with some tools renamed (`{"old": "new"}`).

        Raises:
            DefinitionError: A name in `mapping` is not in the toolset, a new name is invalid, or names collide.
        """
        unknown = [old for old in mapping if old not in self._tools]
        if unknown:
            raise DefinitionError(f"cannot rename {unknown}: no such tools (have: {', '.join(self._tools)})")
        tools: dict[str, Tool] = {}
        inherited: dict[str, float] = {}
        for old, tool in self._tools.items():
            new = check_name(mapping.get(old, old))
            if new in tools:
                raise DefinitionError(f"renaming makes two tools named {new!r}; names must be unique")
            tools[new] = tool.renamed(new) if new != old else tool
            if old in self._inherited:
                inherited[new] = self._inherited[old]
        return self._derive(tools, inherited, {mapping.get(old, old): old for old in self._tools})

    async def call(
        self,
        name: str,
        input: Mapping[str, Any],
        context: ToolContext | None = None,
        *,
        run_sync: RunSync[Any] | None = None,
    ) -> CallResult:
        """Call tool `name` exactly as the bridge would; an unknown name is an `is_error` result listing the tools."""
        tool = self._tools.get(name)
        if tool is None:
            available = ", ".join(self._tools) or "none"
            return CallResult.error(f"unknown tool {name!r}; available tools: {available}")
        return await tool.call(input, context, run_sync=run_sync)

    @property
    def is_open(self) -> bool:
        """True inside `async with toolset`."""
        return self._stack is not None

    async def __aenter__(self) -> Toolset:
        """Open every resource of this toolset that is not open yet (lifespans first, then resource tools).

        Entering an open toolset again (nested `async with`) only counts; the outermost exit closes.
        """
        if self._stack is not None:
            self._depth += 1
            return self
        stack = AsyncExitStack()
        try:
            for resource in self._resources:
                await resource.open(stack)
        except BaseException:
            await stack.aclose()
            raise
        self._stack, self._depth = stack, 1
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close, in reverse order, what this toolset opened."""
        self._depth -= 1
        if self._depth > 0:
            return
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.__aexit__(exc_type, exc, tb)
