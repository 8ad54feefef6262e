"""Starting, stopping and serving: no leaks, sync use, the command line, and signed webhooks."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import anthropic
import anyio
import pytest
from anthropic.types.beta import BetaWebhookEvent
from emulator_support import Setup
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridge.testing import Emulator, ScriptedAgent, validate_model
from bridge.testing._runner import AppServer

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# Worker threads of the async backends' thread pools (anyio's on asyncio, trio's own cache on trio): process-wide,
# reused while idle and retired on the pool's own clock (trio's after 10 s idle), so they come and go during a test.
_POOL_THREAD = re.compile(r"^(AnyIO worker thread|Trio thread \d+$)")


def our_threads() -> set[str]:
    return {t.name for t in threading.enumerate() if not _POOL_THREAD.match(t.name)}


def pool_threads() -> int:
    return sum(1 for t in threading.enumerate() if _POOL_THREAD.match(t.name))


async def test_fifty_emulators_leak_no_ports_threads_or_tasks() -> None:
    """Starting and stopping 50 emulators in a row (each serving a request) leaks no ports, fds, threads or tasks."""
    async with Emulator() as warm:
        await warm.client().beta.environments.create(name="warm-up")
    fds, threads, tasks, pool = open_fds(), our_threads(), len(anyio.get_running_tasks()), pool_threads()
    ports = []
    for _ in range(50):
        async with Emulator() as api:
            await api.client().beta.environments.create(name="e")
            ports.append(api.port)
    assert (open_fds(), our_threads(), len(anyio.get_running_tasks())) == (fds, threads, tasks)
    # Idle pool workers may retire (fewer) or a busy moment may add one or two, but never one per emulator.
    assert pool_threads() <= pool + 3
    for port in set(ports):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))


def test_sync_context_manager_and_sync_client() -> None:
    """`with Emulator()` works without an event loop, with the sync SDK client."""
    with Emulator(script=ScriptedAgent.reply("hello")) as api:
        client = api.sync_client()
        agent = client.beta.agents.create(name="a", model="claude-opus-5")
        env = client.beta.environments.create(name="e")
        session = client.beta.sessions.create(agent=agent.id, environment_id=env.id)
        client.beta.sessions.events.send(
            session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "hi"}]}]
        )
        types = [e.type for e in client.beta.sessions.events.list(session.id)]
    assert types[-2:] == ["agent.message", "session.status_idle"]


def test_command_line_serves_until_interrupted() -> None:
    """`python -m bridge.testing --port 0` prints its URL and key, serves the SDK, and exits on SIGINT."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "bridge.testing", "--port", "0", "--api-key", "sk-cli"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as process:
        assert process.stdout is not None
        line = process.stdout.readline()
        url = line.split(" on ")[1].split()[0]
        with anthropic.Anthropic(base_url=url, api_key="sk-cli") as client:
            assert client.beta.environments.create(name="e").type == "environment"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0


async def test_signed_webhooks_verify_with_the_sdk(make_setup: Any) -> None:
    """State changes POST thin, Standard-Webhooks-signed payloads that `client.beta.webhooks.unwrap` accepts."""
    received: list[tuple[str, dict[str, str]]] = []
    got = threading.Event()

    async def hook(request: Request) -> Response:
        received.append(((await request.body()).decode(), dict(request.headers)))
        if json.loads(received[-1][0])["data"]["type"] == "session.status_idled":
            got.set()
        return Response(status_code=204)

    receiver = AppServer(Starlette(routes=[Route("/hook", hook, methods=["POST"])]))
    await anyio.to_thread.run_sync(receiver.start)
    try:
        async with Emulator(script=ScriptedAgent.reply("hi"), webhook_url=receiver.url + "/hook") as api:
            setup: Setup = await make_setup(api)
            sid = await setup.session()
            await setup.say(sid)
            await api.control.wait_idle(sid)
            await anyio.to_thread.run_sync(got.wait, 10)
            kinds = []
            for body, headers in received:
                event = setup.client.beta.webhooks.unwrap(body, headers=headers, key=api.webhook_key)
                validate_model(BetaWebhookEvent, json.loads(body))
                kinds.append((event.data.type, event.data.id))
            assert ("session.created", sid) in kinds
            assert kinds[-2:] == [("session.status_run_started", sid), ("session.status_idled", sid)]
            assert all(d.status == 204 for d in api.webhook_deliveries)
            tampered = received[-1][0].replace(sid, "sesn_other")
            with pytest.raises(Exception, match="signature"):
                setup.client.beta.webhooks.unwrap(tampered, headers=received[-1][1], key=api.webhook_key)
    finally:
        await anyio.to_thread.run_sync(receiver.stop)


async def test_many_concurrent_waits_and_cancelled_waits(setup: Setup) -> None:
    """Hundreds of control waits can be pending at once (no thread each); a cancelled wait does not disturb others."""
    sids = [await setup.session() for _ in range(100)]
    async with anyio.create_task_group() as tg:
        for sid in sids:
            tg.start_soon(setup.api.control.wait_idle, sid, "requires_action")
        for sid in sids:
            await setup.say(sid)
    with anyio.move_on_after(0.05) as scope:
        await setup.api.control.wait_event(sids[0], "agent.message")
    assert scope.cancelled_caught
    (call_id,) = (await setup.api.control.wait_idle(sids[0], "requires_action"))["stop_reason"]["event_ids"]
    await setup.answer(sids[0], call_id, "3")
    assert (await setup.api.control.wait_event(sids[0], "agent.message"))["content"][0]["text"] == "done"
