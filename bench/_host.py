"""The driver's side of a run: the emulator, the scripted agent that times each turn, and the client workers.

The emulator runs in the driver process (on its own thread, as `bridge.testing.Emulator` always does); each side runs
in a worker process (`_worker.py`). The clock is the agent's: the script reads `perf_counter` just before it emits a
turn's tool calls and again when the last result has arrived, so a figure is "how long the session waited on its
tools", the same for both sides, and nothing about how each side starts up or shuts down.

A turn is asked for by a `user.message` whose text is a JSON spec (`Spec`). A barrier lets many sessions emit their
calls at the same instant (the fleet workload): each script parks at the barrier after its message arrives, and the
driver releases them all at once.
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

from bench._tools import TOOL_DEFINITIONS
from bridge.testing import AgentTurn, Emulator

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Turn:
    """One timed turn: when the agent emitted its calls, when the last result arrived, how many were errors."""

    tag: str
    session_id: str
    calls: int
    started: float
    ended: float
    errors: int
    unanswered: int

    @property
    def seconds(self) -> float:
        return self.ended - self.started


class Recorder:
    """Turns recorded by the script (emulator thread), awaited by the driver (main thread)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.turns: dict[str, Turn] = {}
        self.parked = 0
        self._release: anyio.Event | None = None
        self._token: Any = None

    def record(self, turn: Turn) -> None:
        with self._cond:
            self.turns[turn.tag] = turn
            self._cond.notify_all()

    async def park(self) -> None:
        """Called by a script: wait at the barrier until the driver releases every parked script."""
        if self._release is None:
            self._release = anyio.Event()
            self._token = anyio.lowlevel.current_token()
        release = self._release
        with self._cond:
            self.parked += 1
            self._cond.notify_all()
        await release.wait()

    def release(self) -> None:
        """Called by the driver: let every parked script go (and the next ones too, until `reset`)."""
        if self._release is not None:
            anyio.from_thread.run_sync(self._release.set, token=self._token)

    def reset(self) -> None:
        with self._cond:
            self.turns.clear()
            self.parked = 0
            self._release = None
            self._token = None

    async def wait_parked(self, count: int, timeout: float) -> None:  # noqa: ASYNC109
        def wait() -> bool:
            with self._cond:
                return self._cond.wait_for(lambda: self.parked >= count, timeout)

        if not await anyio.to_thread.run_sync(wait, abandon_on_cancel=True):
            raise TimeoutError(f"only {self.parked}/{count} scripts reached the barrier in {timeout}s")

    async def wait_turns(self, tags: Iterable[str], timeout: float) -> list[Turn]:  # noqa: ASYNC109
        """Wait until every tagged turn was recorded; on timeout return what there is (the caller reports it)."""
        wanted = list(tags)

        def wait() -> None:
            with self._cond:
                self._cond.wait_for(lambda: all(t in self.turns for t in wanted), timeout)

        await anyio.to_thread.run_sync(wait, abandon_on_cancel=True)
        with self._cond:
            return [self.turns[t] for t in wanted if t in self.turns]


def make_script(recorder: Recorder) -> Any:
    """The scripted agent: the message's JSON spec says what to do."""

    async def script(agent: AgentTurn) -> None:
        spec = json.loads(agent.text)
        if spec.get("fill"):
            for i in range(spec["fill"]):
                await agent.say(f"history {i}")
            return
        if spec.get("barrier"):
            await recorder.park()
        if spec.get("steady"):
            await steady(agent, spec)
            return
        calls = [(spec["tool"], {"i": i}) for i in range(spec["calls"])]
        started = time.perf_counter()
        results = await agent.call_tools(calls)
        ended = time.perf_counter()
        errors = sum(1 for r in results if r.is_error)
        unanswered = sum(1 for r in results if r.interrupted)
        recorder.record(
            Turn(spec.get("tag", agent.session_id), agent.session_id, len(calls), started, ended, errors, unanswered)
        )
        await agent.say("done")

    async def steady(agent: AgentTurn, spec: dict[str, Any]) -> None:
        """One call always in flight: after a random start within one tool time, call back to back, each timed."""
        seconds, rounds = spec["steady"]["seconds"], spec["steady"]["rounds"]
        await anyio.sleep(random.uniform(0, seconds))
        for k in range(rounds):
            started = time.perf_counter()
            result = await agent.call_tool("sleep", {"i": k, "seconds": seconds})
            ended = time.perf_counter()
            tag = f"{spec.get('tag', agent.session_id)}:{k}"
            recorder.record(
                Turn(tag, agent.session_id, 1, started, ended, int(result.is_error), int(result.interrupted))
            )
        await agent.say("done")

    return script


