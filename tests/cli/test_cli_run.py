"""`bridge run` as a subprocess against the emulator: serving, following an agent, draining on SIGTERM, health."""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest
from bridge_cli_support import ROOT, SAMPLE, Daemon

from bridge.cli._setup import EMULATOR_KEY
from bridge.cli._target import load_target
from bridge.journal._lock import JournalLock
from bridge.testing import AgentTurn, Emulator


async def script(agent: AgentTurn) -> None:
    """`add A B` adds; `slow SECONDS MARKER` runs the slow tool (which touches MARKER when it starts); `terminate`."""
    words = agent.text.split()
    if words[0] == "terminate":
        await agent.terminate()
        return
    if words[0] == "add":
        result = await agent.call_tool("add", {"a": int(words[1]), "b": int(words[2])})
    else:
        result = await agent.call_tool("slow", {"seconds": float(words[1]), "marker": words[2]})
    await agent.say(("error: " if result.is_error else "") + result.text)


@pytest.fixture
def api() -> Iterator[Emulator]:
    with Emulator(script=script) as emulator:
        yield emulator


@pytest.fixture
def daemon(api: Emulator, tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """Start `bridge run ARGS` against the emulator; every daemon still running at the end is killed."""
    started: list[Daemon] = []
    env = {"ANTHROPIC_BASE_URL": api.base_url, "ANTHROPIC_API_KEY": api.api_key}

    def start(*args: str) -> Daemon:
        d = Daemon(list(args), env, tmp_path)
        started.append(d)
        return d

    yield start
    for d in started:
        d.kill()


def make_agent(api: Emulator, target: str = SAMPLE) -> tuple[Any, str, str]:
    """An agent with the tools of `target`, and an environment; returns a sync client and both ids."""
    client = api.sync_client()
    definitions = load_target(target).definitions()
    agent = client.beta.agents.create(name="runner", model="claude-opus-4-7", tools=definitions)
    environment = client.beta.environments.create(name="e", config={"type": "cloud"})
    return client, agent.id, environment.id


def say(client: Any, session_id: str, text: str) -> None:
    client.beta.sessions.events.send(
        session_id, events=[{"type": "user.message", "content": [{"type": "text", "text": text}]}]
    )


async def fetch(url: str) -> str:
    """GET a URL with the standard library (in a thread: it blocks)."""

    def get() -> str:
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())

    return await anyio.to_thread.run_sync(get)


