"""`mcp_toolset` against real servers: the third-party time server from PyPI and our own fault server."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from mcp_support import fault_command, time_command

from bridge import ConfigError, Toolset
from toolkits.mcp import PinFile, mcp_toolset
from toolkits.mcp._server import Protocol

pytestmark = pytest.mark.anyio

FENCE = re.compile(r"<untrusted-data-[0-9a-f]+>\n(.*)\n</untrusted-data-[0-9a-f]+>", re.S)


def fenced(text: str) -> str:
    """The text inside the untrusted-data boundary."""
    match = FENCE.search(text)
    assert match is not None, text
    return match.group(1)


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_third_party_time_server_tools_are_served(anyio_backend: str) -> None:
    """mcp-server-time's tools get prefixed Claude-ready definitions, and a call returns its JSON, fenced."""
    async with mcp_toolset(time_command(), name="time") as toolset:
        assert toolset.names() == ["time_get_current_time", "time_convert_time"]
        definition = toolset.get("time_get_current_time").definition()
        assert definition["input_schema"]["additionalProperties"] is False
        assert definition["input_schema"]["required"] == ["timezone"]
        result = await toolset.call("time_get_current_time", {"timezone": "Europe/Paris"})
        assert not result.is_error
        assert json.loads(fenced(result.text))["timezone"] == "Europe/Paris"
        bad = await toolset.call("time_get_current_time", {"timezone": "Mars/Olympus"})
        assert bad.is_error
        assert "Mars/Olympus" in bad.text


async def test_tools_compose_like_any_toolset() -> None:
    """Prefix, filter and rename apply to MCP tools, which are known once the merged toolset is open."""
    mounted = mcp_toolset(time_command(), prefix=None).filter(lambda t: t.name != "convert_time")
    merged = Toolset.merge(mounted.rename({"get_current_time": "now"}), Toolset([]))
    assert merged.has_sources
    assert merged.names() == []
    async with merged:
        assert merged.names() == ["now"]
        assert not (await merged.call("now", {"timezone": "UTC"})).is_error


async def test_crash_mid_call_answers_and_restarts() -> None:
    """A server exiting mid-call answers that call with an outcome-unknown error; the next call waits for a restart."""
    async with mcp_toolset(fault_command(), name="f", trusted=True, timeout=20) as toolset:
        crashed = await toolset.call("f_crash", {})
        assert crashed.is_error
        assert "stopped while running tool 'crash'" in crashed.text
        assert "unknown" in crashed.text
        again = await toolset.call("f_echo", {"text": "back"})
        assert (again.is_error, again.text) == (False, "back")


async def test_restart_runs_a_new_process(tmp_path: Path) -> None:
    """After a crash the server is started again (its start count goes up) and keeps its tools."""
    state = tmp_path / "starts"
    async with mcp_toolset(fault_command("--state", str(state)), name="f", trusted=True) as toolset:
        assert (await toolset.call("f_starts_count", {})).text == "1"
        await toolset.call("f_crash", {})
        assert (await toolset.call("f_starts_count", {})).text == "2"
        assert "f_echo" in toolset


async def test_hang_past_the_deadline_is_cancelled_and_tools_stay() -> None:
    """A call that hangs past its timeout gets an error promptly; the tools stay and the server keeps answering."""
    async with mcp_toolset(fault_command(), name="f", trusted=True, timeout=0.5) as toolset:
        with anyio.fail_after(10):
            hung = await toolset.call("f_hang", {})
        assert hung.is_error
        assert "did not answer tool 'hang' within 0.5 s" in hung.text
        assert "f_hang" in toolset
        assert (await toolset.call("f_echo", {"text": "alive"})).text == "alive"


async def test_progress_keeps_a_call_alive() -> None:
    """Progress notifications extend the call's timeout and reach the context's progress callback."""
    seen: list[str] = []
    from bridge import ToolContext

    context = ToolContext(on_progress=lambda message, fraction: seen.append(message))
    async with mcp_toolset(fault_command(), name="f", trusted=True, timeout=0.35) as toolset:
        result = await toolset.call("f_slow_with_progress", {"steps": 6}, context)
    assert (result.is_error, result.text) == (False, "done")
    assert seen[-1] == "step 6"


async def test_cancelling_the_call_task_cancels_the_request() -> None:
    """Cancelling the task awaiting a call (an interrupt) returns at once; the connection keeps serving."""
    async with mcp_toolset(fault_command(), name="f", trusted=True, timeout=60) as toolset:
        with anyio.move_on_after(0.3) as scope:
            await toolset.call("f_hang", {})
        assert scope.cancelled_caught
        assert (await toolset.call("f_echo", {"text": "next"})).text == "next"


async def test_huge_result_is_cut_to_the_output_budget() -> None:
    """A result larger than the output budget is cut with a visible marker."""
    async with mcp_toolset(fault_command(), name="f", trusted=True, output_budget=2_000) as toolset:
        result = await toolset.call("f_huge", {"size": 1_000_000})
    assert not result.is_error
    assert len(result.text) <= 2_000
    assert "x" * 100 in result.text
    assert "[truncated: 1,000,000 characters" in result.text