class Worker:
    """One client process (`_worker.py`) and its JSON-lines channel."""

    def __init__(self, process: Process, side: str) -> None:
        self.process = process
        self.side = side
        assert process.stdout is not None
        self._out = BufferedByteReceiveStream(process.stdout)
        self.ready: dict[str, Any] = {}

    @classmethod
    async def start(
        cls,
        side: str,
        api: Emulator,
        *,
        connections: int = 0,
        backend: str = "asyncio",
        daemon_gc: bool = False,
        python: str | None = None,
        args: tuple[str, ...] = (),
    ) -> Worker:
        """Start a worker process for `side` (on `python`, default this interpreter, with `args` added).

        `daemon_gc` gives the worker the garbage-collector threshold `bridge run` sets for itself
        (`bridge.cli._daemon.GC_THRESHOLD`); the fleet workload starts both sides that way, so neither pays for Python's
        default collections on a heap of 1,000 sessions and the comparison stays like for like.
        """
        command = [
            python or sys.executable, "-m", "bench._worker", "--side", side, "--base-url", api.base_url,
            "--api-key", api.api_key, "--backend", backend, "--connections", str(connections), *args,
            *os.environ.get("BENCH_WORKER_ARGS", "").split(),
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        if daemon_gc and "BENCH_GC_THRESHOLD" not in os.environ:
            from bridge.cli._daemon import GC_THRESHOLD

            env["BENCH_GC_THRESHOLD"] = str(GC_THRESHOLD[0])
        profile_dir = os.environ.get("BENCH_PYSPY")
        if profile_dir:  # profile the workers: py-spy's collapsed stacks, one file per worker (`bench/_profile.py`)
            os.makedirs(profile_dir, exist_ok=True)
            out = Path(profile_dir) / f"{side}-{len(os.listdir(profile_dir)):03d}.txt"
            spy = Path(sys.executable).parent / "py-spy"
            command = [
                str(spy) if spy.exists() else "py-spy",
                "record",
                "--format",
                "raw",
                "--rate",
                "250",
                "-o",
                str(out),
                "--",
                *command,
            ]
        process = await anyio.open_process(command, cwd=ROOT, env=env, stderr=None)
        worker = cls(process, side)
        worker.ready = await worker._read(timeout=60)
        return worker

    async def _read(self, timeout: float) -> dict[str, Any]:  # noqa: ASYNC109
        with anyio.fail_after(timeout):
            line = await self._out.receive_until(b"\n", 1 << 24)
            while not line.startswith(b"{"):  # a profiler's own chatter (py-spy prints to stdout)
                line = await self._out.receive_until(b"\n", 1 << 24)
        reply: dict[str, Any] = json.loads(line)
        return reply

    async def call(self, command: dict[str, Any], timeout: float = 120) -> dict[str, Any]:  # noqa: ASYNC109
        assert self.process.stdin is not None
        await self.process.stdin.send((json.dumps(command) + "\n").encode())
        return await self._read(timeout)

    async def close(self) -> None:
        with anyio.CancelScope(shield=True):
            try:
                if self.process.stdin is not None:
                    await self.process.stdin.send(b'{"op": "exit"}\n')
                with anyio.move_on_after(10):
                    await self.process.wait()
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                pass
            if self.process.returncode is None:
                self.process.kill()
                await self.process.wait()
            await self.process.aclose()


class Host:
    """The emulator plus what every workload needs from it: an agent, fresh sessions, turns, request counts."""

    def __init__(self, api: Emulator, recorder: Recorder) -> None:
        self.api = api
        self.recorder = recorder
        self.client = api.client()
        self.agent_id = ""
        self.environment_id = ""
        self._limit = anyio.CapacityLimiter(32)

    async def setup(self) -> None:
        agent = await self.client.beta.agents.create(name="bench", model="claude-opus-5", tools=TOOL_DEFINITIONS)  # type: ignore[arg-type]
        environment = await self.client.beta.environments.create(name="bench")
        self.agent_id, self.environment_id = agent.id, environment.id

    async def new_sessions(self, count: int) -> list[str]:
        ids: list[str] = [""] * count

        async def one(index: int) -> None:
            async with self._limit:
                session = await self.client.beta.sessions.create(
                    agent=self.agent_id, environment_id=self.environment_id
                )
                ids[index] = session.id

        async with anyio.create_task_group() as tg:
            for index in range(count):
                tg.start_soon(one, index)
        return ids

    async def send(self, session_ids: list[str], spec: dict[str, Any], *, tag_by_session: bool = True) -> None:
        """Post the `user.message` carrying `spec` to each session (concurrently for many)."""

        async def one(session_id: str) -> None:
            body = dict(spec)
            if tag_by_session and "tag" not in body:
                body["tag"] = session_id
            event = {"type": "user.message", "content": [{"type": "text", "text": json.dumps(body)}]}
            async with self._limit:
                await self.client.beta.sessions.events.send(session_id, events=[event])  # type: ignore[list-item]

        async with anyio.create_task_group() as tg:
            for session_id in session_ids:
                tg.start_soon(one, session_id)

    async def wait_connected(self, session_ids: list[str], timeout: float = 60) -> None:  # noqa: ASYNC109
        """Wait until each session has had a stream opened by the client under test."""
        for session_id in session_ids:
            await self.api.control.wait_streams(session_id, connects=1, timeout=timeout)

    async def settle(self, quiet: float = 0.3, timeout: float = 120) -> None:  # noqa: ASYNC109
        """Wait until no request has reached the emulator for `quiet` seconds: the client's set-up (session
        retrieves, first history reads) is over. A time-based wait on purpose: it must not know either side's
        start-up sequence, and a benchmark may wait where a test may not."""
        with anyio.fail_after(timeout):
            seen = -1
            while (count := len(self.api.control.requests())) != seen:
                seen = count
                await anyio.sleep(quiet)

    def count_requests(self, since: int, session_ids: set[str] | None = None) -> dict[str, int]:
        """Requests after index `since` of the request log, by `METHOD route` (session ids replaced by `*`)."""
        counts: dict[str, int] = {}
        for record in self.api.control.requests()[since:]:
            parts = record.path.split("/")
            if len(parts) > 3 and parts[2] == "sessions":
                if session_ids is not None and parts[3] not in session_ids:
                    continue
                parts[3] = "*"
            elif session_ids is not None:
                continue
            route = f"{record.method} {'/'.join(parts)}"
            counts[route] = counts.get(route, 0) + 1
        return counts

    def request_mark(self) -> int:
        return len(self.api.control.requests())


async def open_host() -> tuple[Emulator, Host]:
    """Start an emulator with the benchmark script; the caller exits it (`async with api`)."""
    recorder = Recorder()
    api = Emulator(script=make_script(recorder), max_retries=2)
    await api.__aenter__()
    host = Host(api, recorder)
    await host.setup()
    return api, host
