"""The `bridge` command: see it work, serve sessions, keep the agent's tool definitions in step.

```
bridge demo                                     everything, locally: no API key, no network
bridge tools TARGET...                          the definitions the agent will see, and a lint report
bridge sync  TARGET... --agent ID [--dry-run]   push the definitions to an agent (its other tools are kept)
bridge run   TARGET... --agent ID               serve every session of the agent, new ones included
bridge emulator [--call TOOL JSON]              a local Managed Agents API (optionally a scripted agent)
bridge mcp serve TARGET... [--http HOST:PORT]   the same tools for MCP clients (Claude Code, Claude Desktop)
bridge mcp pin TARGET... [--check]              review and accept changed MCP server tool definitions
bridge approvals list|show|approve|deny         decide calls waiting for approval (works beside `bridge run`)
```

This is the one place that reads the environment (`ANTHROPIC_API_KEY`, `ANTHROPIC_BASE_URL`): the library takes
everything through constructors.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .._errors import (
    AgentConflictError,
    APIAccessError,
    ConfigError,
    DefinitionError,
    JournalError,
    JournalLockedError,
    OperatorError,
    SessionNotFoundError,
    TransportError,
)
from ._console import LOG_FORMATS, setup_logging
from ._setup import (
    EMULATOR_KEY,
    EMULATOR_URL,
    EXIT_ABORTED,
    EXIT_API,
    EXIT_CODES,
    EXIT_CONFIG,
    EXIT_CONFLICT,
    EXIT_DRIFT,
    EXIT_FAILURE,
    EXIT_JOURNAL,
    EXIT_OK,
    EXIT_UNREACHABLE,
    load_config_for,
    load_tools,
)

__all__ = ["main"]

log = logging.getLogger("bridge.cli")


def _exit_code_help() -> str:
    return "exit codes:\n" + "\n".join(f"  {code:<4}{text}" for code, text in EXIT_CODES.items())


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand (exposed for tests and docs)."""
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="bridge",
        description="Serve local Python functions as custom tools to Claude Managed Agents.",
        epilog="TARGET is module:attr or path/to/file.py:attr naming a tool, a list of tools, a Toolset or a "
        "factory.\n\n" + _exit_code_help(),
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--log-format", choices=LOG_FORMATS, default="auto", help="live on a terminal, else json")
        p.add_argument(
            "--log-level", choices=("debug", "info", "warning", "error"), help="default: info (warning for demo)"
        )
        p.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio", help=argparse.SUPPRESS)

    def api(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--emulator",
            nargs="?",
            const=EMULATOR_URL,
            metavar="URL",
            help=f"talk to a local emulator (`bridge emulator`) instead of the API; default URL {EMULATOR_URL}",
        )

    def targets(p: argparse.ArgumentParser) -> None:
        p.add_argument("targets", nargs="*", metavar="TARGET", help="module:attr or file.py:attr (repeatable)")
        p.add_argument("--config", "-c", type=Path, metavar="FILE", help="bridge.toml (toolsets, limits, journal...)")
        p.add_argument(
            "--mcp-config", type=Path, metavar="FILE", help="MCP servers to mount: Claude Desktop/Code mcpServers JSON"
        )

    demo = sub.add_parser(
        "demo",
        help="run the whole product locally on the embedded emulator (no API key, no network)",
        description="Start the emulator, create an agent from the example toolsets, serve a scripted conversation "
        "(a database query, a call that fails validation and is corrected, a slow tool beside fast ones), and print "
        "the transcript and a summary.",
        epilog=_exit_code_help(),
        formatter_class=formatter,
    )
    common(demo)

    run = sub.add_parser(
        "run",
        help="serve sessions: given ones, or every session of an agent (new ones too)",
        description="Serve custom tool calls for the given sessions, or for every session of --agent, until SIGINT "
        "or SIGTERM, then drain in-flight calls and exit 0. Reads ANTHROPIC_API_KEY and ANTHROPIC_BASE_URL.",
        epilog=_exit_code_help(),
        formatter_class=formatter,
    )
    targets(run)
    run.add_argument("--session", "-s", action="append", default=[], metavar="ID", help="serve this session (repeat)")
    run.add_argument("--agent", "-a", metavar="ID", help="serve every session of this agent, following new ones")
    api(run)
    run.add_argument("--state-dir", type=Path, metavar="DIR", help="where the journal lives (default: .bridge)")
    run.add_argument(
        "--journal",
        metavar="sqlite|memory|PATH|URL",
        help="journal backend: sqlite (default, <state-dir>/journal.db), memory (nothing survives a restart), "
        "the path of a SQLite file, or postgresql://... (a fleet: processes on one database share the sessions "
        "under leases)",
    )
    run.add_argument(
        "--lease-ttl",
        type=_positive_float,
        default=15.0,
        metavar="SECONDS",
        help="with a PostgreSQL journal: how long a session's lease lasts unrenewed, so how soon another process "
        "takes over the sessions of one that died (default 15)",
    )
    run.add_argument(
        "--webhook-port",
        type=_port,
        metavar="PORT",
        help="receive the platform's signed webhooks here and serve a session when it needs action (key from "
        "ANTHROPIC_WEBHOOK_SIGNING_KEY; 0: any free port)",
    )
    run.add_argument("--webhook-host", metavar="HOST", help="interface for --webhook-port (default: 127.0.0.1)")
    run.add_argument(
        "--rate-limit",
        type=_positive_float,
        metavar="PER_SECOND",
        help="API requests per second for this bridge (with a PostgreSQL journal: for the whole fleet, shared)",
    )
    run.add_argument("--rate-burst", type=_positive_float, metavar="N", help="requests at once (default: 1 s worth)")
    run.add_argument("--max-concurrency", type=_positive_int, metavar="N", help="calls running at once (all sessions)")
    run.add_argument("--timeout", type=_positive_float, metavar="SECONDS", help="default deadline of one tool call")
    run.add_argument("--health-port", type=_port, metavar="PORT", help="serve /healthz and /metrics (0: any free port)")
    run.add_argument("--health-host", metavar="HOST", help="interface for --health-port (default: 127.0.0.1)")
    run.add_argument(
        "--otel",
        action="store_true",
        help="OpenTelemetry spans of every call and result POST, exported as the OTEL_* variables say (OTLP by "
        "default; needs: pip install 'tool-bridge[otlp]')",
    )
    run.add_argument(
        "--gc-threshold",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="raise the garbage collector's threshold so its pauses stay short with hundreds of sessions "
        "(default; --no-gc-threshold keeps Python's)",
    )
    common(run)

    tools = sub.add_parser(
        "tools",
        help="print the tool definitions as JSON (stdout) and a lint report (stderr)",
        epilog=_exit_code_help(),
        formatter_class=formatter,
    )
    targets(tools)
    common(tools)

    sync = sub.add_parser(
        "sync",
        help="push the tool definitions to an agent, keeping its other tools",
        description="Diff the agent's custom tools against the local definitions, show the diff, and update the agent "
        "with its optimistic version. Built-in and MCP toolsets on the agent are kept untouched. With --write and "
        "no --agent/--create, the agent YAML file (the `ant` CLI's format) is synced instead of the API.",
        epilog=_exit_code_help(),
        formatter_class=formatter,
    )
    targets(sync)
    sync.add_argument("--agent", "-a", metavar="ID", help="the agent to update")
    sync.add_argument("--create", metavar="NAME", help="create a new agent with this name (needs --model)")
    sync.add_argument("--model", metavar="MODEL", help="model of a new agent or agent file (e.g. claude-opus-4-7)")
    sync.add_argument("--system", metavar="TEXT|@FILE", help="system prompt of a new agent (@file reads a file)")
    sync.add_argument("--write", type=Path, metavar="FILE", help="write or update an agent YAML file (ant format)")
    mode = sync.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", "-n", action="store_true", help="show the diff, change nothing")
    mode.add_argument("--check", action="store_true", help=f"like --dry-run, but exit {EXIT_DRIFT} if anything differs")
    api(sync)
    common(sync)

    approvals = sub.add_parser(
        "approvals",
        help="list, show, approve or deny calls waiting for approval (beside a running `bridge run`)",
        description="Read the calls waiting for approval from the journal `bridge run` uses, and leave decisions in "
        "its inbox; the running bridge applies them within [approvals] poll_interval seconds (1 s by default).",
        epilog=_exit_code_help(),
        formatter_class=formatter,
    )
    approvals.add_argument("action", choices=("list", "show", "approve", "deny"))
    approvals.add_argument("call_id", nargs="?", metavar="CALL_ID", help="the call (its agent.custom_tool_use id)")
    approvals.add_argument("--reason", "-r", metavar="TEXT", help="why it is denied (the model reads it)")
    approvals.add_argument("--by", metavar="NAME", help="who decides (default: your user name)")
    approvals.add_argument("--session", "-s", metavar="ID", help="the call's session, if its id is ambiguous")
    approvals.add_argument("--json", action="store_true", help="`list` as JSON")
    approvals.add_argument("--config", "-c", type=Path, metavar="FILE", help="bridge.toml (its journal settings)")
    approvals.add_argument("--state-dir", type=Path, metavar="DIR", help="where the journal lives (default: .bridge)")
    approvals.add_argument(
        "--journal",
        metavar="sqlite|PATH|postgresql://...",
        help="the journal `bridge run` uses (a fleet's PostgreSQL URL included)",
    )
    common(approvals)

    emulator = sub.add_parser(
        "emulator",
        help="serve the Managed Agents emulator in the foreground",
        description="A local Managed Agents API for development: point the SDK (base_url) or `bridge run --emulator` "
        f"at it. Clients must send its --api-key (default {EMULATOR_KEY}, what --emulator sends). With --script or "
        "--call the agent is scripted and each new agent with custom tools gets a session, so `bridge sync --create` "
        "then `bridge run` tries a tools module with the CLI alone; the transcript is printed.",
        epilog=_exit_code_help(),
        formatter_class=formatter,
    )
    emulator.add_argument("--host", default="127.0.0.1", help="interface (default: 127.0.0.1)")
    emulator.add_argument("--port", type=_port, default=8765, help="port (default: 8765; 0 picks a free one)")
    emulator.add_argument(
        "--api-key", default=EMULATOR_KEY, help=f"the key clients must send (default: {EMULATOR_KEY})"
    )
    scripted = emulator.add_mutually_exclusive_group()
    scripted.add_argument(
        "--script", type=Path, metavar="FILE", help="a scripted agent: JSON or YAML with `turns` and `messages`"
    )
    scripted.add_argument(
        "--call",
        nargs=2,
        action="append",
        metavar=("TOOL", "JSON"),
        help="a scripted agent that makes this call (repeat: all at once) on each message",
    )
    common(emulator)

    from ._mcp_pin import add_mcp_commands
    from ._mcp_serve import add_serve_parser

    mcp_commands = add_mcp_commands(sub, targets, common)
    add_serve_parser(mcp_commands, setup=(targets, common), epilog=_exit_code_help())
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `bridge` console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        level = args.log_level or ("warning" if args.command == "demo" else "info")
        console = setup_logging(args.log_format, level)
    except ValueError as exc:
        parser.error(str(exc))
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "demo": _cmd_demo,
        "run": _cmd_run,
        "tools": _cmd_tools,
        "sync": _cmd_sync,
        "emulator": _cmd_emulator,
        "mcp": _cmd_mcp,
        "approvals": _cmd_approvals,
    }
    try:
        return commands[args.command](args)
    except KeyboardInterrupt:
        return EXIT_ABORTED
    except BaseException as exc:  # the last line of defence: every error becomes a documented exit code
        error = primary_error(exc)
        if isinstance(error, KeyboardInterrupt):
            return EXIT_ABORTED
        code = exit_code_for(error)
        if code is None:
            raise
        if code == EXIT_FAILURE:
            log.error("unexpected error: %s", error, exc_info=error)
        _error(cli_message(error))
        return code
    finally:
        console.close_status()


