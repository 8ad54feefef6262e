"""`bridge emulator --script FILE` / `--call TOOL JSON`: a scripted agent from the command line.

With a script the emulator plays both the agent and its user, so the CLI alone can try a tools module:

```
bridge emulator --call add '{"a": 1, "b": 2}'                       # terminal 1: the API, a scripted agent
bridge sync  myapp.tools:toolset --emulator --create try --model m   # terminal 2: an agent with your tools
bridge run   myapp.tools:toolset --emulator --agent agent_...        # serve them: the calls are answered
```

Each agent that appears with custom tools gets one session; the script's messages are sent to it one turn at a time,
and the emulator prints the transcript (calls, results, replies) as the turns end. A script file is JSON, or YAML
with the `yaml` extra:

```yaml
messages: ["Add one and two."]         # the user's messages, one per turn (default: one "go")
turns:                                 # what the agent does on each message, in order; the last one repeats
  - calls:                             # made at once: the agent waits for every result
      - {tool: add, input: {a: 1, b: 2}}
    reply: "The sum is {0}."           # optional: {0}, {1}... are the results' text; default: all of them
```
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from .._errors import ConfigError

__all__ = ["TrialScript", "TrialTurn", "drive_trials", "load_script", "script_of_calls"]

POLL = 0.2  # how often new agents are looked for: a human-facing command, not a synchronisation


@dataclass(frozen=True)
class TrialTurn:
    """One turn of the scripted agent: tool calls made at once, then a reply."""

    calls: tuple[tuple[str, dict[str, Any]], ...] = ()
    reply: str | None = None


@dataclass(frozen=True)
class TrialScript:
    """What the user says and what the agent does."""

    turns: tuple[TrialTurn, ...]
    messages: tuple[str, ...] = ("go",)

    def agent(self) -> Any:
        """The emulator script: turn N of a session plays `turns[N]` (the last one repeats)."""
        played: dict[str, int] = {}

        async def script(agent: Any) -> None:
            index = played.get(agent.session_id, 0)
            played[agent.session_id] = index + 1
            turn = self.turns[min(index, len(self.turns) - 1)]
            results = await agent.call_tools(list(turn.calls)) if turn.calls else []
            texts = [r.text for r in results]
            if turn.reply is None:
                await agent.say("\n".join(texts) or "(no tool calls)")
            else:
                try:
                    await agent.say(turn.reply.format(*texts))
                except (IndexError, KeyError, ValueError):
                    await agent.say(turn.reply)

        return script


def script_of_calls(calls: Sequence[Sequence[str]]) -> TrialScript:
    """`--call TOOL JSON` (repeatable): one turn making these calls at once."""
    parsed = []
    for index, (name, text) in enumerate(calls, 1):
        try:
            tool_input = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--call {name}: the input is not JSON ({exc.msg}): {text!r}") from None
        if not isinstance(tool_input, dict):
            raise ConfigError(f"--call {name}: the input must be a JSON object, got {text!r} (call {index})")
        parsed.append((name, tool_input))
    return TrialScript(turns=(TrialTurn(calls=tuple(parsed)),))


def load_script(path: Path) -> TrialScript:
    """Read a script file (JSON, or YAML with the `yaml` extra); every problem is named with where it is."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--script {path}: cannot read it: {exc.strerror or exc}") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        from ..agents import load_agent_yaml

        data: Any = load_agent_yaml(text, source=str(path))
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{exc.lineno}: not JSON: {exc.msg}") from None
    return parse_script(data, str(path))


