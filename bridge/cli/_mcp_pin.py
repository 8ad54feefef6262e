"""`bridge mcp pin`: review and accept the MCP tool definitions the bridge will serve.

Connects to every configured MCP server, compares each tool's definition with the lock file (`bridge.mcp.lock` next
to bridge.toml), prints the differences as a unified diff, and records the current definitions (unless `--check`, which
only shows them and exits 8 when anything differs). A daemon already running picks the new pins up at its next tool
list (a restart or a `list_changed`); restart it to apply them at once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["add_mcp_commands", "run_pin"]


def add_mcp_commands(
    sub: Any,
    targets: Callable[[argparse.ArgumentParser], None],
    common: Callable[[argparse.ArgumentParser], None],
) -> Any:
    """Register `bridge mcp` and its `pin` subcommand; returns the group other `mcp` subcommands join."""
    mcp = sub.add_parser("mcp", help="MCP: pin mounted servers' tool definitions; serve the tools to MCP clients")
    mcp_sub = mcp.add_subparsers(dest="mcp_subcommand", metavar="SUBCOMMAND", required=True)
    pin = mcp_sub.add_parser(
        "pin",
        help="show how the MCP servers' tool definitions differ from the pins, and accept them",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    targets(pin)
    pin.add_argument("--check", action="store_true", help="show the differences, change nothing (exit 8 if any)")
    common(pin)
    pin.set_defaults(mcp_command=run_pin)
    return mcp_sub


async def run_pin(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Run `bridge mcp pin`; returns the exit code."""
    from toolkits.mcp import McpServer, PinFile

    from .._errors import ConfigError
    from ._config import Config, load_config
    from ._mcp import lock_path, mcp_entries
    from ._setup import EXIT_DRIFT, EXIT_OK

    config = load_config(args.config, environ) if args.config else Config()
    entries = mcp_entries(args, config, environ)
    if not entries:
        raise ConfigError("no MCP servers configured: use [[mcp.servers]] in bridge.toml or --mcp-config FILE")
    pins = PinFile(lock_path(args, config))
    differs = False
    for entry in entries:
        server = McpServer(
            entry.spec(),
            prefix=None,
            timeout=60.0,
            trusted=False,
            pins=None,
            protocol=entry.options.get("protocol", "auto"),
            startup_timeout=30.0,
            output_budget=None,
        )
        async with server.running():
            current = dict(server.definitions)
        diff = pins.diff(entry.name, current)
        if not diff:
            _out(f"{entry.name}: {len(current)} tool(s), pinned definitions unchanged")
            continue
        differs = True
        _out(diff)
        if args.check:
            _out(f"{entry.name}: definitions differ from {pins.path} (not changed: --check)")
        else:
            pins.record(entry.name, current)
            _out(f"{entry.name}: {len(current)} tool definition(s) pinned in {pins.path}")
    return EXIT_DRIFT if differs and args.check else EXIT_OK


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
