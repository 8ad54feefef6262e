"""Workload 7: a fleet. The same sessions served by one `bridge run` process and by three, on one PostgreSQL.

Each arm is real daemons (`python -m bridge run --agent ... --journal postgresql://...`) against the emulator in this
process, on a fresh database of a throwaway cluster (the tests' `tests/pg.py`, from the machine's PostgreSQL
binaries). The sessions are created first; once every member has claimed its share (every session's stream is open),
a message goes to every session, and each agent makes one 50 ms tool call. Reported: sessions answered per second
(release to last answer) and the p99 overhead (time to answer minus the tool's 50 ms), per arm. On 2 shared cores
three processes cannot be faster than one for CPU, so the row shows what a fleet costs, not what it scales to.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio

from bench._context import Context
from bench._measure import percentile

ROOT = Path(__file__).resolve().parents[1]
TOOLS = f"{Path(__file__).resolve().parent / '_fleet_tools.py'}:toolset"
SESSIONS = (100, 300)


def _cluster() -> Any:
    tests = str(ROOT / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    from pg import cluster

    return cluster()


async def _arm(ctx: Context, pg: Any, members: int, sessions: int) -> dict[str, Any]:
    from bridge.cli._target import load_target
    from bridge.testing import AgentTurn, Emulator

    async def script(agent: AgentTurn) -> None:
        await agent.call_tool("work", {"job": agent.text})
        await agent.say("ok")

    db = pg.create_database("bench")
    async with Emulator(script=script) as api:
        client = api.client()
        definitions: Any = load_target(TOOLS).definitions()
        agent = await client.beta.agents.create(name="fleet", model="claude-opus-5", tools=definitions)
        env = await client.beta.environments.create(name="env")
        ids = [(await client.beta.sessions.create(agent=agent.id, environment_id=env.id)).id for _ in range(sessions)]
        config = Path.cwd() / ".bench-fleet.toml"
        config.write_text("[timeouts]\nagent_poll = 0.2\n")
        env_vars = {**os.environ, "ANTHROPIC_BASE_URL": api.base_url, "ANTHROPIC_API_KEY": api.api_key}
        env_vars["PYTHONPATH"] = str(ROOT)
        command = [sys.executable, "-m", "bridge", "run", TOOLS, "--agent", agent.id, "--journal", pg.url(db)]
        command += ["--config", str(config), "--log-format", "json"]

        def start() -> list[subprocess.Popen[bytes]]:
            devnull = subprocess.DEVNULL
            return [subprocess.Popen(command, env=env_vars, stdout=devnull, stderr=devnull) for _ in range(members)]

        procs = await anyio.to_thread.run_sync(start)
        try:
            for sid in ids:  # every session claimed by some member: its stream is open
                await api.control.wait_streams(sid, connects=1, timeout=120)
            started = time.monotonic()
            async with anyio.create_task_group() as tg:
                for sid in ids:
                    tg.start_soon(_say, client, sid)
            async with anyio.create_task_group() as tg:
                for sid in ids:
                    tg.start_soon(lambda s: api.control.wait_idle(s, timeout=120), sid)
            elapsed = time.monotonic() - started
            report = api.control.invariants()
        finally:
            await anyio.to_thread.run_sync(_stop, procs)
            config.unlink(missing_ok=True)
    overheads = sorted(max(0.0, (c.time_to_answer or float("nan")) - 0.05) for c in report.calls)
    return {
        "members": members,
        "sessions": sessions,
        "answered": sum(c.state == "answered" for c in report.calls),
        "duplicates": sum(max(0, c.results - 1) for c in report.calls),
        "seconds": elapsed,
        "sessions_per_s": sessions / elapsed,
        "p99_overhead_s": percentile(overheads, 99),
    }


async def _say(client: Any, session_id: str) -> None:
    message: Any = [{"type": "user.message", "content": [{"type": "text", "text": session_id}]}]
    await client.beta.sessions.events.send(session_id, events=message)


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def w7(ctx: Context) -> dict[str, Any]:
    """One process against three, on one PostgreSQL."""
    results: dict[str, Any] = {}
    with _cluster() as pg:
        for sessions in SESSIONS[:1] if ctx.quick else SESSIONS:
            for members in (1, 3):
                ctx.log(f"w7: {sessions} sessions, {members} member(s)")
                results[f"{sessions} x{members}"] = await _arm(ctx, pg, members, sessions)
    return {"kind": "fleetpg", "title": "fleet on PostgreSQL: 1 vs 3 `bridge run`", "results": results}