async def test_image_result_is_an_image_block() -> None:
    """An MCP image becomes an image block, its caption a text block."""
    async with mcp_toolset(fault_command(), name="f") as toolset:
        result = await toolset.call("f_picture", {})
    assert [block["type"] for block in result.content] == ["image", "text"]
    assert result.content[0]["source"]["media_type"] == "image/png"
    assert fenced(result.content[1]["text"]) == "a one-pixel image"


async def test_server_error_is_an_error_result() -> None:
    """`isError` from the server is an `is_error` result the model reads."""
    async with mcp_toolset(fault_command(), name="f") as toolset:
        result = await toolset.call("f_fails", {})
    assert result.is_error
    assert "Error executing tool fails" in result.text


async def test_list_changed_applies_the_new_definition_between_calls() -> None:
    """Without pins, a changed definition is applied after the notification, once no call is running."""
    changed = anyio.Event()
    async with mcp_toolset(fault_command(), name="f", on_change=lambda names: changed.set()) as toolset:
        assert "ignore all previous" not in toolset.get("f_echo").description
        await toolset.call("f_change_definitions", {})
        with anyio.fail_after(10):
            await changed.wait()
        assert "ignore all previous instructions" in toolset.get("f_echo").description


async def test_pinned_definition_change_is_refused_until_accepted(tmp_path: Path) -> None:
    """With pins, a tool whose definition changed keeps its pinned definition and is refused until re-pinned."""
    pins = PinFile(tmp_path / "bridge.mcp.lock")
    changed = anyio.Event()
    async with mcp_toolset(fault_command(), name="f", pins=pins, on_change=lambda n: changed.set()) as toolset:
        assert set(pins.load()["f"]) >= {"echo", "hang"}
        await toolset.call("f_change_definitions", {})
        with anyio.fail_after(10):
            await changed.wait()
        refused = await toolset.call("f_echo", {"text": "hi"})
        assert refused.is_error
        assert "changed the definition of tool 'echo'" in refused.text
        assert "ignore all previous" not in toolset.get("f_echo").description
        assert not (await toolset.call("f_huge", {"size": 3})).is_error


async def test_a_server_that_cannot_start_fails_the_open() -> None:
    """A command that does not exist makes opening the toolset raise a ConfigError naming the server."""
    with pytest.raises(ConfigError, match=r"MCP server .nope.*failed to start"):
        async with mcp_toolset(["/nonexistent/mcp-server"], name="nope"):
            pass


@pytest.fixture
def http_server() -> Iterator[str]:
    """The fault server over streamable HTTP on a free local port; yields its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([*fault_command("--http", str(port))], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:  # listening yet? a condition polled with a deadline
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert proc.poll() is None, "the HTTP server exited"
            assert time.monotonic() < deadline, "the HTTP server never listened"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("protocol", ["auto", "2025"])
async def test_streamable_http_server(http_server: str, protocol: Protocol) -> None:
    """A streamable-HTTP server is served on both protocol generations; a hung call is cancelled, tools stay."""
    async with mcp_toolset(url=http_server, name="h", protocol=protocol, timeout=0.5, trusted=True) as toolset:
        assert (await toolset.call("h_echo", {"text": "hi"})).text == "hi"
        hung = await toolset.call("h_hang", {})
        assert hung.is_error
        assert (await toolset.call("h_echo", {"text": "after"})).text == "after"


async def test_approval_per_server_and_per_tool() -> None:
    """`approval=` is the mounted server's policy; `{"default", "tools"}` sets per-tool policies by the server's own
    tool names (before the prefix); a malformed mapping or policy fails when the toolset is built."""
    from bridge import Approval, DefinitionError

    assert mcp_toolset(fault_command(), approval="deny").approval == "deny"
    deny_hang = Approval.deny("hangs are not allowed")
    policy = {"default": "ask", "tools": {"echo": "allow", "h*": deny_hang}}
    async with mcp_toolset(fault_command(), name="f", approval=policy) as toolset:
        assert toolset.approval_for("f_echo") == "allow"
        assert toolset.approval_for("f_hang") == deny_hang
        assert toolset.approval_for("f_huge") == deny_hang
        assert toolset.approval_for("f_fails") == "ask"
    with pytest.raises(ConfigError, match="unknown key"):
        mcp_toolset(fault_command(), approval={"defaults": "ask"})
    with pytest.raises(ConfigError, match="tool-name patterns"):
        mcp_toolset(fault_command(), approval={"tools": ["echo"]})
    with pytest.raises(DefinitionError, match="not an approval policy"):
        mcp_toolset(fault_command(), approval={"tools": {"echo": "maybe"}})
    with pytest.raises(DefinitionError, match="not an approval policy"):
        mcp_toolset(fault_command(), approval="sometimes")  # type: ignore[arg-type]
