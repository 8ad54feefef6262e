"""Real `bridge run` processes on one PostgreSQL against the emulator over HTTP: webhook wake-up of idle sessions,
a fleet surviving SIGKILL and SIGSTOP of its members, and a 429 storm. Every call answered exactly once."""

from __future__ import annotations

import base64
import json
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from bridge_cli_support import Daemon
from pg import PgServer, free_port

from bridge.testing import AgentTurn, Emulator

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

HERE = Path(__file__).resolve().parent
TOOLS = f"{HERE / 'fleet_tools.py'}:toolset"
KEY = "whsec_" + base64.b64encode(b"fleet-webhook-key-012345").decode()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the daemons run on asyncio; the test only drives the emulator


def pay_script(hold: float) -> Callable[[AgentTurn], Any]:
    async def script(agent: AgentTurn) -> None:
        result = await agent.call_tool("pay", {"order": agent.text, "hold": hold})
        await agent.say(result.text)

    return script


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """Start `bridge run ARGS`; every daemon still running at the end is killed (and resumed first if stopped)."""
    started: list[Daemon] = []

    def start(env: dict[str, str], *args: str) -> Daemon:
        daemon = Daemon(list(args), env, tmp_path)
        started.append(daemon)
        return daemon

    yield start
    for i, daemon in enumerate(started):
        if daemon.proc.poll() is None:
            daemon.proc.send_signal(signal.SIGCONT)
        daemon.kill()
        (tmp_path / f"daemon-{i}.log").write_text("\n".join(daemon.lines))  # for a failure's post-mortem


async def make_agent(api: Emulator) -> tuple[Any, str, str]:
    """An agent with `pay` and an environment, through the real SDK."""
    from bridge.cli._target import load_target

    client = api.client()
    definitions: Any = load_target(TOOLS).definitions()
    agent = await client.beta.agents.create(name="shop", model="claude-opus-5", tools=definitions)
    env = await client.beta.environments.create(name="env")
    return client, agent.id, env.id


async def start_sessions(client: Any, agent_id: str, env_id: str, count: int) -> list[str]:
    sessions: list[str] = []
    limiter = anyio.CapacityLimiter(50)

    async def one(i: int) -> None:
        async with limiter:
            session = await client.beta.sessions.create(agent=agent_id, environment_id=env_id)
        sessions.append(session.id)

    async with anyio.create_task_group() as tg:
        for i in range(count):
            tg.start_soon(one, i)
    return sessions


async def say_to_all(client: Any, sessions: list[str]) -> None:
    limiter = anyio.CapacityLimiter(50)

    async def say(session_id: str) -> None:
        async with limiter:
            content: Any = [{"type": "text", "text": session_id}]
            await client.beta.sessions.events.send(session_id, events=[{"type": "user.message", "content": content}])

    async with anyio.create_task_group() as tg:
        for session_id in sessions:
            tg.start_soon(say, session_id)


async def all_idle(api: Emulator, sessions: list[str], timeout: float) -> None:  # noqa: ASYNC109
    async with anyio.create_task_group() as tg:
        for session_id in sessions:
            tg.start_soon(lambda s: api.control.wait_idle(s, timeout=timeout), session_id)


