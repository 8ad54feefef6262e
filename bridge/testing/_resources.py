"""Request bodies in, resource JSON out: agents, environments and sessions exactly as the SDK's models expect them.

Each builder checks what the real API would reject (a final 400 the SDK raises at once) and fills in every field the
response models require, in the form the wire reference documents (`model` always as an object, toolsets with their
`default_config` and `configs` filled in).
"""

from __future__ import annotations

import re
from typing import Any

from ._util import invalid

__all__ = ["agent_from_body", "environment_from_body", "patch_metadata", "session_agent", "session_resource"]

Json = dict[str, Any]
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_BUILTIN_TOOLS = ("bash", "edit", "read", "write", "glob", "grep", "web_fetch", "web_search")
_ALLOW: Json = {"type": "always_allow"}
AGENT_FIELDS = (
    "name",
    "model",
    "description",
    "system",
    "tools",
    "mcp_servers",
    "skills",
    "execution_identity",
    "multiagent",
)


def _model(value: Any) -> Json:
    if isinstance(value, str) and value:
        return {"id": value, "effort": None, "speed": None, "inference_geo": None}
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        effort = value.get("effort")
        if isinstance(effort, str):
            effort = {"type": effort}
        return {
            "id": value["id"],
            "effort": effort,
            "speed": value.get("speed"),
            "inference_geo": value.get("inference_geo"),
        }
    raise invalid("model: expected a model id string or an object with an `id`")


def _configs(configs: Any, *, builtin: bool) -> list[Json]:
    out = []
    for config in configs or []:
        if not isinstance(config, dict) or not isinstance(config.get("name"), str):
            raise invalid("tools: every entry of `configs` needs a `name`")
        if builtin and config["name"] not in _BUILTIN_TOOLS:
            raise invalid(f"tools: unknown agent toolset tool {config['name']!r}; expected one of {_BUILTIN_TOOLS}")
        entry: Json = {"name": config["name"], "enabled": config.get("enabled", True)}
        entry["permission_policy"] = config.get("permission_policy") or _ALLOW
        out.append({"type": config["name"], **entry} if builtin else entry)
    return out


def _tool(tool: Any, seen: set[str]) -> Json:
    if not isinstance(tool, dict):
        raise invalid("tools: every tool must be an object")
    kind = tool.get("type")
    if kind == "custom":
        name, description, schema = tool.get("name"), tool.get("description"), tool.get("input_schema")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise invalid(f"tools: custom tool name {name!r} must be 1-128 letters, digits, '_' or '-'")
        if not isinstance(description, str):
            raise invalid(f"tools: custom tool {name!r} needs a `description` string")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise invalid(f'tools: custom tool {name!r} needs an `input_schema` with "type": "object"')
        if name in seen:
            raise invalid(f"tools: duplicate tool name {name!r}", error_code="tool_name_conflict")
        seen.add(name)
        return {"type": "custom", "name": name, "description": description, "input_schema": schema}
    if kind in ("agent_toolset_20260401", "mcp_toolset"):
        default = tool.get("default_config") or {}
        out: Json = {
            "type": kind,
            "default_config": {
                "enabled": default.get("enabled", True),
                "permission_policy": default.get("permission_policy") or _ALLOW,
            },
            "configs": _configs(tool.get("configs"), builtin=kind == "agent_toolset_20260401"),
        }
        if kind == "mcp_toolset":
            if not isinstance(tool.get("mcp_server_name"), str):
                raise invalid("tools: an mcp_toolset needs `mcp_server_name`")
            out["mcp_server_name"] = tool["mcp_server_name"]
        return out
    raise invalid(f"tools: unknown tool type {kind!r}")


def _tools(tools: Any) -> list[Json]:
    if not isinstance(tools, list):
        raise invalid("tools: expected a list")
    if len(tools) > 256:
        raise invalid("tools: at most 256 tools")
    seen: set[str] = set()
    return [_tool(t, seen) for t in tools]


def _mcp_servers(servers: Any) -> list[Json]:
    if not isinstance(servers, list) or len(servers) > 20:
        raise invalid("mcp_servers: expected a list of at most 20 servers")
    out = []
    for server in servers:
        if (
            not isinstance(server, dict)
            or not isinstance(server.get("name"), str)
            or not isinstance(server.get("url"), str)
        ):
            raise invalid("mcp_servers: each server needs `name` and `url`")
        out.append({"type": "url", "name": server["name"], "url": server["url"]})
    return out


def patch_metadata(current: dict[str, str], patch: Any) -> dict[str, str]:
    """Apply a metadata patch: keys set to null are deleted, others replaced."""
    if patch is None:
        return current
    if not isinstance(patch, dict):
        raise invalid("metadata: expected an object")
    merged = dict(current)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, str):
            merged[key] = value
        else:
            raise invalid(f"metadata: value of {key!r} must be a string")
    if len(merged) > 16:
        raise invalid("metadata: at most 16 pairs")
    return merged


