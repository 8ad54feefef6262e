"""`Toolset`: a registry of tools, composed by prefix, filter, rename and merge, with a resource lifecycle.

A toolset is what a user hands to the bridge and what a toolkit pack returns. Composition never mutates: each
operation returns a new toolset sharing the same tools (and their open resources). Names are unique within a
toolset; a duplicate is an error at construction, never a silent override.

Timeouts and approval policies resolve per tool the same way: the tool's own option, else the innermost toolset's
that contains it and sets one, else None (the bridge's default).

A toolset may also hold a *source*: a callable returning the tools some outside party defines right now (an MCP
server's tool list, which can change while the bridge runs). Its tools join the registry when the source returns
them; prefix, filter and rename apply to them as they appear. A source usually comes with a `lifespan` that connects
to whatever defines the tools, so they are known once the toolset is open (`async with toolset`).
"""

from __future__ import annotations

import logging
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

__all__ = ["ToolSource", "Toolset"]

ToolSource = Callable[[], Mapping[str, Tool]]
"""Returns the tools defined right now, by name. Called on every lookup: return the same mapping object until the
tools change (derived toolsets cache their view of it by identity)."""

_log = logging.getLogger("bridge.tools")
_Transform = Callable[[Mapping[str, Tool]], dict[str, Tool]]


def _prefixed(prefix: str, name: str) -> str:
    return f"{prefix}{name}" if prefix.endswith(("_", "-")) else f"{prefix}_{name}"


def _prefix_transform(prefix: str) -> _Transform:
    return lambda tools: {_prefixed(prefix, n): t.renamed(_prefixed(prefix, n)) for n, t in tools.items()}