def primary_error(exc: BaseException) -> BaseException:
    """The exception that explains a failure: task groups wrap errors, and an operator error beats a bug."""
    if not isinstance(exc, BaseExceptionGroup):
        return exc
    leaves = [primary_error(inner) for inner in exc.exceptions]
    return next((leaf for leaf in leaves if exit_code_for(leaf) not in (None, EXIT_FAILURE)), leaves[0])


def cli_message(error: BaseException) -> str:
    """The error's text for a command-line user: library advice (keyword arguments) becomes the CLI's options."""
    text = str(error) or type(error).__name__
    if isinstance(error, JournalLockedError):
        holder = text.split("; only one process", 1)[0]
        return (
            f"{holder}; only one process may use a SQLite journal at a time. Stop that bridge, or give this one its "
            "own journal: --state-dir DIR, --journal PATH, or [journal] path in bridge.toml."
        )
    return text


def exit_code_for(exc: BaseException) -> int | None:
    """The documented exit code for an exception (None: let it propagate, e.g. SystemExit)."""
    if isinstance(exc, BaseExceptionGroup):
        return exit_code_for(primary_error(exc))
    if isinstance(exc, ConfigError | DefinitionError):
        return EXIT_CONFIG
    if isinstance(exc, JournalError):
        return EXIT_JOURNAL
    if isinstance(exc, TransportError):
        return EXIT_UNREACHABLE
    if isinstance(exc, AgentConflictError):
        return EXIT_CONFLICT
    if isinstance(exc, APIAccessError | SessionNotFoundError | OperatorError):
        return EXIT_API
    if isinstance(exc, Exception):
        return EXIT_FAILURE
    return None