def agent_from_body(body: Json, *, base: Json | None, agent_id: str, version: int, now: str) -> Json:
    """A new agent version: `body` fields replace `base`'s whole (metadata is a patch)."""
    if base is None:
        for required in ("model", "name"):
            if required not in body:
                raise invalid(f"{required}: field required")
    agent: Json = (
        dict(base)
        if base
        else {
            "id": agent_id,
            "type": "agent",
            "description": None,
            "system": None,
            "tools": [],
            "mcp_servers": [],
            "skills": [],
            "execution_identity": {"type": "service_account"},
            "multiagent": None,
            "metadata": {},
            "created_at": now,
            "archived_at": None,
        }
    )
    for key in AGENT_FIELDS:
        if key not in body:
            continue
        value = body[key]
        if key == "model":
            value = _model(value)
        elif key == "tools":
            value = _tools(value)
        elif key == "mcp_servers":
            value = _mcp_servers(value)
        elif key == "name" and (not isinstance(value, str) or not value):
            raise invalid("name: expected a non-empty string")
        elif key == "execution_identity" and value is None:
            value = {"type": "service_account"}
        agent[key] = value
    agent["metadata"] = patch_metadata(agent["metadata"], body.get("metadata"))
    agent["version"] = version
    agent["updated_at"] = now
    return agent


def session_agent(agent: Json, overrides: Json | None = None) -> Json:
    """The agent snapshot a session carries (`BetaManagedAgentsSessionAgent`), with per-session overrides applied."""
    snapshot = {k: agent[k] for k in ("id", "type", "version", *AGENT_FIELDS) if k in agent}
    snapshot["multiagent"] = None
    if overrides:
        for key in ("tools", "mcp_servers", "model", "system", "skills"):
            if key in overrides:
                value = overrides[key]
                snapshot[key] = _tools(value) if key == "tools" else _model(value) if key == "model" else value
        if "mcp_servers" in overrides:
            snapshot["mcp_servers"] = _mcp_servers(overrides["mcp_servers"])
    return snapshot


def session_resource(body: Json, *, session_id: str, agent: Json, now: str) -> Json:
    """The session object at creation (status idle, zero usage)."""
    return {
        "id": session_id,
        "type": "session",
        "status": "idle",
        "title": body.get("title"),
        "environment_id": body["environment_id"],
        "agent": agent,
        "metadata": patch_metadata({}, body.get("metadata") or {}),
        "resources": [],
        "vault_ids": list(body.get("vault_ids") or []),
        "outcome_evaluations": [],
        "stats": {"active_seconds": 0.0, "duration_seconds": 0.0},
        "usage": {
            "input_tokens": 0,
            "output_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
            "active_seconds": 0.0,
        },
        "budget": body.get("budget"),
        "deployment_id": None,
        "created_at": now,
        "updated_at": now,
        "archived_at": None,
    }


def _environment_config(config: Any) -> Json:
    if config is None:
        config = {"type": "cloud"}
    if not isinstance(config, dict) or config.get("type") not in ("cloud", "self_hosted"):
        raise invalid('config: expected {"type": "cloud", ...} or {"type": "self_hosted"}')
    if config["type"] == "self_hosted":
        return {"type": "self_hosted"}
    packages = {"type": "packages", **{k: [] for k in ("apt", "cargo", "gem", "go", "npm", "pip")}}
    packages.update({k: list(v) for k, v in (config.get("packages") or {}).items() if k != "type"})
    networking = dict(config.get("networking") or {"type": "unrestricted"})
    if networking.get("type") == "limited":
        networking = {"allowed_hosts": [], "allow_mcp_servers": False, "allow_package_managers": False, **networking}
    elif networking.get("type") != "unrestricted":
        raise invalid('config.networking: expected {"type": "unrestricted"} or {"type": "limited", ...}')
    return {"type": "cloud", "networking": networking, "packages": packages}


def environment_from_body(body: Json, *, base: Json | None, environment_id: str, now: str) -> Json:
    """A new or updated environment (timestamps are strings in this model)."""
    if base is None and not isinstance(body.get("name"), str):
        raise invalid("name: field required")
    env: Json = (
        dict(base)
        if base
        else {
            "id": environment_id,
            "type": "environment",
            "description": None,
            "scope": "organization",
            "metadata": {},
            "config": _environment_config(None),
            "created_at": now,
            "archived_at": None,
        }
    )
    for key in ("name", "description", "scope"):
        if key in body:
            env[key] = body[key]
    if "config" in body:
        env["config"] = _environment_config(body["config"])
    env["metadata"] = patch_metadata(env["metadata"], body.get("metadata"))
    env["updated_at"] = now
    return env
