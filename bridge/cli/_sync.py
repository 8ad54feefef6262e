"""`bridge sync`: the command around `_sync` (create, update, dry run, check, agent YAML files)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from .._errors import ConfigError
from ..agents import ToolDiff, create_agent, diff_tools, dump_agent_yaml, load_agent_yaml, merge_tools, sync_agent

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

__all__ = ["agent_document", "run_sync", "sync_file"]

_HEADER = (
    "Agent definition, in the format `ant beta:agents create < {name}` reads.\n"
    "The custom tools are written by `bridge sync`; edit the rest freely\n"
    "(comments other than this header are not kept)."
)


async def run_sync(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Run `bridge sync` with parsed arguments; returns the exit code."""
    from ._setup import EXIT_DRIFT, EXIT_OK, load_config_for, load_tools, make_client, tool_definitions

    config = load_config_for(args, environ)
    definitions = await tool_definitions(load_tools(args, config, environ))
    agent_id = args.agent or (config.agent if not args.create else None)
    preview = args.dry_run or args.check
    if args.create and args.agent:
        raise ConfigError("--create makes a new agent and --agent updates one: give only one of them")
    if args.create:
        if not args.model:
            raise ConfigError("--create needs --model (e.g. --model claude-opus-4-7)")
        system = _read_system(args.system)
        if preview:
            _out(f"would create agent {args.create!r} ({args.model}) with {len(definitions)} custom tool(s)")
            return EXIT_DRIFT if args.check else EXIT_OK
        async with make_client(args, config, environ) as client:
            new_id, version = await create_agent(client, args.create, args.model, definitions, system=system)
            _out(f"created agent {new_id} (version {version}) with {len(definitions)} custom tool(s)")
            if args.write:
                await _write_from_agent(client, new_id, args.write)
        return EXIT_OK
    if agent_id:
        async with make_client(args, config, environ) as client:
            result = await sync_agent(client, agent_id, definitions, dry_run=preview)
            _out(result.diff.render(agent_label=f"{agent_id}@v{result.read_version}", local_label="local"))
            if result.updated:
                retried = " after a version conflict" if result.attempts > 1 else ""
                _out(f"updated agent {agent_id} to version {result.version}{retried}")
            elif preview and result.diff:
                _out("dry run: the agent was not changed")
            if args.write and not preview:
                await _write_from_agent(client, agent_id, args.write)
        return EXIT_DRIFT if args.check and result.diff else EXIT_OK
    if args.write:
        diff, written = sync_file(
            args.write, definitions, model=args.model, system=_read_system(args.system), dry_run=preview
        )
        _out(diff.render(agent_label=str(args.write), local_label="local"))
        if written:
            _out(f"wrote {args.write}")
        elif preview and diff:
            _out(f"dry run: {args.write} was not changed")
        return EXIT_DRIFT if args.check and diff else EXIT_OK
    raise ConfigError(
        "where to sync? give --agent ID (update an agent), --create NAME --model M (new agent), "
        "or --write FILE.agent.yaml (an agent file for the ant CLI)"
    )


def sync_file(
    path: Path,
    definitions: Sequence[Mapping[str, Any]],
    *,
    model: str | None = None,
    system: str | None = None,
    dry_run: bool = False,
) -> tuple[ToolDiff, bool]:
    """Bring an agent YAML file's custom tools in step with `definitions`, keeping every other key and tool.

    A missing file is created (it then needs `model`; the name defaults to the file's stem). Returns the diff and
    whether the file was written.
    """
    exists = path.exists()
    if exists:
        try:
            data = load_agent_yaml(path.read_text(encoding="utf-8"), source=str(path))
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from None
    else:
        if not model:
            raise ConfigError(f"{path} does not exist: give --model to write a new agent file")
        data = {"name": path.name.split(".")[0], "model": model}
        if system is not None:
            data["system"] = system
    tools = data.get("tools") or []
    if not isinstance(tools, list) or not all(isinstance(t, Mapping) for t in tools):
        raise ConfigError(f"{path}: 'tools' must be a list of tool definitions")
    diff = diff_tools(tools, definitions)
    overrides = {"model": model} if exists and model and data.get("model") != model else {}
    if exists and not diff and not overrides:
        return diff, False
    data.update(overrides)
    data["tools"] = merge_tools(tools, definitions)
    if dry_run:
        return diff, False
    path.write_text(dump_agent_yaml(data, header=_HEADER.format(name=path.name)), encoding="utf-8")
    return diff, True


def agent_document(agent: Any) -> dict[str, Any]:
    """The create body of an existing agent (what an agent YAML file holds), from an SDK agent object."""
    raw = agent.to_dict(mode="json")
    model = raw.get("model")
    if isinstance(model, Mapping) and all(v is None for k, v in model.items() if k != "id"):
        model = model.get("id")
    document: dict[str, Any] = {"name": raw.get("name"), "model": model}
    for key in ("description", "system"):
        if raw.get(key):
            document[key] = raw[key]
    document["tools"] = raw.get("tools") or []
    for key in ("mcp_servers", "skills", "multiagent", "metadata"):
        if raw.get(key):
            document[key] = raw[key]
    return document


async def _write_from_agent(client: AsyncAnthropic, agent_id: str, path: Path) -> None:
    agent = await client.beta.agents.retrieve(agent_id)
    header = _HEADER.format(name=path.name) + f"\nSynced from agent {agent_id} at version {agent.version}."
    await anyio.Path(path).write_text(dump_agent_yaml(agent_document(agent), header=header), encoding="utf-8")
    _out(f"wrote {path}")


def _read_system(value: str | None) -> str | None:
    if value is None or not value.startswith("@"):
        return value
    try:
        return Path(value[1:]).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--system {value}: cannot read the file: {exc}") from None


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
