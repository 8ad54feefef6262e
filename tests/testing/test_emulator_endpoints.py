"""Every resource endpoint, called through the real SDK, answers what the SDK's models require (strictly)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import anthropic
import httpx2
import pytest
from anthropic.types.beta import BetaManagedAgentsAgent, BetaManagedAgentsSession
from anthropic.types.beta.beta_environment import BetaEnvironment
from emulator_support import CUSTOM_TOOLS, Setup

from bridge.testing import Behavior, Emulator, validate_model

pytestmark = pytest.mark.anyio

TOOLSET: Any = {
    "type": "agent_toolset_20260401",
    "configs": [{"name": "bash", "permission_policy": {"type": "always_ask"}}],
}
MCP: Any = {"type": "mcp_toolset", "mcp_server_name": "crm"}


async def test_agents_create_update_versions_list_archive(setup: Setup) -> None:
    """Agents: create, retrieve (latest and pinned), optimistic update, versions, list, archive, all strictly valid."""
    agents = setup.client.beta.agents
    raw = await agents.with_raw_response.create(
        name="full",
        model={"id": "claude-opus-5", "effort": "high"},
        tools=[TOOLSET, MCP, *CUSTOM_TOOLS],
        mcp_servers=[{"type": "url", "name": "crm", "url": "https://crm.example/mcp"}],
        metadata={"owner": "bridge"},
        system="sys",
    )
    created = validate_model(BetaManagedAgentsAgent, raw.http_response.json())
    assert raw.http_response.headers["request-id"].startswith("req_")
    assert created.version == 1
    assert created.model.id == "claude-opus-5"
    updated = await agents.update(created.id, version=1, system="sys2", metadata={"owner": None, "k": "v"})
    assert (updated.version, updated.system, updated.metadata) == (2, "sys2", {"k": "v"})
    pinned = await agents.with_raw_response.retrieve(created.id, version=1)
    assert validate_model(BetaManagedAgentsAgent, pinned.http_response.json()).system == "sys"
    assert (await agents.retrieve(created.id)).version == 2
    versions = [a.version async for a in agents.versions.list(created.id, limit=1)]
    assert versions == [2, 1]
    archived = await agents.archive(created.id)
    assert archived.archived_at is not None
    listed = [a.id async for a in agents.list(limit=1)]
    assert created.id not in listed
    assert setup.agent_id in listed
    assert created.id in [a.id async for a in agents.list(include_archived=True, created_at_gte=created.created_at)]


async def test_agent_version_conflict_is_409_and_retried(setup: Setup) -> None:
    """A stale `version` is a 409 by default, which the SDK retries twice before raising ConflictError."""
    await setup.client.beta.agents.update(setup.agent_id, version=1, system="v2")
    with pytest.raises(anthropic.ConflictError) as info:
        await setup.client.beta.agents.update(setup.agent_id, version=1, system="v3")
    assert info.value.type == "conflict_error"
    assert [r.retry_count for r in setup.api.control.requests(f"POST /v1/agents/{setup.agent_id}")][1:] == [0, 1, 2]


async def test_agent_version_conflict_status_is_configurable(make_setup: Any) -> None:
    """With `version_conflict_status=400` the conflict is final: one request, BadRequestError."""
    async with Emulator(behavior=Behavior(version_conflict_status=400)) as api:
        setup = await make_setup(api)
        with pytest.raises(anthropic.BadRequestError):
            await setup.client.beta.agents.update(setup.agent_id, version=7, system="x")
        assert len(api.control.requests("POST /v1/agents/*")) == 1


async def test_environments_crud(setup: Setup) -> None:
    """Environments: create, retrieve, update, list, archive, delete (then 404 with its error code)."""
    envs = setup.client.beta.environments
    raw = await envs.with_raw_response.create(
        name="limited",
        config={"type": "cloud", "networking": {"type": "limited", "allowed_hosts": ["a.example"]}},
        metadata={"a": "b"},
    )
    env = validate_model(BetaEnvironment, raw.http_response.json())
    assert (await envs.retrieve(env.id)).name == "limited"
    assert (await envs.update(env.id, description="d", metadata={"a": None})).metadata == {}
    assert env.id in [e.id async for e in envs.list()]
    assert (await envs.archive(env.id)).archived_at is not None
    assert env.id not in [e.id async for e in envs.list()]
    assert (await envs.delete(env.id)).type == "environment_deleted"
    with pytest.raises(anthropic.NotFoundError) as info:
        await envs.retrieve(env.id)
    assert info.value.error_code == "environment_not_found"


async def test_sessions_create_forms_update_archive_delete(setup: Setup) -> None:
    """Sessions: created from an id, a pinned version or overrides; updated, archived and deleted."""
    sessions = setup.client.beta.sessions
    await setup.client.beta.agents.update(setup.agent_id, system="v2")
    raw = await sessions.with_raw_response.create(
        agent=setup.agent_id, environment_id=setup.environment_id, metadata={"k": "v"}, title="t1"
    )
    latest = validate_model(BetaManagedAgentsSession, raw.http_response.json())
    assert (latest.status, latest.agent.version, latest.title) == ("idle", 2, "t1")
    pinned = await sessions.create(
        agent={"type": "agent", "id": setup.agent_id, "version": 1}, environment_id=setup.environment_id
    )
    assert pinned.agent.version == 1
    overridden = await sessions.create(
        agent={"type": "agent_with_overrides", "id": setup.agent_id, "tools": CUSTOM_TOOLS[:1], "system": "o"},
        environment_id=setup.environment_id,
    )
    assert [t.name for t in overridden.agent.tools] == ["add"]
    assert overridden.agent.system == "o"
    updated = await sessions.update(
        latest.id, metadata={"k": None, "x": "y"}, title="t2", agent={"tools": CUSTOM_TOOLS}
    )
    assert (updated.metadata, updated.title) == ({"x": "y"}, "t2")
    assert [e.type async for e in sessions.events.list(latest.id)] == ["session.updated"]
    assert (await sessions.archive(latest.id)).archived_at is not None
    assert (await sessions.delete(pinned.id)).type == "session_deleted"
    with pytest.raises(anthropic.NotFoundError):
        await sessions.retrieve(pinned.id)
    with pytest.raises(anthropic.BadRequestError):
        await sessions.update(overridden.id, vault_ids=["vlt_1"])


async def test_sessions_list_filters_and_pages_both_ways(setup: Setup) -> None:
    """`GET /v1/sessions` filters by status, agent and time, pages forward with next_page and back with prev_page."""
    sessions = setup.client.beta.sessions
    ids = [await setup.session() for _ in range(5)]
    first = await sessions.list(limit=2, order="asc", statuses=["idle"], agent_id=setup.agent_id)
    assert [s.id for s in first.data] == ids[:2]
    assert first.prev_page is None
    second = await sessions.list(limit=2, order="asc", page=first.next_page)
    assert [s.id for s in second.data] == ids[2:4]
    back = await sessions.list(limit=2, order="asc", page=second.prev_page)
    assert [s.id for s in back.data] == ids[:2]
    newest_first = [s.id async for s in sessions.list(limit=2)]
    assert newest_first == ids[::-1]
    assert [s.id async for s in sessions.list(statuses=["running", "terminated"])] == []
    later = datetime.now(UTC) + timedelta(days=1)
    assert [s.id async for s in sessions.list(created_at_gte=later)] == []
    assert len([s async for s in sessions.list(created_at_lt=later, agent_version=1)]) == 5


async def test_auth_errors_and_request_ids(setup: Setup) -> None:
    """A wrong key is a 401 AuthenticationError; errors carry the envelope and the `request-id` header."""
    bad = setup.api.client(api_key="sk-wrong")
    with pytest.raises(anthropic.AuthenticationError) as info:
        await bad.beta.agents.retrieve(setup.agent_id)
    assert info.value.request_id
    assert info.value.request_id.startswith("req_")
    assert info.value.body["request_id"] == info.value.request_id  # type: ignore[index]
    with pytest.raises(anthropic.NotFoundError) as missing:
        await setup.client.beta.sessions.retrieve("sesn_missing")
    assert (missing.value.type, missing.value.api_message) == ("not_found_error", "session sesn_missing not found")


async def test_raw_http_headers_and_query_forms(setup: Setup) -> None:
    """`x-api-key` works too, the beta header is required, `key=` and `key[]=` arrays both work, unknown routes 404."""
    await setup.session()
    base = {"anthropic-version": "2026-10-21"}
    beta = {**base, "anthropic-beta": "webhooks-2026-10-07,managed-agents-2026-04-01"}
    async with httpx2.AsyncClient(base_url=setup.api.base_url) as http:
        ok = await http.get(
            "/v1/sessions", params={"statuses": "idle"}, headers={**beta, "x-api-key": setup.api.api_key}
        )
        assert ok.status_code == 200
        assert len(ok.json()["data"]) == 1
        bracket = await http.get(
            "/v1/sessions?statuses%5B%5D=running", headers={**beta, "x-api-key": setup.api.api_key}
        )
        assert bracket.json()["data"] == []
        no_beta = await http.get("/v1/sessions", headers={**base, "authorization": f"Bearer {setup.api.api_key}"})
        assert no_beta.status_code == 400
        assert no_beta.json()["error"]["type"] == "invalid_request_error"
        assert no_beta.json()["request_id"] == no_beta.headers["request-id"]
        nowhere = await http.get("/v1/nowhere", headers={**beta, "x-api-key": setup.api.api_key})
        assert nowhere.status_code == 404
        assert nowhere.json()["type"] == "error"
        wrong_method = await http.delete("/v1/agents", headers={**beta, "x-api-key": setup.api.api_key})
        assert wrong_method.status_code == 405
        assert wrong_method.json()["error"]["type"] == "invalid_request_error"


async def test_unknown_query_parameters_are_rejected(setup: Setup) -> None:
    """A query parameter the SDK never sends (e.g. `after_id`) is a 400, on lists and on the stream."""
    sid = await setup.session()
    with pytest.raises(anthropic.BadRequestError, match="after_id"):
        await setup.client.beta.sessions.events.list(sid, extra_query={"after_id": "sevt_1"})
    with pytest.raises(anthropic.BadRequestError, match="after_id"):
        await setup.client.beta.sessions.events.stream(sid, extra_query={"after_id": "sevt_1"})
    async with await setup.client.beta.sessions.events.stream(sid, event_deltas=["agent.message"]):
        await setup.api.control.wait_streams(sid, open=1)
    with pytest.raises(LookupError, match="sesn_nope"):
        setup.api.control.events("sesn_nope")
