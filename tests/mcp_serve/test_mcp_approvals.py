"""Approval policies over MCP (`bridge mcp serve` / `MCPServer`): allow, deny, a policy function, and "ask" put to the
person at the client through elicitation (accept, decline, dismiss, no answer), or refused when the client cannot be
asked. Driven by the official `mcp` client over stdio (a real subprocess) and streamable HTTP (in-process)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import approval_tools
import pytest
from mcp import ClientSession
from mcp.types import ElicitResult
from serve_support import http_server, http_session, is_error, stdio_session, texts

from bridge import Approval, ConfigError, DefinitionError, Toolset, tool
from bridge.mcp import MCPServer

pytestmark = pytest.mark.anyio

TRANSPORTS = pytest.mark.parametrize("transport", ["stdio", "http"])
TOOLS = f"{Path(approval_tools.__file__).resolve()}:toolset"


class Asker:
    """An elicitation callback that answers every prompt with `action` and keeps the prompts it saw."""

    def __init__(self, action: str) -> None:
        self.action = action
        self.prompts: list[Any] = []

    async def __call__(self, context: Any, params: Any) -> ElicitResult:
        self.prompts.append(params)
        return ElicitResult(action=self.action, content={} if self.action == "accept" else None)  # type: ignore[arg-type]


@asynccontextmanager
async def connect(transport: str, asker: Asker | None = None, **server: Any) -> AsyncIterator[ClientSession]:
    """A session with the approval tools; with `asker`, the client supports elicitation and answers through it."""
    client = {"elicitation_callback": asker} if asker is not None else {}
    approval_tools.ran.clear()
    if transport == "stdio":
        async with stdio_session([TOOLS], **client) as session:
            yield session
    else:
        async with (
            http_server(approval_tools.toolset, server_options=server) as (url, _),
            http_session(url, **client) as session,
        ):
            yield session


async def runs(session: ClientSession) -> dict[str, int]:
    """Which gated tools ran, as the serving process counted them."""
    return dict(json.loads(texts(await session.call_tool("runs", {}))[0]))


@TRANSPORTS
async def test_allow_and_no_policy_run(transport: str) -> None:
    """A tool without a policy and one marked "allow" run without anyone being asked."""
    asker = Asker("decline")
    async with connect(transport, asker) as session:
        greeted = await session.call_tool("greet", {"name": "Ada"})
        waved = await session.call_tool("wave", {})
        assert await runs(session) == {"wave": 1}
    assert (texts(greeted), is_error(greeted)) == (["hello Ada"], False)
    assert (texts(waved), is_error(waved)) == (["waved"], False)
    assert asker.prompts == []


@TRANSPORTS
async def test_deny_answers_with_the_agents_denial_text(transport: str) -> None:
    """A denied tool does not run; the client gets `isError` with the text agents get for the same denial."""
    asker = Asker("accept")
    async with connect(transport, asker) as session:
        result = await session.call_tool("launch", {"target": "rocket"})
        assert await runs(session) == {}
    assert is_error(result)
    assert texts(result) == ["Denied by policy: launches need a change ticket. The call did not run."]
    assert asker.prompts == []  # a denial is final: nobody is asked


@TRANSPORTS
async def test_ask_accepted_in_the_client_runs_the_call_once(transport: str) -> None:
    """ "ask" prompts the person at the client (tool name and input shown); accepting runs the call once."""
    asker = Asker("accept")
    async with connect(transport, asker) as session:
        result = await session.call_tool("open_door", {"door": 7})
        assert await runs(session) == {"open_door": 1}
    assert (texts(result), is_error(result)) == (["door 7 is open"], False)
    [prompt] = asker.prompts
    assert "'open_door'" in prompt.message
    assert '{"door": 7}' in prompt.message
    assert prompt.requested_schema == {"type": "object", "properties": {}}


@TRANSPORTS
@pytest.mark.parametrize(
    ("action", "why"),
    [("decline", "declined in the MCP client"), ("cancel", "the approval prompt was dismissed without a decision")],
)
async def test_ask_declined_in_the_client_is_denied(transport: str, action: str, why: str) -> None:
    """Declining (or dismissing) the prompt denies the call: it does not run, and the model reads why."""
    asker = Asker(action)
    async with connect(transport, asker) as session:
        result = await session.call_tool("open_door", {"door": 7})
        assert await runs(session) == {}
    assert is_error(result)
    assert texts(result) == [f"Denied by the user: {why}. The call did not run."]
    assert len(asker.prompts) == 1


@TRANSPORTS
async def test_ask_without_elicitation_support_is_refused(transport: str) -> None:
    """A client that cannot be asked gets `isError` saying the tool needs approval and how to get it; nothing runs."""
    async with connect(transport) as session:
        result = await session.call_tool("open_door", {"door": 7})
        assert await runs(session) == {}
    assert is_error(result)
    [text] = texts(result)
    assert "needs approval" in text
    assert "does not support elicitation" in text
    assert "bridge run" in text
    assert "approval policy" in text


@TRANSPORTS
async def test_policy_function_sees_the_mcp_request(transport: str) -> None:
    """An async policy function gets the validated input, the MCP session id (None over stdio) and the request id;
    its allow runs the call and its deny answers with its reason."""
    async with connect(transport, Asker("accept")) as session:
        small = await session.call_tool("transfer", {"cents": 50})
        large = await session.call_tool("transfer", {"cents": 500})
        assert await runs(session) == {"transfer": 1}
    assert (texts(small), is_error(small)) == (["transferred 50"], False)
    assert is_error(large)
    [text] = texts(large)
    assert text.startswith("Denied by policy: 500 is over the limit (tool=transfer session=")
    session_id = text.split("session=")[1].split(" ")[0]
    assert (session_id == "None") == (transport == "stdio")
    assert " call=" in text
    assert text.split(" call=")[1].split(" ")[0] not in ("", "None")
    assert "thread=None, metadata={})" in text


async def test_no_answer_within_the_approval_timeout_is_denied(caplog: pytest.LogCaptureFixture) -> None:
    """A prompt nobody answers denies the call after `approval_timeout`; every decision is logged."""
    answered = anyio.Event()

    async def never(context: Any, params: Any) -> ElicitResult:
        await answered.wait()
        return ElicitResult(action="accept", content={})

    caplog.set_level(logging.INFO, logger="bridge.approvals")
    approval_tools.ran.clear()
    async with (
        http_server(approval_tools.toolset, server_options={"approval_timeout": 0.3}) as (url, _),
        http_session(url, elicitation_callback=never) as session,
    ):
        with anyio.fail_after(10):
            result = await session.call_tool("open_door", {"door": 1})
        answered.set()
        assert await runs(session) == {}
    assert is_error(result)
    assert texts(result) == ["Denied by timeout: no decision within 0.3 s. The call did not run."]
    decisions = [r.getMessage() for r in caplog.records if r.name == "bridge.approvals"]
    assert any("open_door" in m and "denied by timeout" in m for m in decisions)


async def test_server_level_policy_applies_to_tools_without_one() -> None:
    """`MCPServer(approval=...)` is the default for tools whose tool and toolset set none (as `Bridge(approval=)`)."""

    @tool
    def plain() -> str:
        """A tool with no policy of its own."""
        return "ran"

    @tool(approval="allow")
    def allowed() -> str:
        """A tool that allows itself."""
        return "ran too"

    tools = Toolset([plain, allowed])
    async with http_server(tools, server_options={"approval": "deny"}) as (url, _), http_session(url) as session:
        denied = await session.call_tool("plain", {})
        ran = await session.call_tool("allowed", {})
    assert texts(denied) == ["Denied by policy. The call did not run."]
    assert texts(ran) == ["ran too"]


async def test_invalid_settings_fail_at_construction() -> None:
    """A bad policy or approval timeout is refused when the server is built, not at the first call."""
    with pytest.raises(DefinitionError):
        MCPServer(approval_tools.toolset, approval="maybe")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        MCPServer(approval_tools.toolset, approval_timeout=0)
    assert MCPServer(approval_tools.toolset, approval=Approval.ask()).approval == Approval.ask()


async def test_bridge_toml_approval_patterns_apply_to_mcp_serve(tmp_path: Path) -> None:
    """`bridge mcp serve` applies bridge.toml's `[approvals.tools]` patterns to tools that set no policy of their
    own, as `bridge run` does; a tool's own policy still wins."""
    (tmp_path / "bridge.toml").write_text('[approvals.tools]\n"greet" = "deny"\n"wave" = "deny"\n', encoding="utf-8")
    async with stdio_session([TOOLS, "--config", "bridge.toml"], cwd=tmp_path) as session:
        greeted = await session.call_tool("greet", {"name": "Ada"})
        waved = await session.call_tool("wave", {})
    assert texts(greeted) == ["Denied by policy. The call did not run."]
    assert texts(waved) == ["waved"]
