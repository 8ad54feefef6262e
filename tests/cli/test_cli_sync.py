"""`bridge sync` against the emulator: create, update with a diff, dry run, kept tools, version conflicts.

The main flow runs as a subprocess, exactly as users run it; the other cases call the same `main()` in this process
(the same code and real HTTP, without paying a Python start-up per case).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.agents._agent_yaml import load
from bridge.testing import Emulator

MODEL = "claude-opus-4-7"
BUILTIN = {"type": "agent_toolset_20260401", "configs": [{"name": "bash", "enabled": False}]}
MCP_SERVER = {"type": "url", "name": "github", "url": "https://mcp.example.com/github"}
MCP = {"type": "mcp_toolset", "mcp_server_name": "github"}


def custom(name: str, description: str) -> dict[str, Any]:
    return {"type": "custom", "name": name, "description": description, "input_schema": {"type": "object"}}


@pytest.fixture(scope="module")
def api() -> Iterator[Emulator]:
    """One emulator for the module (each test makes its own agents)."""
    with Emulator() as emulator:
        yield emulator


@pytest.fixture
def env(api: Emulator) -> dict[str, str]:
    return {"ANTHROPIC_BASE_URL": api.base_url, "ANTHROPIC_API_KEY": api.api_key}


@pytest.fixture
def client(api: Emulator) -> Any:
    return api.sync_client()


@pytest.fixture
def agent_id(client: Any) -> str:
    """An agent with a built-in toolset, an MCP toolset and two custom tools that differ from the sample tools."""
    agent = client.beta.agents.create(
        name="support",
        model=MODEL,
        mcp_servers=[MCP_SERVER],
        tools=[BUILTIN, custom("add", "An old description."), custom("legacy", "Gone locally."), MCP],
    )
    return str(agent.id)


def non_custom(agent: Any) -> list[dict[str, Any]]:
    return [t.to_dict(mode="json") for t in agent.tools if t.type != "custom"]


def test_create_makes_an_agent_with_the_local_definitions(
    cli: Any, sample_target: str, env: dict[str, str], client: Any
) -> None:
    """--create NAME --model M creates an agent whose custom tools are exactly the local definitions."""
    done = cli("sync", sample_target, "--create", "helper", "--model", MODEL, "--system", "Be brief.", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("created agent agent_")
    new_id = done.stdout.split()[2]
    agent = client.beta.agents.retrieve(new_id)
    assert (agent.name, agent.system, agent.version) == ("helper", "Be brief.", 1)
    assert [t.name for t in agent.tools] == ["add", "slow"]


def test_update_shows_the_diff_and_keeps_non_custom_tools(
    run_bridge: Any, cli: Any, sample_target: str, env: dict[str, str], client: Any, agent_id: str
) -> None:
    """A sync prints each change, bumps the version once, and leaves built-in and MCP toolsets exactly as they were."""
    before = client.beta.agents.retrieve(agent_id)
    done = run_bridge("sync", sample_target, "--agent", agent_id, env=env)
    assert done.returncode == 0, done.stderr
    assert "~ add (description, input_schema changed)" in done.stdout
    assert f"--- {agent_id}@v1/add" in done.stdout
    assert '-  "description": "An old description.",' in done.stdout
    assert "+ slow (new)" in done.stdout
    assert "- legacy (not served locally; removed from the agent)" in done.stdout
    assert f"updated agent {agent_id} to version 2" in done.stdout
    after = client.beta.agents.retrieve(agent_id)
    assert after.version == before.version + 1
    assert non_custom(after) == non_custom(before)
    assert [t.name for t in after.tools if t.type == "custom"] == ["add", "slow"]

    again = cli("sync", sample_target, "--agent", agent_id, "--check", env=env)
    assert again.returncode == 0, again.stderr
    assert "no changes: 2 custom tool(s) already match" in again.stdout
    assert client.beta.agents.retrieve(agent_id).version == after.version


def test_dry_run_changes_nothing_and_check_exits_8(
    cli: Any, sample_target: str, env: dict[str, str], client: Any, agent_id: str
) -> None:
    """--dry-run shows the diff without writing; --check does the same and exits 8 when anything differs."""
    before = client.beta.agents.retrieve(agent_id)
    dry = cli("sync", sample_target, "--agent", agent_id, "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "+ slow (new)" in dry.stdout
    assert "dry run: the agent was not changed" in dry.stdout
    check = cli("sync", sample_target, "--agent", agent_id, "--check", env=env)
    assert check.returncode == 8
    after = client.beta.agents.retrieve(agent_id)
    assert after.version == before.version
    assert after.to_dict(mode="json") == before.to_dict(mode="json")


def test_a_version_conflict_is_retried_once_after_a_fresh_read(
    cli: Any, sample_target: str, env: dict[str, str], client: Any, agent_id: str, api: Emulator
) -> None:
    """A 409 on the update makes the sync read the agent again, diff again and succeed on the second write."""
    route = f"/v1/agents/{agent_id}"
    api.control.fail_next(f"POST {route}", 409, message="agent version is stale")
    done = cli("sync", sample_target, "--agent", agent_id, env=env)
    assert done.returncode == 0, done.stderr
    assert "after a version conflict" in done.stdout
    assert len(api.control.requests(f"GET {route}")) == 2
    assert [r.status for r in api.control.requests(f"POST {route}")] == [409, 200]
    assert client.beta.agents.retrieve(agent_id).version == 2


def test_a_persistent_conflict_exits_7_with_a_clear_error(
    cli: Any, sample_target: str, env: dict[str, str], client: Any, agent_id: str, api: Emulator
) -> None:
    """When the version moves again after the retry, the sync gives up with exit code 7 and changes nothing."""
    api.control.fail_next(f"POST /v1/agents/{agent_id}", [409, 409])
    done = cli("sync", sample_target, "--agent", agent_id, env=env)
    assert done.returncode == 7
    assert f"agent {agent_id} changed while syncing" in done.stderr
    assert client.beta.agents.retrieve(agent_id).version == 1


def test_unknown_agent_and_bad_key_exit_4(cli: Any, sample_target: str, env: dict[str, str]) -> None:
    """A 404 agent and a refused key both exit 4 with a message naming the agent."""
    missing = cli("sync", sample_target, "--agent", "agent_missing", env=env)
    assert missing.returncode == 4
    assert "agent agent_missing does not exist" in missing.stderr
    refused = cli("sync", sample_target, "--agent", "agent_x", env={**env, "ANTHROPIC_API_KEY": "sk-wrong"})
    assert refused.returncode == 4
    assert "the API key was refused" in refused.stderr


def test_write_creates_and_updates_an_agent_yaml_file(cli: Any, sample_target: str, tmp_path: Path) -> None:
    """--write makes an ant-format agent file, then updates only its custom tools, keeping hand-made edits."""
    path = tmp_path / "support.agent.yaml"
    first = cli("sync", sample_target, "--write", str(path), "--model", MODEL)
    assert first.returncode == 0, first.stderr
    document = load(path.read_text())
    assert (document["name"], document["model"]) == ("support", MODEL)
    assert [t["name"] for t in document["tools"]] == ["add", "slow"]

    text = path.read_text().replace("tools:\n", "system: |\n  Be kind.\ntools:\n  - type: agent_toolset_20260401\n")
    path.write_text(text)
    only_add = sample_target.replace(":toolset", ":only_add")
    second = cli("sync", only_add, "--write", str(path))
    assert second.returncode == 0, second.stderr
    assert "- slow" in second.stdout
    document = load(path.read_text())
    assert document["system"] == "Be kind.\n"
    assert document["tools"][0] == {"type": "agent_toolset_20260401"}
    assert [t.get("name") for t in document["tools"][1:]] == ["add"]
    assert cli("sync", only_add, "--write", str(path), "--check").returncode == 0


def test_agent_and_write_save_the_synced_agent(
    cli: Any, sample_target: str, env: dict[str, str], agent_id: str, tmp_path: Path
) -> None:
    """--agent with --write saves the agent as synced (its other tools and MCP servers too) for the ant CLI."""
    path = tmp_path / "support.agent.yaml"
    done = cli("sync", sample_target, "--agent", agent_id, "--write", str(path), env=env)
    assert done.returncode == 0, done.stderr
    document = load(path.read_text())
    assert document["name"] == "support"
    assert document["model"] == MODEL
    assert document["mcp_servers"][0]["name"] == "github"
    assert [t["type"] for t in document["tools"]] == ["agent_toolset_20260401", "mcp_toolset", "custom", "custom"]
    assert f"Synced from agent {agent_id} at version 2." in path.read_text()
