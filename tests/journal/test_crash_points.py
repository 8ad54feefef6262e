"""Crash points: SIGKILL a bridge at each step of a call's life, restart it on the same journal, check I1-I4.

A bridge child (tests/journal/crash_bridge.py, forked from a pre-imported zygote) serves one emulator session whose
agent calls three tools in parallel: `pay` (not idempotent), `put` (idempotent) and `look` (read-only). The child
SIGKILLs itself when the target tool's call reaches the crash point; a second child then serves the session on the
same journal. Checked after the restart: every call got exactly one result (I1), `pay` ran at most once (I2),
`put` took effect at most once per key and each call was answered once (I3), and an "outcome unknown" error was
posted only for a non-idempotent call the crash caught in `started` (I4); every other call got its real result.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from crash_bridge import look, pay, put  # the functions the child serves

import bridge
from bridge import testing

pytestmark = pytest.mark.anyio

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

POINTS = ["after_intake", "after_started", "mid_tool", "after_completed", "after_post", "after_response", "before_ack"]
SCENARIOS = [(point, "pay") for point in POINTS] + [
    (point, target) for point in ("after_started", "mid_tool") for target in ("put", "look")
]
# The target call's journal state when the crash point kills the bridge. The echo of a posted result races the POST's
# response on another connection; when the echo wins, the call is acked before the response is read, and those two
# crash points land after the ack.
STATE_AT = {
    "after_intake": {"received", "absent"},  # a receipt is written soon after receive() returns, not before
    "after_started": {"started"},
    "mid_tool": {"started"},
    "after_completed": {"completed"},
    "after_post": {"completed", "acked"},
    "after_response": {"completed", "acked"},
    "before_ack": {"completed", "posted"},
}
CALLS = [("pay", {"order": "o1"}), ("put", {"key": "k1"}), ("look", {"what": "w1"})]
REAL = {"pay": "paid o1", "put": "stored k1", "look": "saw w1"}


class Zygote:
    """The fork server: starts bridge children in milliseconds and reports how they ended.

    It runs one child at a time. A reader thread turns its stdout into a queue, so waiting for a line can time out
    without an abandoned read swallowing the next one.
    """

    def __init__(self, log: Path) -> None:
        self.log = log
        self.running: int | None = None
        self._stderr = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "crash_bridge.py")],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        self._lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read_lines, daemon=True)
        self._reader.start()

    def _read_lines(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put("")

    async def _read(self, what: str, timeout: float = 20) -> dict[str, Any]:  # noqa: ASYNC109
        try:
            line = await anyio.to_thread.run_sync(self._lines.get, True, timeout)
        except queue.Empty:
            await self.stop()
            raise AssertionError(f"{what}; bridge log:\n{self.log.read_text()[-4000:]}") from None
        if not line:
            raise AssertionError("the zygote died:\n" + self.log.read_text())
        message: dict[str, Any] = json.loads(line)
        return message

    async def start(self, command: dict[str, Any]) -> int:
        assert self.proc.stdin is not None
        assert self.running is None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        pid: int = (await self._read("the zygote did not fork"))["started"]
        self.running = pid
        return pid

    async def wait_exit(self, what: str) -> int:
        """The running child's exit status (minus the signal number if killed); fails after 20 s, killing it."""
        status: int = (await self._read(what))["status"]
        self.running = None
        return status

    async def stop(self) -> None:
        """SIGKILL the running child, if any, and collect its exit so the next `start` works."""
        pid, self.running = self.running, None
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):  # it may have stopped by itself
            os.kill(pid, signal.SIGKILL)
        await self._read("a SIGKILLed bridge did not exit", timeout=10)

    def close(self) -> None:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=10)
        self._reader.join(timeout=10)
        self.proc.stdout.close()
        self._stderr.close()


@pytest.fixture(scope="module")
def zygote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Zygote]:
    zygote = Zygote(tmp_path_factory.mktemp("zygote") / "bridge.log")
    try:
        yield zygote
    finally:
        zygote.close()


async def three_calls(agent: Any) -> None:
    """The agent calls pay, put and look in parallel, then reports what it got."""
    results = await agent.call_tools(CALLS)
    await agent.say(json.dumps([r.text for r in results]))


