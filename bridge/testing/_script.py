"""Scripted agents: a readable, deterministic stand-in for the model.

A script is `async def script(agent: AgentTurn) -> None`, run once per `user.message`. It decides what the agent
does: call custom tools (one, or several in parallel in one `requires_action` idle), inspect their results and branch
on errors, say something, delegate to a sub-agent thread. When it returns, the turn ends with `end_turn`.

```python
async def script(agent: AgentTurn) -> None:
    weather = await agent.call_tool("get_weather", {"city": "Paris"})
    if weather.is_error:
        weather = await agent.call_tool("get_weather", {"city": "Paris", "units": "c"})
    await agent.say(f"Paris: {weather.text}")
```
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

import anyio

from ._session import Call, Session

__all__ = ["AgentTurn", "Script", "ScriptedAgent", "ToolCallResult", "run_turn"]

Json = dict[str, Any]
Script = Callable[["AgentTurn"], Awaitable[None]]
StopReason = Literal["end_turn", "retries_exhausted", "budget_reached", "refusal"]


@dataclass(frozen=True)
class ToolCallResult:
    """What the client answered for one call, as the agent sees it.

    Attributes:
        tool_use_id: Id of the `agent.custom_tool_use` event.
        name: Tool name.
        input: The input the agent sent.
        content: Content blocks of the first result (empty if none).
        is_error: The result's `is_error`.
        interrupted: No result will come: the call was interrupted or its thread or session ended.
        event: The stored `user.custom_tool_result` event, or None.
    """

    tool_use_id: str
    name: str
    input: Json
    content: tuple[Json, ...]
    is_error: bool
    interrupted: bool
    event: Json | None

    @property
    def text(self) -> str:
        """The text blocks joined with newlines."""
        return "\n".join(str(b.get("text", "")) for b in self.content if b.get("type") == "text")

    @classmethod
    def of(cls, call: Call) -> ToolCallResult:
        """Build from a settled call."""
        event = call.result_event
        content = tuple(event.get("content") or ()) if event else ()
        is_error = bool(event.get("is_error")) if event else False
        return cls(call.id, call.name, call.input, content, is_error, event is None, event)


class AgentTurn:
    """The handle a script drives the agent with, for one user message (or one sub-agent thread).

    Attributes:
        session_id: The session.
        message: The `user.message` event that started the turn.
        thread_id: The sub-agent thread this handle acts in, None for the primary thread.
    """

    def __init__(self, session: Session, message: Json, emit_spans: bool, thread_id: str | None = None) -> None:
        self.session_id = session.id
        self.message = message
        self.thread_id = thread_id
        self.stop_reason: StopReason = "end_turn"
        self._session = session
        self._emit_spans = emit_spans
        self._needs_step = True

    @property
    def text(self) -> str:
        """The user message's text blocks joined with newlines."""
        return "\n".join(b.get("text", "") for b in self.message.get("content", []) if b.get("type") == "text")

    @property
    def agent(self) -> Json:
        """The session's agent snapshot (`session.agent`): model, system prompt, tools."""
        agent: Json = self._session.resource["agent"]
        return agent

    @property
    def tool_names(self) -> list[str]:
        """Names of the custom tools the session's agent declares."""
        return [t["name"] for t in self.agent.get("tools", []) if t.get("type") == "custom"]

    @property
    def metadata(self) -> dict[str, str]:
        """The session's metadata."""
        metadata: dict[str, str] = self._session.resource["metadata"]
        return metadata

    def step(self) -> None:
        """A model request: `span.model_request_start/end` once before the next action after a (re)start."""
        if not self._needs_step:
            return
        self._needs_step = False
        if not self._emit_spans:
            return
        start = self._session.emit("span.model_request_start")
        usage = {
            "input_tokens": 100,
            "output_tokens": 20,
            "cache_read_input_tokens": 0,
            "cache_creation_input_tokens": 0,
            "speed": "standard",
        }
        self._session.emit(
            "span.model_request_end", model_request_start_id=start["id"], is_error=False, model_usage=usage
        )

    async def call_tool(self, name: str, tool_input: Json | None = None) -> ToolCallResult:
        """Call one custom tool and wait for its result."""
        (result,) = await self.call_tools([(name, tool_input or {})])
        return result

    async def call_tools(self, calls: Iterable[tuple[str, Json]]) -> list[ToolCallResult]:
        """Call several tools at once: one `agent.custom_tool_use` each, then one idle naming them all."""
        await anyio.lowlevel.checkpoint()  # every action checks for an interrupt before it emits anything
        self.step()
        made = [self._session.new_call(name, dict(tool_input), self.thread_id) for name, tool_input in calls]
        self._session.block(made, self.thread_id)
        for call in made:
            await call.done.wait()
        self._needs_step = True
        return [ToolCallResult.of(call) for call in made]

    async def say(self, text: str) -> None:
        """Emit an `agent.message` with one text block."""
        await anyio.lowlevel.checkpoint()
        self.step()
        if self.thread_id is None:
            self._session.emit("agent.message", content=[{"type": "text", "text": text}])
        else:
            self._session.emit(
                "agent.message", thread_id=self.thread_id, primary=False, content=[{"type": "text", "text": text}]
            )

    async def think(self) -> None:
        """Emit an `agent.thinking` event."""
        await anyio.lowlevel.checkpoint()
        self.step()
        self._session.emit("agent.thinking")

    async def error(self, error_type: str = "model_overloaded_error", message: str = "Overloaded") -> None:
        """Emit a `session.error` the server retries (`retry_status: retrying`), as an overloaded model would."""
        await anyio.lowlevel.checkpoint()
        error = {"type": error_type, "message": message, "retry_status": {"type": "retrying"}}
        self._session.emit("session.error", error=error)

    async def reschedule(self) -> None:
        """A transient server-side failure: `session.status_rescheduled` (status `rescheduling`), then running again."""
        await anyio.lowlevel.checkpoint()
        self._session.reschedule()

    async def terminate(self) -> None:
        """End the session (`session.status_terminated`); the script stops here."""
        await anyio.lowlevel.checkpoint()
        self._session.terminate()
        await anyio.lowlevel.checkpoint()  # the turn's scope is cancelled now: this raises

    @asynccontextmanager
    async def subagent(self, agent_name: str) -> AsyncIterator[AgentTurn]:
        """Run part of the script in a sub-agent thread; its tool calls carry `session_thread_id`."""
        await anyio.lowlevel.checkpoint()
        thread_id = self._session.create_thread(agent_name)
        sub = AgentTurn(self._session, self.message, self._emit_spans, thread_id)
        sub._needs_step = False
        try:
            yield sub
        finally:
            if not self._session.deleted and self._session.status != "terminated":
                self._session.end_thread(thread_id)


