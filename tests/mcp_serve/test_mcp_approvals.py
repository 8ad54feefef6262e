"""Approval policies over MCP (`bridge mcp serve` / `MCPServer`): allow, deny, a policy function, and "ask" put to the
person at the client through elicitation (accept, decline, dismiss, no answer), or refused when the client cannot be
asked. Driven by the official `mcp` client over stdio (a real subprocess) and streamable HTTP (in-process), on the
2025 handshake protocol (`ClientSession`: the prompt is an `elicitation/create` request) and on 2026-07-28 (`Client`:
the prompt is an `input_required` result the client answers by retrying the call)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import approval_tools
import pytest
from mcp import Client, StdioServerParameters
from mcp.types import ElicitResult
from serve_support import ROOT, bridge_env, http_server, http_session, is_error, stdio_session, texts

from bridge import Approval, ConfigError, DefinitionError, Toolset, tool
from bridge.mcp import MCPServer

pytestmark = pytest.mark.anyio

TRANSPORTS = pytest.mark.parametrize("transport", ["stdio", "http"])
PROTOCOLS = pytest.mark.parametrize("protocol", ["2025", "2026"])
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
async def connect(
    transport: str, asker: Asker | None = None, protocol: str = "2025", **server: Any
) -> AsyncIterator[Any]:
    """A client of the approval tools (`call_tool(name, arguments)`); with `asker`, it supports elicitation and
    answers through it. "2025": a `ClientSession` after the initialize handshake; "2026": a `Client`, which
    negotiates 2026-07-28 and answers `input_required` results by retrying."""
    client = {"elicitation_callback": asker} if asker is not None else {}
    approval_tools.ran.clear()
    if protocol == "2026":
        async with serve(transport, server) as target, Client(target, **client) as modern:
            assert modern.session.protocol_version == "2026-07-28"
            yield modern
    elif transport == "stdio":
        async with stdio_session([TOOLS], **client) as session:
            yield session
    else:
        async with serve(transport, server) as url, http_session(url, **client) as session:
            yield session


@asynccontextmanager
async def serve(transport: str, server: dict[str, Any]) -> AsyncIterator[Any]:
    """What a `Client` connects to: the `bridge mcp serve` command line, or the URL of an in-process server."""
    if transport == "stdio":
        yield StdioServerParameters(
            command=sys.executable, args=["-m", "bridge", "mcp", "serve", TOOLS], env=bridge_env(), cwd=str(ROOT)
        )
    else:
        async with http_server(approval_tools.toolset, server_options=server) as (url, _):
            yield url


async def runs(session: Any) -> dict[str, int]:
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
@PROTOCOLS
async def test_ask_accepted_in_the_client_runs_the_call_once(transport: str, protocol: str) -> None:
    """ "ask" prompts the person at the client (tool name and input shown); accepting runs the call once."""
    asker = Asker("accept")
    async with connect(transport, asker, protocol) as session:
        result = await session.call_tool("open_door", {"door": 7})
        assert await runs(session) == {"open_door": 1}
    assert (texts(result), is_error(result)) == (["door 7 is open"], False)
    [prompt] = asker.prompts
    assert "'open_door'" in prompt.message
    assert '{"door": 7}' in prompt.message
    assert prompt.requested_schema == {"type": "object", "properties": {}}


@TRANSPORTS
@PROTOCOLS
@pytest.mark.parametrize(
    ("action", "why"),
    [("decline", "declined in the MCP client"), ("cancel", "the approval prompt was dismissed without a decision")],
)
async def test_ask_declined_in_the_client_is_denied(transport: str, protocol: str, action: str, why: str) -> None:
    """Declining (or dismissing) the prompt denies the call: it does not run, and the model reads why."""
    asker = Asker(action)
    async with connect(transport, asker, protocol) as session:
        result = await session.call_tool("open_door", {"door": 7})
        assert await runs(session) == {}
    assert is_error(result)
    assert texts(result) == [f"Denied by the user: {why}. The call did not run."]
    assert len(asker.prompts) == 1


@TRANSPORTS
@PROTOCOLS
async def test_ask_without_elicitation_support_is_refused(transport: str, protocol: str) -> None:
    """A client that cannot be asked gets `isError` saying the tool needs approval and how to get it; nothing runs."""
    async with connect(transport, None, protocol) as session:
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


async def test_a_2026_approval_answer_cannot_be_moved_replayed_or_used_late() -> None:
    """The `requestState` of a 2026-07-28 prompt binds the answer to the call: retried with other arguments, a second
    time, or after the approval timeout, the call is denied and does not run."""
    accept = {"approval": ElicitResult(action="accept", content={})}

    async def prompt(client: Client, door: int) -> str:
        asked = await client.session.call_tool("open_door", {"door": door}, allow_input_required=True)
        assert asked.result_type == "input_required"
        assert asked.request_state is not None
        return asked.request_state

    approval_tools.ran.clear()
    async with (
        http_server(approval_tools.toolset, server_options={"approval_timeout": 0.5}) as (url, _),
        Client(url, elicitation_callback=Asker("accept")) as client,
    ):
        state = await prompt(client, 1)
        moved = await client.session.call_tool("open_door", {"door": 2}, input_responses=accept, request_state=state)
        forged = await client.session.call_tool(
            "open_door",
            {"door": 1},
            input_responses=accept,
            request_state=state[:-1] + ("1" if state.endswith("0") else "0"),
        )
        garbage = await client.session.call_tool(
            "open_door", {"door": 1}, input_responses=accept, request_state="9" * 5000 + ".x.y"
        )
        ran = await client.session.call_tool("open_door", {"door": 1}, input_responses=accept, request_state=state)
        replayed = await client.session.call_tool("open_door", {"door": 1}, input_responses=accept, request_state=state)
        late_state = await prompt(client, 3)
        await anyio.sleep(0.6)
        late = await client.session.call_tool(
            "open_door", {"door": 3}, input_responses=accept, request_state=late_state
        )
        unanswered = await client.session.call_tool("open_door", {"door": 4}, request_state=await prompt(client, 4))
        assert await runs(client) == {"open_door": 1}
    assert texts(ran) == ["door 1 is open"]
    does_not_belong = ["Denied by the bridge: the approval answer does not belong to this call. The call did not run."]
    assert texts(moved) == does_not_belong
    assert texts(forged) == does_not_belong
    assert texts(garbage) == does_not_belong
    assert texts(replayed) == [
        "Denied by the bridge: that approval was already used (approve each call). The call did not run."
    ]
    assert texts(late) == ["Denied by timeout: no decision within 0.5 s. The call did not run."]
    assert texts(unanswered) == [
        "Denied by the bridge: the MCP client sent no answer to the approval prompt. The call did not run."
    ]
    assert all(is_error(r) for r in (moved, forged, replayed, late, unanswered))
