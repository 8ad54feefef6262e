"""What every `bridge` command shares: exit codes, the config file, the tools to serve, the API client.

Kept apart from `_main` (argument parsing and dispatch) so the command modules (`_daemon`, `_sync`) can import it
without importing the command line itself: no import cycle.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._errors import ConfigError

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

    from ..tools import Toolset
    from ._config import Config

__all__ = [
    "EMULATOR_KEY",
    "EMULATOR_URL",
    "EXIT_CODES",
    "load_config_for",
    "load_tools",
    "make_client",
    "tool_definitions",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_API = 4
EXIT_UNREACHABLE = 5
EXIT_JOURNAL = 6
EXIT_CONFLICT = 7
EXIT_DRIFT = 8
EXIT_ABORTED = 130

EXIT_CODES: Mapping[int, str] = {
    EXIT_OK: "success (`run`: stopped by SIGINT/SIGTERM after draining in-flight calls)",
    EXIT_FAILURE: "unexpected error, or `demo` did not get the expected answer",
    EXIT_USAGE: "bad command-line arguments",
    EXIT_CONFIG: "configuration error: TARGET, bridge.toml, tool definitions or missing API key",
    EXIT_API: "the API refused: key or permission (401/403), unknown agent or session (404), invalid request",
    EXIT_UNREACHABLE: "the API stayed unreachable after retries",
    EXIT_JOURNAL: "the journal cannot be used (locked by another bridge, newer schema, unwritable)",
    EXIT_CONFLICT: "`sync`: the agent kept changing under the sync (version conflict after one retry)",
    EXIT_DRIFT: "`sync --check`: the agent's custom tools differ from the local definitions",
    EXIT_ABORTED: "a second SIGINT/SIGTERM cut the drain short (running calls cancelled, each still answered)",
}

EMULATOR_URL = "http://127.0.0.1:8765"
EMULATOR_KEY = "sk-ant-emulator"


def load_config_for(args: argparse.Namespace, environ: Mapping[str, str]) -> Config:
    """The config file named by `--config` (or an empty one); no TARGET and no toolset is an error."""
    from ._config import Config, load_config

    config = load_config(args.config, environ) if getattr(args, "config", None) else Config()
    has_mcp = config.mcp_servers or getattr(args, "mcp_config", None)
    if not getattr(args, "targets", None) and not config.toolsets and not has_mcp:
        raise ConfigError(
            "nothing to serve: give a TARGET (module:attr or file.py:attr), --config with [toolsets] or "
            "[[mcp.servers]], or --mcp-config"
        )
    return config


def load_tools(args: argparse.Namespace, config: Config, environ: Mapping[str, str] | None = None) -> Toolset:
    """Every TARGET, config toolset and MCP server, merged into one Toolset; all load problems reported together.

    MCP servers' tools are known once the toolset is open (`toolset.has_sources`); see `tool_definitions`.
    """
    from ..tools import Toolset
    from ._mcp import mcp_toolsets
    from ._target import load_target

    toolsets: list[Toolset] = []
    problems: list[str] = []
    for spec in args.targets:
        try:
            toolsets.append(load_target(spec))
        except ConfigError as exc:
            problems.extend(exc.problems)
    for entry in config.toolsets:
        try:
            toolsets.append(load_target(entry.use, entry.kwargs(), prefix=entry.prefix))
        except ConfigError as exc:
            problems.extend(f"toolsets.{entry.name}: {p}" for p in exc.problems)
    try:
        toolsets.extend(mcp_toolsets(args, config, environ or {}))
    except ConfigError as exc:
        problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return toolsets[0] if len(toolsets) == 1 else Toolset.merge(*toolsets)


async def tool_definitions(toolset: Toolset) -> list[dict[str, Any]]:
    """The definitions to show or sync; a toolset with run-time tools (MCP servers) is opened to learn them."""
    if not toolset.has_sources or toolset.is_open:
        return toolset.definitions()
    async with toolset:
        return toolset.definitions()


def make_client(
    args: argparse.Namespace,
    config: Config,
    environ: Mapping[str, str],
    *,
    http_client: Any = None,
    instance: str | None = None,
) -> AsyncAnthropic:
    """The API client: `--emulator` > bridge.toml [api] > ANTHROPIC_BASE_URL / ANTHROPIC_API_KEY.

    `http_client` replaces the SDK's default (the fleet's budgeted and fenced one); `instance` is sent as
    `x-bridge-instance` on every request, so API-side logs can tell a fleet's members apart.
    """
    from anthropic import AsyncAnthropic

    emulator = getattr(args, "emulator", None)
    base_url = emulator or config.base_url or environ.get("ANTHROPIC_BASE_URL") or None
    key = config.api_key.reveal() if config.api_key is not None else None
    key = key or environ.get("ANTHROPIC_API_KEY") or (EMULATOR_KEY if emulator else None)
    if not key:
        raise ConfigError("ANTHROPIC_API_KEY is not set (or use --emulator to talk to a local emulator)")
    options: dict[str, Any] = {}
    if http_client is not None:
        options["http_client"] = http_client
    if instance is not None:
        options["default_headers"] = {"x-bridge-instance": instance}
    return AsyncAnthropic(api_key=key, base_url=base_url, **options)