def parse_script(data: Any, source: str) -> TrialScript:
    """Validate a parsed script; one `ConfigError` lists every problem."""
    problems: list[str] = []
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: a script is a mapping with `turns` (and optionally `messages`)")
    for key in data:
        if key not in ("turns", "messages"):
            problems.append(f"{source}: {key}: unknown key (expected turns, messages)")
    messages = data.get("messages", ["go"])
    if not isinstance(messages, list) or not messages or not all(isinstance(m, str) for m in messages):
        problems.append(f"{source}: messages: must be a non-empty list of strings")
        messages = ["go"]
    raw_turns = data.get("turns")
    turns: list[TrialTurn] = []
    if not isinstance(raw_turns, list) or not raw_turns:
        problems.append(f"{source}: turns: required, a non-empty list of {{calls: [...], reply: ...}}")
        raw_turns = []
    for i, turn in enumerate(raw_turns):
        where = f"{source}: turns[{i}]"
        if not isinstance(turn, Mapping):
            problems.append(f"{where}: must be a mapping with `calls` and/or `reply`")
            continue
        unknown = sorted(set(turn) - {"calls", "reply"})
        problems.extend(f"{where}.{key}: unknown key (expected calls, reply)" for key in unknown)
        calls = []
        for j, call in enumerate(turn.get("calls") or []):
            tool, tool_input = (call.get("tool"), call.get("input", {})) if isinstance(call, Mapping) else (None, None)
            if not isinstance(tool, str) or not isinstance(tool_input, Mapping):
                problems.append(f"{where}.calls[{j}]: expected {{tool: NAME, input: {{...}}}}")
                continue
            calls.append((tool, dict(tool_input)))
        reply = turn.get("reply")
        if reply is not None and not isinstance(reply, str):
            problems.append(f"{where}.reply: must be a string")
            reply = None
        turns.append(TrialTurn(calls=tuple(calls), reply=reply))
    if problems:
        raise ConfigError(problems)
    return TrialScript(turns=tuple(turns), messages=tuple(messages))


def drive_trials(
    base_url: str, api_key: str, control: Any, script: TrialScript, stop: threading.Event, out: Callable[[str], None]
) -> None:
    """Until `stop` is set: open a session for each new agent with custom tools, play the messages, print turns."""
    anyio.run(_drive, base_url, api_key, control, script, stop, out)


async def _drive(
    base_url: str, api_key: str, control: Any, script: TrialScript, stop: threading.Event, out: Callable[[str], None]
) -> None:
    from anthropic import AsyncAnthropic

    seen: set[str] = set()
    async with AsyncAnthropic(base_url=base_url, api_key=api_key) as client, anyio.create_task_group() as tg:
        environment = None
        while not stop.is_set():
            async for agent in client.beta.agents.list():
                if agent.id in seen or not any(getattr(t, "type", None) == "custom" for t in agent.tools or []):
                    continue
                seen.add(agent.id)
                if environment is None:
                    environment = await client.beta.environments.create(name="bridge emulator --script")
                session = await client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
                out(f"agent {agent.id} ({agent.name}): opened session {session.id}; serve it with")
                out(f"  bridge run TARGET --emulator {base_url} --agent {agent.id}")
                tg.start_soon(_converse, client, control, session.id, script, out)
            await anyio.sleep(POLL)
        tg.cancel_scope.cancel()


async def _converse(
    client: Any, control: Any, session_id: str, script: TrialScript, out: Callable[[str], None]
) -> None:
    shown = 0
    for message in script.messages:
        out(f"[{session_id}] user: {message}")
        await client.beta.sessions.events.send(
            session_id, events=[{"type": "user.message", "content": [{"type": "text", "text": message}]}]
        )
        await control.wait_idle(session_id, "end_turn", timeout=24 * 3600.0)  # until `bridge run` answers
        events = control.events(session_id)
        for event in events[shown:]:
            line = _describe(event)
            if line:
                out(f"[{session_id}] {line}")
        shown = len(events)


def _describe(event: Mapping[str, Any]) -> str | None:
    kind = event.get("type")
    if kind == "agent.custom_tool_use":
        return f"agent calls {event.get('name')} {json.dumps(event.get('input'), ensure_ascii=False)}"
    if kind == "user.custom_tool_result":
        text = "".join(b.get("text", "") for b in event.get("content") or [] if isinstance(b, Mapping))
        return f"{'error' if event.get('is_error') else 'result'}: {text}"
    if kind == "agent.message":
        return "agent: " + "".join(b.get("text", "") for b in event.get("content") or [] if isinstance(b, Mapping))
    return None
