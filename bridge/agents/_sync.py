"""Keep an agent's custom tool definitions in step with the tools a bridge serves.

An agent's `tools` list mixes custom tools (ours: name, description, input schema, no code) with tools we must never
touch: the built-in `agent_toolset_*` and `mcp_toolset` entries. `agents.update` replaces the list whole, so a sync
reads the agent, keeps every non-custom entry exactly as the API returned it, swaps in the local custom definitions
and writes with the agent's `version` (optimistic concurrency). When someone else updated the agent in between, the
write is refused; the sync reads again, diffs again (the other writer may have made our change moot) and retries once,
then gives up with `AgentConflictError`.

The diff is by tool name and ignores order: reordering is not a change worth a new agent version.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anthropic

from .._errors import AgentConflictError, APIAccessError, OperatorError, SessionNotFoundError, TransportError

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

__all__ = [
    "SyncResult",
    "ToolChange",
    "ToolDiff",
    "create_agent",
    "custom_tools",
    "diff_tools",
    "fetch_agent_tools",
    "merge_tools",
    "sync_agent",
]

_COMPARED = ("description", "input_schema")


@dataclass(frozen=True)
class ToolChange:
    """One custom tool that differs: `before` is the agent's definition, `after` the local one (None when absent)."""

    name: str
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None

    @property
    def kind(self) -> str:
        """`added`, `removed` or `changed`."""
        if self.before is None:
            return "added"
        return "removed" if self.after is None else "changed"

    @property
    def fields(self) -> tuple[str, ...]:
        """Which of description / input_schema differ (empty for added and removed tools)."""
        if self.before is None or self.after is None:
            return ()
        return tuple(f for f in _COMPARED if _canonical(self.before.get(f)) != _canonical(self.after.get(f)))


@dataclass(frozen=True)
class ToolDiff:
    """What a sync would change on the agent's custom tools."""

    added: tuple[ToolChange, ...] = ()
    removed: tuple[ToolChange, ...] = ()
    changed: tuple[ToolChange, ...] = ()
    unchanged: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    @property
    def changes(self) -> tuple[ToolChange, ...]:
        """Every change, sorted by tool name."""
        return tuple(sorted(self.added + self.removed + self.changed, key=lambda c: c.name))

    def summary(self) -> str:
        """One line: `+1 added, -1 removed, ~1 changed, 3 unchanged`."""
        return (
            f"+{len(self.added)} added, -{len(self.removed)} removed, ~{len(self.changed)} changed, "
            f"{len(self.unchanged)} unchanged"
        )

    def render(self, *, agent_label: str = "agent", local_label: str = "local") -> str:
        """A readable diff: one line per tool, and a unified diff of the JSON of each changed tool."""
        if not self:
            return f"no changes: {len(self.unchanged)} custom tool(s) already match"
        lines: list[str] = []
        for change in self.changes:
            if change.kind == "added":
                lines.append(f"+ {change.name} (new)")
            elif change.kind == "removed":
                lines.append(f"- {change.name} (not served locally; removed from the agent)")
            else:
                lines.append(f"~ {change.name} ({', '.join(change.fields)} changed)")
                before = _pretty(_comparable(change.before or {})).splitlines()
                after = _pretty(_comparable(change.after or {})).splitlines()
                diff = difflib.unified_diff(
                    before, after, f"{agent_label}/{change.name}", f"{local_label}/{change.name}", lineterm="", n=2
                )
                lines.extend(f"    {line}" for line in diff)
        lines.append(self.summary())
        return "\n".join(lines)


@dataclass(frozen=True)
class SyncResult:
    """What `sync_agent` found and did: the diff against the agent at `read_version`, and its `version` after."""

    agent_id: str
    diff: ToolDiff
    version: int
    read_version: int
    updated: bool = False
    attempts: int = 1
    tools: Sequence[Mapping[str, Any]] = field(default_factory=list)