def effects_by_call(pg: PgServer, db: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(pg.dsn("bridge_admin", db), autocommit=True) as conn:
        rows = conn.execute("SELECT tool_use_id, count(*) FROM effects GROUP BY tool_use_id").fetchall()
    return {str(t): int(n) for t, n in rows}


async def test_idle_sessions_hold_no_stream_until_a_webhook_wakes_them(
    daemons: Callable[..., Daemon], pg_cluster: PgServer, fleet_db: str
) -> None:
    """1,000 idle sessions: no stream is opened for any; each is served once its `requires_action` webhook arrives."""
    count = int(__import__("os").environ.get("N", 1000))
    port = free_port()
    async with Emulator(
        script=pay_script(hold=0.0),
        webhook_url=f"http://127.0.0.1:{port}/webhooks",
        webhook_key=KEY,
        webhook_concurrency=32,
    ) as api:
        client, agent_id, env_id = await make_agent(api)
        env = {
            "ANTHROPIC_BASE_URL": api.base_url,
            "ANTHROPIC_API_KEY": api.api_key,
            "ANTHROPIC_WEBHOOK_SIGNING_KEY": KEY,
            "FLEET_LEDGER_DSN": pg_cluster.dsn("bridge_admin", fleet_db),
        }
        daemon = daemons(env, TOOLS, "--webhook-port", str(port), "--journal", pg_cluster.url(fleet_db))
        await anyio.to_thread.run_sync(daemon.wait_for, "bridge ready")
        sessions = await start_sessions(client, agent_id, env_id, count)
        assert sum(api.control.stream_connects(s) for s in sessions) == 0
        await say_to_all(client, sessions)
        await all_idle(api, sessions, timeout=120)
        opened = [s for s in sessions if api.control.stream_connects(s) > 0]
        report = api.control.invariants()
        deliveries = list(api.webhook_deliveries)
        assert daemon.stop(signal.SIGTERM, timeout=60) == 0
    report.assert_ok()
    assert len(report.calls) == count
    assert {r.session_id for r in report.calls if r.state == "answered"} == set(sessions)
    assert len(opened) == count, "a stream only for each woken session"
    wakes = [d for d in deliveries if json.loads(d.body)["data"]["type"] == "session.requires_action"]
    assert len({d.message_id for d in wakes}) == count
    assert all(d.ok for d in wakes)
    assert sorted(effects_by_call(pg_cluster, fleet_db).values()) == [1] * count


def wait_for_effect(pg: PgServer, db: str, pid: int, timeout: float = 60) -> None:
    """Block until process `pid` has executed a `pay` (the ledger's NOTIFY), without polling."""
    import psycopg

    with psycopg.connect(pg.dsn("bridge_admin", db), autocommit=True) as conn:
        conn.execute("LISTEN effects")
        if conn.execute("SELECT 1 FROM effects WHERE pid = %s", (pid,)).fetchone():
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for note in conn.notifies(timeout=deadline - time.monotonic()):
                if note.payload == str(pid):
                    return
        raise AssertionError(f"process {pid} ran no call within {timeout} s")


async def test_a_fleet_survives_a_killed_and_a_paused_member(
    daemons: Callable[..., Daemon], pg_cluster: PgServer, fleet_db: str, tmp_path: Path
) -> None:
    """3 members, 300 sessions, one SIGKILLed mid-call, one SIGSTOPped past its lease: all answered once, none rerun."""
    # Also: "outcome unknown" only for calls the faulted members had started; the paused member, resumed, posts nothing.
    count = 300
    config = tmp_path / "bridge.toml"
    config.write_text("[timeouts]\nagent_poll = 0.3\n")
    async with Emulator(script=pay_script(hold=0.5)) as api:
        client, agent_id, env_id = await make_agent(api)
        env = {
            "ANTHROPIC_BASE_URL": api.base_url,
            "ANTHROPIC_API_KEY": api.api_key,
            "FLEET_LEDGER_DSN": pg_cluster.dsn("bridge_admin", fleet_db),
        }
        args = [TOOLS, "--agent", agent_id, "--journal", pg_cluster.url(fleet_db), "--lease-ttl", "3"]
        members = [daemons(env, *args, "--config", str(config)) for _ in range(3)]
        owners = [(await anyio.to_thread.run_sync(m.wait_for, "bridge ready"))["fleet"] for m in members]
        killed, paused, survivor = members
        sessions = await start_sessions(client, agent_id, env_id, count)
        await say_to_all(client, sessions)

        await anyio.to_thread.run_sync(wait_for_effect, pg_cluster, fleet_db, killed.proc.pid)
        killed.proc.kill()
        await anyio.to_thread.run_sync(wait_for_effect, pg_cluster, fleet_db, paused.proc.pid)
        paused.send(signal.SIGSTOP)

        await all_idle(api, sessions, timeout=120)  # the survivor took both members' sessions over
        resumed_at = time.monotonic()
        paused.send(signal.SIGCONT)
        await anyio.to_thread.run_sync(paused.wait_for, "lease on session")
        assert paused.stop(signal.SIGTERM, timeout=60) == 0
        assert survivor.stop(signal.SIGTERM, timeout=60) == 0
        report = api.control.invariants()
        posts = api.control.requests("POST /v1/sessions/*/events")

    report.assert_ok()
    assert len(report.calls) == count
    late = [p for p in posts if p.instance == owners[1] and p.at > resumed_at]
    assert [p for p in late if p.status < 400] == [], "the zombie posted"  # (a post cut off before its body: 500)
    pids = {int(pg_cluster.scalar("SELECT count(DISTINCT pid) FROM effects", dbname=fleet_db))}
    assert pids == {3}, "every member ran calls"
    effects = effects_by_call(pg_cluster, fleet_db)
    assert max(effects.values()) == 1, "a payment ran twice"
    in_doubt = dict(
        pg_cluster.scalar(
            "SELECT coalesce(json_agg(json_build_array(tool_use_id, owner_id)), '[]') FROM bridge_tool_calls "
            "WHERE in_doubt",
            dbname=fleet_db,
        )
        or []
    )
    assert set(in_doubt.values()) <= {owners[0], owners[1]}, "outcome unknown only where a fault hit a started call"
    answered = {r.tool_use_id for r in report.calls}
    assert answered == set(effects) | set(in_doubt), "every call either ran once or was answered outcome-unknown"


async def test_a_429_storm_loses_and_duplicates_nothing(
    daemons: Callable[..., Daemon], pg_cluster: PgServer, fleet_db: str
) -> None:
    """200 sessions through an API taking 10 result posts a second: a 429 storm, and nothing lost or posted twice."""
    count = 200
    async with Emulator(script=pay_script(hold=0.0)) as api:
        client, agent_id, env_id = await make_agent(api)
        sessions = await start_sessions(client, agent_id, env_id, count)
        await say_to_all(client, sessions)  # every agent now waits on its call; then the storm begins
        limit = await anyio.to_thread.run_sync(
            lambda: api.set_rate_limit(10, 10, routes=("POST /v1/sessions/*/events",))
        )
        env = {
            "ANTHROPIC_BASE_URL": api.base_url,
            "ANTHROPIC_API_KEY": api.api_key,
            "FLEET_LEDGER_DSN": pg_cluster.dsn("bridge_admin", fleet_db),
        }
        members = [daemons(env, TOOLS, "--agent", agent_id, "--journal", pg_cluster.url(fleet_db)) for _ in range(2)]
        await all_idle(api, sessions, timeout=180)
        report = api.control.invariants()
        for member in members:
            assert member.stop(signal.SIGTERM, timeout=60) == 0
    report.assert_ok()
    assert len(report.calls) == count
    assert limit is not None
    assert limit.limited > count / 2, "a storm: many posts were refused with 429"
    assert limit.accepted == count, "one accepted post per session, none twice"
    assert sorted(effects_by_call(pg_cluster, fleet_db).values()) == [1] * count


async def test_without_a_fleet_webhooks_attach_sessions_and_metrics_show_it(
    daemons: Callable[..., Daemon], pg_cluster: PgServer, fleet_db: str
) -> None:
    """One process, memory journal: a webhook attaches its session; /metrics counts webhooks and the rate budget."""
    import urllib.request

    port = free_port()
    url = f"http://127.0.0.1:{port}/webhooks"
    async with Emulator(script=pay_script(hold=0.0), webhook_url=url, webhook_key=KEY) as api:
        client, agent_id, env_id = await make_agent(api)
        env = {
            "ANTHROPIC_BASE_URL": api.base_url,
            "ANTHROPIC_API_KEY": api.api_key,
            "ANTHROPIC_WEBHOOK_SIGNING_KEY": KEY,
            "FLEET_LEDGER_DSN": pg_cluster.dsn("bridge_admin", fleet_db),
        }
        args = ["--webhook-port", str(port), "--journal", "memory", "--rate-limit", "100", "--health-port", "0"]
        daemon = daemons(env, TOOLS, *args)
        ready = await anyio.to_thread.run_sync(daemon.wait_for, "bridge ready")
        sessions = await start_sessions(client, agent_id, env_id, 5)
        await say_to_all(client, sessions)
        await all_idle(api, sessions, timeout=30)
        with urllib.request.urlopen(ready["health"] + "/metrics", timeout=10) as response:  # noqa: ASYNC210
            metrics = response.read().decode()
        report = api.control.invariants()
        assert daemon.stop(signal.SIGTERM, timeout=30) == 0
    report.assert_ok()
    assert len(report.calls) == 5
    assert "bridge_webhooks_accepted_total" in metrics
    assert "bridge_budget_acquired_total" in metrics
    assert "bridge_fleet_held" not in metrics, "no leases without a PostgreSQL journal"


async def test_a_member_joining_late_is_handed_sessions_between_turns(
    daemons: Callable[..., Daemon], pg_cluster: PgServer, fleet_db: str, tmp_path: Path
) -> None:
    """One member serves 20 sessions alone; a second joins; the first hands the excess over at idle points, so the
    second serves the next turn's calls: every call answered once, none cancelled or in doubt by the hand-over."""
    count = 20
    config = tmp_path / "bridge.toml"
    config.write_text("[timeouts]\nagent_poll = 0.3\n")
    async with Emulator(script=pay_script(hold=0.1)) as api:
        client, agent_id, env_id = await make_agent(api)
        env = {
            "ANTHROPIC_BASE_URL": api.base_url,
            "ANTHROPIC_API_KEY": api.api_key,
            "FLEET_LEDGER_DSN": pg_cluster.dsn("bridge_admin", fleet_db),
        }
        args = [TOOLS, "--agent", agent_id, "--journal", pg_cluster.url(fleet_db), "--lease-ttl", "2"]
        first = daemons(env, *args, "--config", str(config))
        await anyio.to_thread.run_sync(first.wait_for, "bridge ready")
        sessions = await start_sessions(client, agent_id, env_id, count)
        await say_to_all(client, sessions)
        await all_idle(api, sessions, timeout=60)

        second = daemons(env, *args, "--config", str(config))
        await anyio.to_thread.run_sync(second.wait_for, "bridge ready")
        await anyio.to_thread.run_sync(second.wait_for, "serving session")  # handed over by the first
        await say_to_all(client, sessions)
        await all_idle(api, sessions, timeout=60)
        report = api.control.invariants()
        assert first.stop(signal.SIGTERM, timeout=60) == 0
        assert second.stop(signal.SIGTERM, timeout=60) == 0
    report.assert_ok()
    assert len(report.calls) == 2 * count
    effects = effects_by_call(pg_cluster, fleet_db)
    assert sorted(effects.values()) == [1] * (2 * count), "every call ran once"
    by_second = pg_cluster.scalar("SELECT count(*) FROM effects WHERE pid = %s", (second.proc.pid,), dbname=fleet_db)
    assert by_second > 0, "the late member served calls"
    assert pg_cluster.scalar("SELECT count(*) FROM bridge_tool_calls WHERE in_doubt", dbname=fleet_db) == 0
    assert any("handing session" in line for line in first.lines)
