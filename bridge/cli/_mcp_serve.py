"""`bridge mcp serve TARGET... [--http HOST:PORT]`: the same toolsets, served to MCP clients.

stdio by default (what Claude Desktop and Claude Code launch); `--http` serves streamable HTTP on that address,
loopback unless told otherwise. The bearer token comes from the environment: `--token-env NAME`, else
`[mcp.serve] token = { env = "NAME" }`, else `BRIDGE_MCP_TOKEN` when it is set. Binding a non-loopback interface
without a token is refused: anyone on the network could call the tools.

Approval policies apply as under `bridge run`: each tool's and toolset's own `approval=`, then bridge.toml's
`[approvals.tools]` patterns; a call whose policy says "ask" is put to the person at the MCP client (elicitation),
for at most `[approvals] timeout` seconds (no answer denies it, whatever `on_timeout` says: that setting is for calls
parked in a journal).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .._errors import ConfigError
from ..mcp import MCPServer, is_loopback, require_mcp
from ..runtime import Limits
from ._config import parse_address
from ._policy import approval_plan
from ._setup import EXIT_OK, load_config_for, load_tools

__all__ = ["TOKEN_ENV", "add_serve_parser", "run_mcp_serve"]

TOKEN_ENV = "BRIDGE_MCP_TOKEN"

log = logging.getLogger("bridge.cli")


def add_serve_parser(
    commands: Any, *, setup: Sequence[Callable[[argparse.ArgumentParser], None]], epilog: str
) -> argparse.ArgumentParser:
    """Register `serve` in the `bridge mcp` command group; `setup` adds the shared TARGET and logging options."""
    serve: argparse.ArgumentParser = commands.add_parser(
        "serve",
        help="serve the tools to MCP clients (Claude Code, Claude Desktop...) over stdio or streamable HTTP",
        description="Serve the tools over MCP with the same definitions, validation, output budget, crash masking, "
        "deadlines and limits as for agents. stdio unless --http is given. Reads the bearer token from "
        f"--token-env, [mcp.serve] token, or {TOKEN_ENV}.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--http", type=_address, metavar="[HOST:]PORT", help="serve streamable HTTP at /mcp")
    serve.add_argument(
        "--token-env", metavar="NAME", help=f"environment variable holding the bearer token ({TOKEN_ENV})"
    )
    serve.add_argument(
        "--allow-origin", action="append", default=[], metavar="ORIGIN", help="also accept this browser Origin"
    )
    serve.add_argument("--name", help="the server name clients show (default: tool-bridge)")
    serve.add_argument("--timeout", type=_seconds, metavar="SECONDS", help="default deadline of one tool call")
    serve.add_argument("--max-concurrency", type=int, metavar="N", help="calls running at once")
    for add_options in setup:
        add_options(serve)
    return serve


async def run_mcp_serve(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Load the tools and serve them until the client disconnects (stdio) or SIGINT/SIGTERM (HTTP)."""
    config = load_config_for(args, environ)
    toolset = load_tools(args, config)
    spec = config.mcp_serve
    limits = _limits(config.limits, args.max_concurrency)
    http = args.http or spec.http
    token = _token(args, spec.token.reveal() if spec.token is not None else None, environ)
    if http is not None and not is_loopback(http[0]) and token is None:
        raise ConfigError(
            f"refusing to serve MCP on {http[0]} without a bearer token: set {TOKEN_ENV} (or --token-env NAME), "
            "or bind 127.0.0.1"
        )
    approval, approval_settings = approval_plan(config.approvals)
    require_mcp()
    timeout = args.timeout or config.timeout
    options: dict[str, Any] = {"timeout": timeout} if timeout is not None else {}
    options.update(approval=approval, approval_timeout=approval_settings.timeout)
    async with MCPServer(toolset, name=args.name or spec.name or "tool-bridge", limits=limits, **options) as server:
        if http is None:
            log.info("serving %d tool(s) over MCP on stdio", len(toolset))
            await server.serve_stdio()
        else:
            origins = (*spec.allowed_origins, *args.allow_origin)
            await server.serve_http(http[0], http[1], token=token, allowed_origins=origins)
    return EXIT_OK


def _limits(table: Mapping[str, Any], max_concurrency: int | None) -> Limits:
    """`Limits` from bridge.toml's [limits] and --max-concurrency (not `_daemon.build_limits`: that module loads the
    Anthropic SDK, a second of startup an MCP host waits for on every launch)."""
    known = {f.name for f in dataclasses.fields(Limits)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError([f"limits.{key}: unknown limit (known: {', '.join(sorted(known))})" for key in unknown])
    values = dict(table)
    if max_concurrency is not None:
        values["max_concurrency"] = max_concurrency
    return Limits(**values)


def _token(args: argparse.Namespace, configured: str | None, environ: Mapping[str, str]) -> str | None:
    if args.token_env:
        value = environ.get(args.token_env)
        if not value:
            raise ConfigError(f"--token-env {args.token_env}: that environment variable is not set or empty")
        return value
    return configured or environ.get(TOKEN_ENV) or None


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _address(text: str) -> tuple[str, int]:
    try:
        return parse_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
