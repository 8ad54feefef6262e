"""MCP servers in the CLI: `[[mcp.servers]]` in bridge.toml and `--mcp-config` (Claude Desktop / Code JSON).

```toml
[[mcp.servers]]
name = "time"
command = "uvx"
args = ["mcp-server-time"]

[[mcp.servers]]
name = "docs"
url = "https://mcp.example.com/mcp"
headers = { Authorization = { env = "DOCS_MCP_TOKEN" } }

[[mcp.servers]]
name = "admin"
command = "admin-mcp"
approval = { default = "allow", tools = { "delete_*" = "ask", "drop_*" = "deny" } }   # or: approval = "ask"
```

Besides what the JSON format has (`command`, `args`, `env`, `cwd` / `url`, `headers`), a bridge.toml entry may set
`prefix`, `timeout`, `trusted`, `protocol`, `output_budget` and `approval` (the `mcp_toolset` arguments; `approval`
patterns match the server's own tool names). In the JSON file `${VAR}` and `${VAR:-default}` are expanded from the
environment, as Claude Code does; it has no `approval` (Claude's format): its servers' tools get bridge.toml's
`[approvals.tools]` patterns, like any tool without a policy of its own.

Definitions are pinned in `bridge.mcp.lock` next to bridge.toml (or next to the JSON file when there is no
bridge.toml); `bridge mcp pin` reviews and accepts changes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import ConfigError

if TYPE_CHECKING:
    from toolkits.mcp import McpServerSpec

    from ..tools import Toolset
    from ._config import Config

__all__ = ["LOCK_NAME", "McpEntry", "lock_path", "mcp_entries", "mcp_toolsets"]

LOCK_NAME = "bridge.mcp.lock"
OPTION_KEYS = ("prefix", "timeout", "trusted", "protocol", "output_budget", "approval")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class McpEntry:
    """One configured MCP server: its connection settings (the JSON shape) and `mcp_toolset` options."""

    name: str
    server: Mapping[str, Any]
    options: Mapping[str, Any] = field(default_factory=dict)

    def spec(self) -> McpServerSpec:
        from toolkits.mcp._spec import server_from_entry

        return server_from_entry(self.name, self.server)


def _expand(value: Any, environ: Mapping[str, str], where: str, problems: list[str]) -> Any:
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            problems.append(f"{where}: environment variable {name} is not set")
            return ""

        return _VAR.sub(substitute, value)
    if isinstance(value, Mapping):
        return {k: _expand(v, environ, f"{where}.{k}", problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, environ, where, problems) for v in value]
    return value


def read_mcp_json(path: Path, environ: Mapping[str, str]) -> list[McpEntry]:
    """The servers of a Claude Desktop / Claude Code `mcpServers` file, `${VAR}`s expanded.

    Raises:
        ConfigError: The file is missing, not JSON, or an entry is invalid (every problem listed).
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"MCP config file {str(path)!r} does not exist") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"MCP config file {str(path)!r} cannot be read: {exc}") from None
    servers = data.get("mcpServers") if isinstance(data, Mapping) else None
    if not isinstance(servers, Mapping):
        raise ConfigError(f"{path}: expected an object with an 'mcpServers' object")
    problems: list[str] = []
    entries = [
        McpEntry(str(name), _expand(entry, environ, f"mcpServers.{name}", problems)) for name, entry in servers.items()
    ]
    if problems:
        raise ConfigError([f"{path}: {p}" for p in problems])
    return entries


def mcp_entries(args: Any, config: Config, environ: Mapping[str, str]) -> list[McpEntry]:
    """Every MCP server of bridge.toml and `--mcp-config`; names must be unique."""
    entries = list(config.mcp_servers)
    mcp_config = getattr(args, "mcp_config", None)
    if mcp_config is not None:
        entries += read_mcp_json(Path(mcp_config), environ)
    seen: set[str] = set()
    for entry in entries:
        if entry.name in seen:
            raise ConfigError(f"two MCP servers are named {entry.name!r}; names must be unique")
        seen.add(entry.name)
    return entries


def lock_path(args: Any, config: Config) -> Path:
    """Where the pins live: next to bridge.toml, else next to the `--mcp-config` file, else here."""
    if config.source is not None:
        return config.source.parent / LOCK_NAME
    mcp_config = getattr(args, "mcp_config", None)
    if mcp_config is not None:
        return Path(mcp_config).parent / LOCK_NAME
    return Path(LOCK_NAME)


def mcp_toolsets(args: Any, config: Config, environ: Mapping[str, str]) -> list[Toolset]:
    """One pinned `mcp_toolset` per configured server (not connected yet: they connect when opened)."""
    entries = mcp_entries(args, config, environ)
    if not entries:
        return []
    from toolkits.mcp import PinFile, mcp_toolset

    pins = PinFile(lock_path(args, config))
    problems: list[str] = []
    toolsets: list[Toolset] = []
    for entry in entries:
        try:
            toolsets.append(mcp_toolset(entry.spec(), pins=pins, **entry.options))
        except (ConfigError, TypeError, ValueError) as exc:
            problems.append(f"MCP server {entry.name!r}: {exc}")
    if problems:
        raise ConfigError(problems)
    return toolsets