def journal_rows(path: Path) -> dict[str, tuple[str, str]]:
    """tool_use_id -> (tool name, state), read from the file the dead bridge left."""
    conn = sqlite3.connect(path)
    try:
        return {
            tid: (name, state)
            for tid, name, state in conn.execute("SELECT tool_use_id, tool_name, state FROM tool_calls")
        }
    finally:
        conn.close()


@dataclass
class Outcome:
    status: int
    at_crash: dict[str, tuple[str, str]]
    results: dict[str, list[dict[str, Any]]]
    names: dict[str, str]
    ledger: list[str]
    report: Any


async def crash_and_restart(zygote: Zygote, tmp_path: Path, point: str, target: str, backend: str) -> Outcome:
    journal, ledger = tmp_path / "journal.db", tmp_path / "ledger.txt"
    async with testing.Emulator(script=three_calls) as api:
        client = api.client()
        tools = bridge.Toolset([pay, put, look]).definitions()
        agent = await client.beta.agents.create(name="crash", model="claude-opus-5", tools=tools)
        env = await client.beta.environments.create(name="env")
        session = await client.beta.sessions.create(agent=agent.id, environment_id=env.id)
        command = {
            "base_url": api.base_url,
            "api_key": api.api_key,
            "session_id": session.id,
            "journal": str(journal),
            "ledger": str(ledger),
            "backend": backend,
        }
        try:
            await zygote.start({**command, "crash_point": point, "target": target})
            await api.control.wait_streams(session.id, connects=1)
            message = {"type": "user.message", "content": [{"type": "text", "text": "go"}]}
            await client.beta.sessions.events.send(session.id, events=[message])  # type: ignore[list-item]
            status = await zygote.wait_exit(f"the bridge never reached {point} for {target}")
            at_crash = journal_rows(journal)

            await zygote.start(command)
            await api.control.wait_idle(session.id, "end_turn", timeout=20)
            report = api.control.invariants(session.id)
            events = api.control.events(session.id)
        finally:
            await zygote.stop()
    uses = {e["id"]: e["name"] for e in events if e["type"] == "agent.custom_tool_use"}
    results: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        if e["type"] == "user.custom_tool_result":
            results.setdefault(e["custom_tool_use_id"], []).append(e)
    lines = ledger.read_text().splitlines() if ledger.exists() else []
    return Outcome(status, at_crash, results, uses, lines, report)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize(("point", "target"), SCENARIOS, ids=[f"{p}-{t}" for p, t in SCENARIOS])
async def test_crash_point(zygote: Zygote, tmp_path: Path, point: str, target: str) -> None:
    """A SIGKILL at the crash point loses no result, runs nothing non-idempotent twice, and says in_doubt only when
    it caught a non-idempotent call started."""
    backend = "trio" if SCENARIOS.index((point, target)) % 2 else "asyncio"
    out = await crash_and_restart(zygote, tmp_path, point, target, backend)

    assert out.status == -signal.SIGKILL, f"the bridge exited with {out.status} instead of being killed"
    target_states = [state for name, state in out.at_crash.values() if name == target] or ["absent"]
    assert len(target_states) == 1, out.at_crash
    assert target_states[0] in STATE_AT[point], f"killed at {point} with the {target} call {target_states[0]}"

    assert out.report.unanswered == (), f"I1: lost results {out.report.unanswered}"
    assert out.report.duplicates == {}, f"I3: results posted twice {out.report.duplicates}"
    assert out.report.unknown_result_ids == ()
    assert len(out.names) == 3

    for tool_use_id, name in out.names.items():
        (result,) = out.results[tool_use_id]
        started_at_crash = out.at_crash.get(tool_use_id, ("", ""))[1] == "started"
        if name == "pay":
            runs = out.ledger.count(f"pay {tool_use_id}")
            assert runs <= 1, f"I2: pay ran {runs} times"
            if started_at_crash:
                assert result["is_error"], "a started non-idempotent call must end in doubt, not be re-run"
                continue
            assert runs == 1
        if name == "put":
            effects = sum(1 for line in out.ledger if line.startswith("put-effect ") and line.endswith(tool_use_id))
            assert effects == 1, f"I3: put took effect {effects} times"
        text = "".join(block.get("text", "") for block in result["content"])
        assert not result["is_error"], f"I4: {name} got an error {text!r} (started at crash: {started_at_crash})"
        assert text == REAL[name]
