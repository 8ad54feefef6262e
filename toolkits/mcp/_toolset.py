"""`mcp_toolset`: an MCP server's tools as a `bridge.Toolset`."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from types import EllipsisType
from typing import Any

from bridge import ApprovalPolicy, ConfigError, Toolset
from bridge.tools import check_policy

from ._pins import PinFile
from ._server import McpServer, Protocol
from ._spec import McpServerSpec

__all__ = ["mcp_toolset", "split_approval"]

_APPROVAL_KEYS = ("default", "tools")


def mcp_toolset(
    command: str | Sequence[str] | McpServerSpec | None = None,
    *,
    url: str | None = None,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    headers: Mapping[str, str] | None = None,
    name: str | None = None,
    prefix: str | EllipsisType | None = ...,
    timeout: float = 60.0,
    trusted: bool = False,
    pins: str | os.PathLike[str] | PinFile | None = None,
    protocol: Protocol = "auto",
    startup_timeout: float = 30.0,
    output_budget: int | None = None,
    on_change: Callable[[list[str]], None] | None = None,
    approval: ApprovalPolicy | Mapping[str, Any] | None = None,
) -> Toolset:
    """Serve an MCP server's tools: a command to spawn (stdio) or a streamable-HTTP `url`.

    The tools are known once the toolset is open (the bridge opens it; `bridge tools` and `bridge sync` do too).

    Args:
        command: The server command (`"uvx mcp-server-time"` or `["uvx", "mcp-server-time"]`), or a `McpServerSpec`.
        url: The endpoint of a streamable-HTTP server, instead of a command.
        args: More arguments for `command`.
        env: Environment variables for the child process, added to the MCP SDK's minimal safe set (HOME, PATH...).
        cwd: The child process's working directory.
        headers: HTTP headers for every request to `url` (put secrets here, not in the URL).
        name: The server's label in logs, errors and pins; derived from the command or host by default.
        prefix: Prepended to each tool name; defaults to `name`; None or "" for the server's own names.
        timeout: Seconds a call may go without an answer or progress; then it is cancelled on the server.
        trusted: Believe the server's annotations (read-only, idempotent, destructive: idempotent tools may be re-run
            after a crash) and send its text unfenced; by default text results are marked as untrusted data.
        pins: A lock file (`bridge.mcp.lock`) to pin definitions against rug pulls; None serves what the server says.
        protocol: `auto` (2026-07-28, falling back to the 2025 handshake), `2025` or `2026`.
        startup_timeout: Seconds to start, negotiate and list the tools before the toolset fails to open.
        output_budget: Characters a result may carry (default: the bridge's); larger text is cut with a marker.
        on_change: Called with the tool names whenever a changed tool list was applied (between calls).
        approval: The approval policy of the server's tools: `"allow"`, `"deny"`, `"ask"`, an `Approval` or a
            function of an `ApprovalRequest`, as for `Toolset(approval=...)`. Or per tool:
            `{"default": "allow", "tools": {"delete_*": "ask", "drop_*": "deny"}}`, where each pattern (fnmatch,
            first match wins) is matched against the tool's name *on the server* (before the prefix) and the
            matching policy becomes that tool's own; `default` (optional) covers the others, and without it they
            get the bridge's policy. None: the bridge's policy (allow when it has none).

    Raises:
        ConfigError: Neither or both of `command` and `url`, a bad URL, or a malformed `approval` mapping.
        DefinitionError: A policy in `approval` is not a policy.
    """
    if isinstance(command, McpServerSpec):
        spec = command
    else:
        spec = McpServerSpec.create(command, url=url, args=args, env=env, cwd=cwd, headers=headers, name=name)
    chosen = spec.name if isinstance(prefix, EllipsisType) else prefix
    pin_file = pins if isinstance(pins, PinFile) or pins is None else PinFile(pins)
    default, per_tool = split_approval(approval, f"MCP server {spec.name!r}: approval")
    server = McpServer(
        spec,
        prefix=chosen or None,
        timeout=timeout,
        trusted=trusted,
        pins=pin_file,
        protocol=protocol,
        startup_timeout=startup_timeout,
        output_budget=output_budget,
        on_change=on_change,
        approvals=per_tool,
    )
    return Toolset(name=f"mcp:{spec.name}", lifespan=server.running, source=server.tools, approval=default)


def split_approval(
    approval: ApprovalPolicy | Mapping[str, Any] | None, where: str = "approval"
) -> tuple[ApprovalPolicy | None, tuple[tuple[str, ApprovalPolicy], ...]]:
    """`mcp_toolset`'s `approval` as (the toolset's policy, per-tool policies by pattern of the server's tool names).

    Raises:
        ConfigError: A mapping with unknown keys, or whose `tools` is not a mapping of patterns to policies.
        DefinitionError: A policy is not a policy.
    """
    if not isinstance(approval, Mapping):
        return check_policy(approval, where), ()
    unknown = sorted(str(key) for key in approval if key not in _APPROVAL_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} (expected: default, tools)")
    tools = approval.get("tools", {})
    if not isinstance(tools, Mapping) or not all(isinstance(pattern, str) and pattern for pattern in tools):
        raise ConfigError(f'{where}.tools: must map tool-name patterns to policies, e.g. {{"delete_*": "ask"}}')
    patterns = tuple((pattern, check_policy(policy, f"{where}.tools.{pattern}")) for pattern, policy in tools.items())
    if any(policy is None for _, policy in patterns):
        raise ConfigError(f"{where}.tools: a pattern's policy cannot be None")
    return check_policy(approval.get("default"), f"{where}.default"), patterns  # type: ignore[return-value]