def last_message(api: Emulator, session_id: str) -> str:
    messages = [e for e in api.control.events(session_id) if e["type"] == "agent.message"]
    return "".join(b["text"] for b in messages[-1]["content"])


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_run_serves_a_session_and_drains_on_sigterm(
    api: Emulator, daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    """A daemon serves a session, reports health, and on SIGTERM finishes the call in flight, posts it, exits 0."""
    client, agent_id, env_id = make_agent(api)
    session = client.beta.sessions.create(agent=agent_id, environment_id=env_id)
    bridge = daemon(SAMPLE, "--session", session.id, "--health-port", "0", "--state-dir", str(tmp_path / "state"))
    ready = bridge.wait_for("bridge ready")
    assert ready["tools"] == ["add", "slow"]
    assert ready["journal"] == f"sqlite {tmp_path / 'state' / 'journal.db'}"
    assert ready["gc_threshold"] == [100_000, 50, 100]  # raised by default: short GC pauses with many sessions

    say(client, session.id, "add 2 3")
    await api.control.wait_idle(session.id, "end_turn", timeout=10)
    assert last_message(api, session.id) == "5"

    assert json.loads(await fetch(f"{ready['health']}/healthz")) == {"status": "ok"}
    metrics = (await fetch(f"{ready['health']}/metrics")).splitlines()
    assert "bridge_sessions 1" in metrics
    assert "bridge_calls_finished_total 1" in metrics
    assert any(line.startswith('bridge_call_latency_seconds{quantile="0.99"} ') for line in metrics)

    marker = tmp_path / "started"
    say(client, session.id, f"slow 1.0 {marker}")
    await api.control.wait_event(session.id, "agent.custom_tool_use", count=2, timeout=10)
    deadline = time.monotonic() + 10
    while not marker.exists():  # the tool creates it when it starts: a condition polled with a deadline
        assert time.monotonic() < deadline, "the slow call never started"
        await anyio.sleep(0.01)
    assert bridge.stop(signal.SIGTERM) == 0
    bridge.wait_for("SIGTERM received: draining")
    report = api.control.invariants(session.id)
    assert report.ok, report
    assert [c.state for c in report.calls] == ["answered", "answered"]
    await api.control.wait_idle(session.id, "end_turn", timeout=10)
    assert last_message(api, session.id) == "slept 1.0"


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_run_follows_new_sessions_of_the_agent(
    api: Emulator, daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    """With --agent, new sessions are served and drift is warned about; a second SIGINT cancels a call and exits 130."""
    client, agent_id, env_id = make_agent(api, SAMPLE.replace(":toolset", ":only_add"))
    config = tmp_path / "bridge.toml"
    config.write_text('[timeouts]\nagent_poll = 0.2\ndrain = 60\n[journal]\nbackend = "memory"\n')
    bridge = daemon(SAMPLE, "--agent", agent_id, "--config", str(config), "--no-gc-threshold")
    drift = bridge.wait_for(f"agent {agent_id}'s tool definitions differ from what this bridge serves")
    assert drift["level"] == "warning"
    assert drift["drift"] == ["added slow"]
    assert bridge.wait_for("bridge ready")["gc_threshold"] != [100_000, 50, 100]  # --no-gc-threshold: Python's own
    session = client.beta.sessions.create(agent=agent_id, environment_id=env_id)
    say(client, session.id, "add 40 2")
    await api.control.wait_idle(session.id, "end_turn", timeout=10)
    assert last_message(api, session.id) == "42"

    marker = tmp_path / "started"
    say(client, session.id, f"slow 60 {marker}")
    await api.control.wait_event(session.id, "agent.custom_tool_use", count=2, timeout=10)
    deadline = time.monotonic() + 10
    while not marker.exists():  # the tool creates it when it starts: a condition polled with a deadline
        assert time.monotonic() < deadline, "the slow call never started"
        await anyio.sleep(0.01)
    bridge.send(signal.SIGINT)
    bridge.wait_for("SIGINT received: draining")
    started = time.monotonic()
    assert bridge.stop(signal.SIGINT) == 130  # the second signal cancels the 60 s call instead of waiting for it
    assert time.monotonic() - started < 3  # and ends the 60 s drain at once
    await api.control.wait_idle(session.id, "end_turn", timeout=10)
    assert last_message(api, session.id).startswith("error: ")  # the cancelled call was still answered
    assert api.control.invariants(session.id).ok


def test_run_exits_0_when_every_session_given_has_ended(cli: Any, api: Emulator) -> None:
    """Serving explicit sessions (no agent) ends by itself, with exit code 0, once they have all terminated."""
    client, agent_id, env_id = make_agent(api)
    session = client.beta.sessions.create(agent=agent_id, environment_id=env_id)
    say(client, session.id, "terminate")
    anyio.run(partial(api.control.wait_status, session.id, "terminated", timeout=10))
    env = {"ANTHROPIC_BASE_URL": api.base_url, "ANTHROPIC_API_KEY": api.api_key}
    done = cli("run", SAMPLE, "--session", session.id, "--journal", "memory", "--log-format", "json", env=env)
    assert done.returncode == 0, done.stderr
    assert "every session given has ended" in done.stderr


def test_an_unknown_agent_exits_4(cli: Any, api: Emulator) -> None:
    """An agent that does not exist stops the daemon at start with exit code 4 and a clear message."""
    env = {"ANTHROPIC_BASE_URL": api.base_url, "ANTHROPIC_API_KEY": api.api_key}
    done = cli("run", SAMPLE, "--agent", "agent_nope", "--journal", "memory", env=env)
    assert done.returncode == 4
    assert "agent agent_nope does not exist" in done.stderr


def test_emulator_flag_needs_no_api_key(cli: Any) -> None:
    """--emulator URL talks to a `bridge emulator` with its default key; no ANTHROPIC_API_KEY is needed."""
    with Emulator(api_key=EMULATOR_KEY) as local:
        done = cli("run", SAMPLE, "--emulator", local.base_url, "--agent", "agent_nope", "--journal", "memory")
    assert done.returncode == 4  # reached the emulator and was told the agent does not exist
    assert "agent agent_nope does not exist" in done.stderr


def test_a_journal_held_by_another_bridge_exits_6(cli: Any, tmp_path: Path) -> None:
    """A second bridge on the same state directory stops at start with exit code 6, naming the holder."""
    lock = JournalLock(tmp_path / "journal.db")  # what a running bridge holds on its journal
    assert lock.try_acquire()
    try:
        done = cli("run", SAMPLE, "--session", "sesn_x", "--state-dir", str(tmp_path), env={"ANTHROPIC_API_KEY": "k"})
    finally:
        lock.release()
    assert done.returncode == 6
    assert "journal.db is in use by this process" in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "nope.module:tools", "--session", "s"], "no module named 'nope'"),
        (["run", SAMPLE], "nothing to serve: give --session ID"),
        (["run", SAMPLE, "--session", "s"], "ANTHROPIC_API_KEY is not set"),
    ],
)
def test_run_refuses_bad_input_before_serving(cli: Any, args: list[str], message: str) -> None:
    """A bad TARGET, no session or agent, or no API key exits 3 at once with a clear message."""
    done = cli(*args)
    assert done.returncode == 3
    assert message in done.stderr


def test_bad_config_for_run_exits_3_listing_problems(cli: Any, tmp_path: Path) -> None:
    """Unknown limits and bad timeouts in bridge.toml are all listed in one error."""
    config = tmp_path / "bridge.toml"
    config.write_text("[limits]\nmax_concurency = 3\n[timeouts]\ndrian = 2\n")
    done = cli("run", SAMPLE, "--session", "s", "--config", str(config), env={"ANTHROPIC_API_KEY": "k"})
    assert done.returncode == 3
    assert "limits.max_concurency: unknown limit" in done.stderr
    assert "timeouts.drian: unknown timeout" in done.stderr


def test_run_as_subprocess_with_a_bad_target_exits_3(run_bridge: Any) -> None:
    """The installed command path: a bad TARGET exits 3 with the message on stderr and no traceback."""
    done = run_bridge("run", "nope.module:tools", "--session", "s", cwd=ROOT)
    assert done.returncode == 3
    assert "bridge: error: TARGET 'nope.module:tools'" in done.stderr
    assert "Traceback" not in done.stderr
