"""Which MCP server to run or reach: `McpServerSpec`, from arguments or from a Claude Desktop / Claude Code config.

```json
{"mcpServers": {
  "time": {"command": "uvx", "args": ["mcp-server-time"], "env": {"TZ": "UTC"}},
  "docs": {"type": "http", "url": "https://mcp.example.com/mcp", "headers": {"Authorization": "Bearer ..."}}
}}
```

This module only validates; expanding `${VAR}` references from the environment is the CLI's job (library code never
reads environment variables).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from bridge import ConfigError

__all__ = ["McpServerSpec", "parse_mcp_servers"]

_STDIO_KEYS = frozenset({"type", "command", "args", "env", "cwd"})
_HTTP_KEYS = frozenset({"type", "url", "headers"})


@dataclass(frozen=True)
class McpServerSpec:
    """One MCP server: a command to spawn (stdio) or a streamable-HTTP URL.

    Attributes:
        name: A label for logs, errors, the pin file and the default tool-name prefix.
        command: The program to spawn for a stdio server.
        args: Its arguments.
        env: Environment variables for the child, on top of the MCP SDK's safe default set (HOME, PATH, ...);
            the bridge's own environment is never passed whole.
        cwd: The child's working directory.
        url: The endpoint of a streamable-HTTP server.
        headers: HTTP headers sent with every request (authorization...).
    """

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.command is None) == (self.url is None):
            raise ConfigError(f"MCP server {self.name!r}: give either a command (stdio) or a url (streamable HTTP)")
        if self.url is not None and urlsplit(self.url).scheme not in ("http", "https"):
            raise ConfigError(f"MCP server {self.name!r}: url must be http:// or https://, got {self.url!r}")

    @property
    def transport(self) -> str:
        """`stdio` or `http`."""
        return "stdio" if self.command is not None else "http"

    def __repr__(self) -> str:  # env and headers may hold secrets
        where = shlex.join([self.command, *self.args]) if self.command is not None else self.url
        return f"McpServerSpec({self.name!r}, {where!r})"

    @classmethod
    def create(
        cls,
        command: str | Sequence[str] | None = None,
        *,
        url: str | None = None,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        headers: Mapping[str, str] | None = None,
        name: str | None = None,
    ) -> McpServerSpec:
        """A spec from `mcp_toolset`'s arguments; a string command is split like a shell would."""
        argv: list[str] = []
        if isinstance(command, str):
            argv = shlex.split(command)
        elif command is not None:
            argv = list(command)
        if command is not None and not argv:
            raise ConfigError("MCP server command is empty")
        argv += list(args)
        label = name or _default_name(argv, url)
        return cls(
            name=label,
            command=argv[0] if argv else None,
            args=tuple(argv[1:]),
            env=dict(env or {}),
            cwd=cwd,
            url=url,
            headers=dict(headers or {}),
        )


def _default_name(argv: Sequence[str], url: str | None) -> str:
    if url is not None:
        raw = urlsplit(url).hostname or "mcp"
    else:
        words = [a for a in argv if not a.startswith("-")]
        raw = words[-1].rsplit("/", 1)[-1] if words else "mcp"
        raw = re.sub(r"^mcp[-_]server[-_]|[-_]mcp$|\.py$", "", raw) or raw
    return re.sub(r"[^A-Za-z0-9_-]+", "_", raw).strip("_") or "mcp"


def parse_mcp_servers(data: Mapping[str, Any]) -> list[McpServerSpec]:
    """The servers of a Claude Desktop / Claude Code config (`{"mcpServers": {...}}`, or the inner mapping).

    Raises:
        ConfigError: Listing every invalid entry.
    """
    servers = data.get("mcpServers", data)
    if not isinstance(servers, Mapping):
        raise ConfigError("mcpServers must be an object mapping server names to their settings")
    specs: list[McpServerSpec] = []
    problems: list[str] = []
    for name, entry in servers.items():
        try:
            specs.append(server_from_entry(str(name), entry))
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return specs


def _strings(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{what} must be a list of strings")
    return list(value)


def _string_map(value: Any, what: str) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(f"{what} must map names to strings")
    return {str(k): v for k, v in value.items()}


def server_from_entry(name: str, entry: Any) -> McpServerSpec:
    """One `mcpServers` entry (Claude Desktop / Claude Code shape) as a spec.

    Raises:
        ConfigError: The entry is not a stdio or streamable-HTTP server, or has unknown or mistyped keys.
    """
    where = f"mcpServers.{name}"
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: must be an object")
    kind = entry.get("type", "http" if "url" in entry else "stdio")
    if kind == "sse":
        raise ConfigError(f"{where}: the SSE transport is deprecated and not supported; use streamable HTTP")
    if kind not in ("stdio", "http", "streamable-http", "streamable_http"):
        raise ConfigError(f"{where}.type: must be stdio or http, got {kind!r}")
    allowed = _STDIO_KEYS if kind == "stdio" else _HTTP_KEYS
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} for a {kind} server")
    if kind == "stdio":
        command = entry.get("command")
        if not isinstance(command, str) or not command:
            raise ConfigError(f"{where}.command: required, the program to run")
        cwd = entry.get("cwd")
        if cwd is not None and not isinstance(cwd, str):
            raise ConfigError(f"{where}.cwd: must be a string")
        return McpServerSpec(
            name=name,
            command=command,
            args=tuple(_strings(entry.get("args", []), f"{where}.args")),
            env=_string_map(entry.get("env", {}), f"{where}.env"),
            cwd=cwd,
        )
    url = entry.get("url")
    if not isinstance(url, str) or not url:
        raise ConfigError(f"{where}.url: required, the server's streamable-HTTP endpoint")
    return McpServerSpec(name=name, url=url, headers=_string_map(entry.get("headers", {}), f"{where}.headers"))