def _error(message: str) -> None:
    sys.stderr.write(f"bridge: error: {message}\n")
    sys.stderr.flush()


def _run_async(args: argparse.Namespace, fn: Callable[..., Any], *fn_args: Any) -> Any:
    import anyio

    return anyio.run(fn, *fn_args, backend=args.backend)


# -- commands -------------------------------------------------------------------------------------------------------


def _cmd_demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    ok: bool = _run_async(args, run_demo)
    return EXIT_OK if ok else EXIT_FAILURE


def _cmd_run(args: argparse.Namespace) -> int:
    from ._daemon import AbandonedThreads, run_daemon, wait_for_threads

    threads = AbandonedThreads()
    result: int = _run_async(args, run_daemon, args, os.environ, threads)
    if not wait_for_threads(threads):  # abandoned sync tools, announced by `serve`; a second Ctrl-C leaves them running
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_ABORTED)
    return result


def _cmd_tools(args: argparse.Namespace) -> int:
    import json

    config = load_config_for(args, os.environ)
    toolset = load_tools(args, config, os.environ)

    async def describe() -> tuple[list[dict[str, Any]], list[Any]]:
        if not toolset.has_sources:
            return toolset.definitions(), [tool.lint for tool in toolset]
        async with toolset:  # MCP servers: connect to learn their tools
            return toolset.definitions(), [tool.lint for tool in toolset]

    definitions, reports = _run_async(args, describe)
    sys.stdout.write(json.dumps(definitions, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()
    total = sum(report.size for report in reports)
    lines = [str(report) for report in reports]
    lines.append(f"{len(reports)} tool(s), {total:,} bytes of definitions")
    sys.stderr.write("\n".join(lines) + "\n")
    return EXIT_OK


def _cmd_sync(args: argparse.Namespace) -> int:
    from ._sync import run_sync

    result: int = _run_async(args, run_sync, args, os.environ)
    return result


def _cmd_approvals(args: argparse.Namespace) -> int:
    from ._approvals import run_approvals

    return run_approvals(args, os.environ)


def _cmd_emulator(args: argparse.Namespace) -> int:
    from ._emulator import serve_emulator
    from ._trial import load_script, script_of_calls

    script = load_script(args.script) if args.script else script_of_calls(args.call) if args.call else None
    serve_emulator(args.host, args.port, args.api_key, script)
    return EXIT_OK


def _cmd_mcp(args: argparse.Namespace) -> int:
    from ._mcp_serve import run_mcp_serve

    command = run_mcp_serve if args.mcp_subcommand == "serve" else args.mcp_command
    result: int = _run_async(args, command, args, os.environ)
    return result


# -- argument types -------------------------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number (0-65535), got {text!r}")
    return value


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tool-bridge")
    except PackageNotFoundError:
        return "0+unknown"


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
