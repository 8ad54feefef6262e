"""End-to-end helpers: the emulator over real HTTP, the real SDK, and an agent whose custom tools are ours."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
from anthropic import AsyncAnthropic

from bridge import Bridge, CallEvent, CallEventKind, Toolset
from bridge.testing import Behavior, Emulator, Script


def BOTH_BACKENDS(test: Any) -> Any:
    """Run a core end-to-end test on asyncio and trio (the rest run on asyncio only, to keep the suite fast).

    httpx2's response stream iterates httpcore's pool stream without closing it when a response is abandoned
    mid-body (`AsyncResponseStream.__aiter__`), which every endless SSE stream is; trio reports that generator at
    garbage collection with a ResourceWarning. It is not ours to close, so that one warning is ignored here.
    """
    test = pytest.mark.filterwarnings(
        "ignore:Async generator 'httpcore2._async.connection_pool.PoolByteStream.__aiter__' was garbage collected"
        ":ResourceWarning"
    )(test)
    return pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])(test)


@dataclass
class World:
    """A running emulator, a client, and an agent + environment carrying a toolset's definitions."""

    api: Emulator
    client: AsyncAnthropic
    agent_id: str
    environment_id: str

    async def session(self, **kwargs: Any) -> str:
        session = await self.client.beta.sessions.create(
            agent=self.agent_id, environment_id=self.environment_id, **kwargs
        )
        return session.id

    async def say(self, session_id: str, text: str = "go") -> None:
        content: list[Any] = [{"type": "text", "text": text}]
        await self.client.beta.sessions.events.send(session_id, events=[{"type": "user.message", "content": content}])


@asynccontextmanager
async def world(
    toolset: Toolset | list[Any],
    script: Script,
    *,
    behavior: Behavior | None = None,
    extra_tools: list[dict[str, Any]] | None = None,
    **client_options: Any,
) -> AsyncIterator[World]:
    """Start an emulator running `script`, and create an agent whose custom tools are `toolset`'s definitions."""
    tools = toolset if isinstance(toolset, Toolset) else Toolset(toolset)
    async with Emulator(script=script, behavior=behavior) as api:
        client = api.client(**client_options)
        definitions: Any = tools.definitions() + (extra_tools or [])
        agent = await client.beta.agents.create(name="bridge-test", model="claude-opus-5", tools=definitions)
        env = await client.beta.environments.create(name="env")
        yield World(api, client, agent.id, env.id)


class Calls:
    """Collects a bridge's call events (pass `calls.listen` as `on_call`) and waits for counts of a kind."""

    def __init__(self) -> None:
        self.events: list[CallEvent] = []
        self._changed = anyio.Event()

    def listen(self, event: CallEvent) -> None:
        self.events.append(event)
        self._changed.set()
        self._changed = anyio.Event()

    def of(self, kind: CallEventKind) -> list[CallEvent]:
        return [e for e in self.events if e.kind is kind]

    async def wait(self, kind: CallEventKind, count: int = 1) -> list[CallEvent]:
        """Wait until `count` events of `kind` were seen (bounded by the caller's `fail_after`)."""
        while len(self.of(kind)) < count:
            await self._changed.wait()
        return self.of(kind)


async def serve_turn(bridge: Bridge, session_id: str) -> None:
    """Serve a session (already sent a message) until the bridge itself has seen the turn end."""
    async with bridge.watch(session_id) as events:
        async for event in events:
            if event.type == "session.status_idle" and event.stop_reason.type != "requires_action":
                return