class _Mount:
    """A source as one toolset sees it: the transforms its derivations added, the timeout and approval it inherits."""

    __slots__ = ("_cache", "_seen", "approval", "source", "timeout", "transforms")

    def __init__(
        self,
        source: ToolSource,
        transforms: tuple[_Transform, ...] = (),
        timeout: float | None = None,
        approval: ApprovalPolicy | None = None,
    ):
        self.source = source
        self.transforms = transforms
        self.timeout = timeout
        self.approval = approval
        self._seen: object = None
        self._cache: dict[str, Tool] = {}

    def derive(
        self, transform: _Transform | None = None, timeout: float | None = None, approval: ApprovalPolicy | None = None
    ) -> _Mount:
        transforms = self.transforms if transform is None else (*self.transforms, transform)
        return _Mount(
            self.source,
            transforms,
            self.timeout if self.timeout is not None else timeout,
            self.approval if self.approval is not None else approval,
        )

    def tools(self) -> dict[str, Tool]:
        raw = self.source()
        if raw is not self._seen:
            tools = dict(raw)
            for transform in self.transforms:
                tools = transform(tools)
            self._seen, self._cache = raw, tools
        return self._cache


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
        source: Tools defined elsewhere and known only at run time (see `ToolSource`); they join the registry as
            the source returns them, after this toolset's prefix.

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
        source: ToolSource | None = None,
        approval: ApprovalPolicy | None = None,
    ) -> None:
        if timeout is not None and not timeout > 0:
            raise DefinitionError(f"toolset timeout must be a positive number of seconds, got {timeout!r}")
        self.name = name
        self.timeout = timeout
        self.approval = check_policy(approval)
        self._static: dict[str, Tool] = {}
        self._inherited: dict[str, float] = {}
        self._policies: dict[str, ApprovalPolicy] = {}  # approval policies inherited from inner toolsets
        self._mounts: list[_Mount] = [] if source is None else [_Mount(source)]
        self._resources: list[Resource] = []
        self._stack: AsyncExitStack | None = None
        self._depth = 0
        if lifespan is not None:
            self._resources.append(Resource(lifespan, f"toolset {name or '(unnamed)'} lifespan"))
        self._include(tools)
        if prefix:
            self._static = _prefix_transform(prefix)(self._static)
            self._inherited = {_prefixed(prefix, n): v for n, v in self._inherited.items()}
            self._policies = {_prefixed(prefix, n): v for n, v in self._policies.items()}
            self._mounts = [m.derive(_prefix_transform(prefix)) for m in self._mounts]

    @property
    def _tools(self) -> Mapping[str, Tool]:
        """Every tool now: the registered ones, then each source's (a name already taken is skipped, and logged)."""
        if not self._mounts:
            return self._static
        tools = dict(self._static)
        for mount in self._mounts:
            for name, tool in mount.tools().items():
                if name in tools:
                    if tools[name] is not tool:
                        _log.warning("tool %r from a tool source is skipped: another tool has that name", name)
                    continue
                tools[name] = tool
        return tools

    def _source_timeout(self, name: str) -> float | None:
        for mount in self._mounts:
            if name in mount.tools():
                return mount.timeout
        return None

    def _include(self, items: Iterable[Any]) -> None:
        if isinstance(items, str | bytes | Mapping) or not isinstance(items, Iterable):
            raise DefinitionError(f"Toolset takes a list of tools, got {type(items).__name__}: {items!r}")
        for item in items:
            if isinstance(item, Toolset):
                self._add_resources(item._resources)  # its lifespans open before its tools' resources
                for tool in item._static.values():
                    self._add(tool, item._inherited.get(tool.name, item.timeout))
                    policy = item._policies.get(tool.name, item.approval)
                    if policy is not None:
                        self._policies[tool.name] = policy
                self._mounts.extend(m.derive(timeout=item.timeout, approval=item.approval) for m in item._mounts)
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
        if tool.name in self._static and self._static[tool.name] is not tool:
            raise DefinitionError(
                f"two tools are named {tool.name!r}; names must be unique. Rename one (@tool(name=...) or "
                "toolset.rename({...})) or put one group under a prefix (Toolset([...], prefix=...))."
            )
        self._static[tool.name] = tool
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
        self,
        tools: dict[str, Tool],
        inherited: dict[str, float],
        transform: _Transform,
        renamed: Mapping[str, str] | None = None,
    ) -> Toolset:
        """A toolset of `tools` with this one's settings; `renamed` maps each new name to its old one."""
        derived = Toolset(name=self.name, timeout=self.timeout, approval=self.approval)
        derived._static = tools
        derived._inherited = inherited
        derived._mounts = [m.derive(transform) for m in self._mounts]
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
        if name in self._inherited:
            return self._inherited[name]
        inherited = self._source_timeout(name) if name not in self._static else None
        return inherited if inherited is not None else self.timeout

    def approval_for(self, name: str) -> ApprovalPolicy | None:
        """The approval policy of tool `name`: its own option, else its toolset's, else None (the bridge's).

        Raises:
            KeyError: No such tool.
        """
        tool = self._tools[name]
        if tool.options.approval is not None:
            return tool.options.approval
        if name in self._policies:
            return self._policies[name]
        if name not in self._static:
            for mount in self._mounts:
                if mount.approval is not None and name in mount.tools():
                    return mount.approval
        return self.approval

    def with_prefix(self, prefix: str) -> Toolset:
        """A toolset whose tool names all start with `prefix` (an `_` is added unless it ends in `_` or `-`)."""
        tools = _prefix_transform(prefix)(self._static)
        inherited = {_prefixed(prefix, n): v for n, v in self._inherited.items()}
        renamed = {_prefixed(prefix, n): n for n in self._static}
        return self._derive(tools, inherited, _prefix_transform(prefix), renamed)

    def filter(self, predicate: Callable[[Tool], bool]) -> Toolset:
        """A toolset with only the tools for which `predicate(tool)` is true."""

        def keep(source: Mapping[str, Tool]) -> dict[str, Tool]:
            return {n: t for n, t in source.items() if predicate(t)}

        tools = keep(self._static)
        return self._derive(tools, {n: v for n, v in self._inherited.items() if n in tools}, keep)

    def rename(self, mapping: Mapping[str, str]) -> Toolset:
        """A toolset with some tools renamed (`{"old": "new"}`).

        Raises:
            DefinitionError: A name in `mapping` is not in the toolset, a new name is invalid, or names collide.
                (With a tool source, names it may define later are accepted.)
        """
        unknown = [old for old in mapping if old not in self._tools]
        if unknown and not self._mounts:
            raise DefinitionError(f"cannot rename {unknown}: no such tools (have: {', '.join(self._tools)})")
        for new in mapping.values():
            check_name(new)
        tools: dict[str, Tool] = {}
        inherited: dict[str, float] = {}
        for old, tool in self._static.items():
            new = mapping.get(old, old)
            if new in tools:
                raise DefinitionError(f"renaming makes two tools named {new!r}; names must be unique")
            tools[new] = tool.renamed(new) if new != old else tool
            if old in self._inherited:
                inherited[new] = self._inherited[old]

        def rename(source: Mapping[str, Tool]) -> dict[str, Tool]:
            out: dict[str, Tool] = {}
            for old, tool in source.items():
                new = mapping.get(old, old)
                out[new] = tool.renamed(new) if new != old else tool
            return out

        return self._derive(tools, inherited, rename, {mapping.get(old, old): old for old in self._static})

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
    def has_sources(self) -> bool:
        """True when some tools are defined at run time (a source): they are all known once the toolset is open."""
        return bool(self._mounts)

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
