"""Shared pieces of the emulator's tests: an agent, environment and session created through the real SDK.

A module with its own name, not `conftest`: test modules import from it, and several test folders have a conftest.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from anthropic import AsyncAnthropic

from bridge.testing import Emulator

CUSTOM_TOOLS: list[dict[str, Any]] = [
    {
        "type": "custom",
        "name": name,
        "description": f"{name} two integers",
        "input_schema": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    }
    for name in ("add", "mul")
]


@pytest.fixture
def anyio_backend() -> str:
    """asyncio by default; tests that pin down backend independence parametrize `anyio_backend` with trio too."""
    return "asyncio"


def BOTH_BACKENDS(test: Any) -> Any:
    """Run `test` on asyncio and trio.

    The SDK does not close its stream's async generators when a stream is left early, and trio warns about that at
    garbage collection; that warning is the SDK's, so it is ignored here.
    """
    test = pytest.mark.filterwarnings("ignore:Async generator .* was garbage collected:ResourceWarning")(test)
    return pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])(test)


@dataclass
class Setup:
    """A running emulator with a client, an agent with `add`/`mul` tools and an environment."""

    api: Emulator
    client: AsyncAnthropic
    agent_id: str
    environment_id: str

    async def session(self, **kwargs: Any) -> str:
        """A new session of the agent."""
        session = await self.client.beta.sessions.create(
            agent=self.agent_id, environment_id=self.environment_id, **kwargs
        )
        return session.id

    async def say(self, session_id: str, text: str = "go") -> None:
        """Send a user message."""
        content: list[Any] = [{"type": "text", "text": text}]
        await self.client.beta.sessions.events.send(session_id, events=[{"type": "user.message", "content": content}])

    async def answer(self, session_id: str, tool_use_id: str, text: str, *, is_error: bool = False) -> None:
        """Post one custom tool result."""
        result: Any = {
            "type": "user.custom_tool_result",
            "custom_tool_use_id": tool_use_id,
            "content": [{"type": "text", "text": text}],
            "is_error": is_error,
        }
        await self.client.beta.sessions.events.send(session_id, events=[result])


async def _make_setup(api: Emulator, **client_options: Any) -> Setup:
    """Create the agent and environment the tests share."""
    client = api.client(**client_options)
    agent = await client.beta.agents.create(name="calc", model="claude-opus-5", tools=CUSTOM_TOOLS)  # type: ignore[arg-type]
    env = await client.beta.environments.create(name="env")
    return Setup(api, client, agent.id, env.id)


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    """An emulator whose agent calls `add(1, 2)` and says the result."""
    from bridge.testing import ScriptedAgent

    async with Emulator(script=ScriptedAgent.calls([("add", {"a": 1, "b": 2})], reply="done")) as api:
        yield await _make_setup(api)


@pytest.fixture
def make_setup() -> Any:
    """The `Setup` factory, for tests that start their own emulator."""
    return _make_setup