def custom_tools(tools: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The `{"type": "custom", ...}` entries of an agent's tools list."""
    return [tool for tool in tools if tool.get("type") == "custom"]


def diff_tools(agent_tools: Sequence[Mapping[str, Any]], local: Sequence[Mapping[str, Any]]) -> ToolDiff:
    """Compare the agent's custom tools (non-custom entries are ignored) with the local definitions, by name.

    Args:
        agent_tools: The agent's whole `tools` list, as JSON.
        local: The definitions the bridge serves (`Toolset.definitions()`).
    """
    remote = {tool["name"]: tool for tool in custom_tools(agent_tools)}
    mine = {tool["name"]: tool for tool in local}
    added = tuple(ToolChange(name, None, mine[name]) for name in sorted(mine.keys() - remote.keys()))
    removed = tuple(ToolChange(name, remote[name], None) for name in sorted(remote.keys() - mine.keys()))
    changed: list[ToolChange] = []
    unchanged: list[str] = []
    for name in sorted(mine.keys() & remote.keys()):
        if _canonical(_comparable(remote[name])) == _canonical(_comparable(mine[name])):
            unchanged.append(name)
        else:
            changed.append(ToolChange(name, remote[name], mine[name]))
    return ToolDiff(added, removed, tuple(changed), tuple(unchanged))


def merge_tools(agent_tools: Sequence[Mapping[str, Any]], local: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The tools list to write: every non-custom entry untouched and in place, then the local custom definitions."""
    kept = [dict(tool) for tool in agent_tools if tool.get("type") != "custom"]
    return kept + [dict(tool) for tool in local]


async def fetch_agent_tools(client: AsyncAnthropic, agent_id: str) -> tuple[int, list[dict[str, Any]]]:
    """The agent's current `version` and its tools list exactly as the API sent it (JSON, unset fields left out)."""
    with _mapped(f"agent {agent_id}"):
        agent = await client.beta.agents.retrieve(agent_id)
    return agent.version, [tool.to_dict(mode="json") for tool in agent.tools]


async def sync_agent(
    client: AsyncAnthropic, agent_id: str, definitions: Sequence[Mapping[str, Any]], *, dry_run: bool = False
) -> SyncResult:
    """Push local custom tool definitions to an agent, keeping its other tools, with one retry on a version conflict.

    Args:
        client: The API client.
        agent_id: The agent to update.
        definitions: The custom tool definitions to serve (`Toolset.definitions()`).
        dry_run: Compute the diff only; change nothing.

    Returns:
        The diff against the agent as last read, and the agent's version afterwards.

    Raises:
        AgentConflictError: The agent's version moved again after the retry.
        APIAccessError, SessionNotFoundError, TransportError: The API refused or could not be reached.
    """
    # A conflict must reach us at once: the SDK would otherwise retry the same stale version (409 is "retryable").
    writer = client.with_options(max_retries=0)
    for attempt in (1, 2):
        version, tools = await fetch_agent_tools(client, agent_id)
        diff = diff_tools(tools, definitions)
        if dry_run or not diff:
            return SyncResult(agent_id, diff, version, version, updated=False, attempts=attempt, tools=tools)
        merged = merge_tools(tools, definitions)
        try:
            with _mapped(f"agent {agent_id}"):
                agent = await writer.beta.agents.update(agent_id, version=version, tools=merged)  # type: ignore[arg-type]
        except _VersionConflict:
            if attempt == 2:
                raise AgentConflictError(
                    f"agent {agent_id} changed while syncing (version moved past {version} twice); someone else is "
                    "updating it: run the sync again when they are done"
                ) from None
            continue
        return SyncResult(agent_id, diff, agent.version, version, updated=True, attempts=attempt, tools=merged)
    raise AssertionError("unreachable")  # pragma: no cover


async def create_agent(
    client: AsyncAnthropic,
    name: str,
    model: str | Mapping[str, Any],
    definitions: Sequence[Mapping[str, Any]],
    *,
    system: str | None = None,
    extra_tools: Sequence[Mapping[str, Any]] = (),
) -> tuple[str, int]:
    """Create an agent serving `definitions` (after any `extra_tools`); returns its id and version."""
    params: dict[str, Any] = {"name": name, "model": model, "tools": [*map(dict, extra_tools), *map(dict, definitions)]}
    if system is not None:
        params["system"] = system
    with _mapped(f"agent {name!r}"):
        agent = await client.beta.agents.create(**params)
    return agent.id, agent.version


class _VersionConflict(Exception):
    pass


class _mapped:
    """Map SDK errors to the bridge's operator errors at the boundary; a version conflict becomes `_VersionConflict`."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is None or not isinstance(exc, anthropic.APIError):
            return
        message = getattr(exc, "message", str(exc))
        if isinstance(exc, anthropic.ConflictError | anthropic.PreconditionFailedError):
            raise _VersionConflict(message) from exc
        if isinstance(exc, anthropic.AuthenticationError | anthropic.PermissionDeniedError):
            raise APIAccessError(f"{self.what}: the API key was refused: {message}") from exc
        if isinstance(exc, anthropic.NotFoundError):
            raise SessionNotFoundError(f"{self.what} does not exist: {message}") from exc
        if isinstance(exc, anthropic.APIConnectionError | anthropic.InternalServerError):
            raise TransportError(f"{self.what}: the API could not be reached: {message}") from exc
        if isinstance(exc, anthropic.APIStatusError):
            raise OperatorError(f"{self.what}: the API refused the request ({exc.status_code}): {message}") from exc


def _comparable(tool: Mapping[str, Any]) -> dict[str, Any]:
    return {"name": tool.get("name"), **{f: tool.get(f) for f in _COMPARED}}


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _pretty(value: Any) -> str:
    return json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False)