class ScriptedAgent:
    """Ready-made scripts for the common cases; each instance is itself a script.

    ```python
    Emulator(script=ScriptedAgent.calls([("add", {"a": 1, "b": 2})], reply="done"))
    ```
    """

    def __init__(self, script: Script) -> None:
        self._script = script

    async def __call__(self, agent: AgentTurn) -> None:
        await self._script(agent)

    @classmethod
    def reply(cls, text: str) -> ScriptedAgent:
        """Answer every message with `text` and no tool call."""

        async def script(agent: AgentTurn) -> None:
            await agent.say(text)

        return cls(script)

    @classmethod
    def calls(
        cls, calls: Sequence[tuple[str, Json]], *, parallel: bool = True, reply: str | None = None
    ) -> ScriptedAgent:
        """Make `calls` (all in one idle if `parallel`, else one after another), then say `reply` or the results."""

        async def script(agent: AgentTurn) -> None:
            if parallel:
                results = await agent.call_tools(calls)
            else:
                results = [await agent.call_tool(name, tool_input) for name, tool_input in calls]
            await agent.say(reply if reply is not None else "\n".join(r.text for r in results))

        return cls(script)


async def run_turn(session: Session, message: Json, script: Script | None, emit_spans: bool) -> None:
    """Run `script` for one user message, then end the turn with the script's stop reason.

    A script that raises ends the turn with `session.error` + `retries_exhausted`, and the exception is kept on the
    session (the emulator re-raises it on exit). An interrupt or termination cancels the script: the state machine has
    already emitted what follows, so nothing more is emitted here.
    """
    turn = AgentTurn(session, message, emit_spans)
    failed = False
    scope = session.turn_scope or anyio.CancelScope()
    with scope:
        try:
            if script is not None:
                await script(turn)
        except Exception as exc:
            failed = True
            session.script_errors.append(exc)
            error = {"type": "unknown_error", "message": repr(exc), "retry_status": {"type": "exhausted"}}
            session.emit("session.error", error=error)
    session.turn_scope = None
    session.turn_active = False
    if not scope.cancel_called and session.status != "terminated" and not session.deleted:
        if not failed:
            turn.step()
        session.set_idle({"type": "retries_exhausted" if failed else turn.stop_reason})
    session.next_turn()
