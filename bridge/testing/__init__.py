"""An offline Managed Agents API for tests: the real `anthropic` SDK talks to it over HTTP on 127.0.0.1.

Like httpx's `MockTransport` or pydantic-ai's `TestModel`, but at the wire: nothing in the SDK is mocked, so its
retries, stream reconnects and the SDK's own session tool runner behave as they do against the real API.

```python
from bridge.testing import AgentTurn, Emulator

async def script(agent: AgentTurn) -> None:          # what the "model" does on each user message
    result = await agent.call_tool("add", {"a": 1, "b": 2})
    await agent.say(f"the sum is {result.text}")

async with Emulator(script=script) as api:
    client = api.client()                             # AsyncAnthropic(base_url=api.base_url, api_key=api.api_key)
    ...                                               # create agent, environment, session; run your tools
    await api.control.wait_idle(session.id)           # waits on state, never sleeps
    api.control.invariants().assert_ok()              # no unanswered, duplicate, late or unknown results
```

Public names:
    Emulator: the server (`async with` / `with`), `api.client()`, `api.control`, `api.base_url`, `api.api_key`.
    Control: `api.control`: inspection (`events`, `status`, `requests`, `posted_batches`, `stream_connects`,
        `open_streams`, `invariants`, `script_errors`), waits (`wait_idle`, `wait_event`, `wait_streams`,
        `wait_requests`, `wait_status`), request faults (`fail_next`, `drop_responses`, `latency`), stream faults
        (`drop_streams`, `drop_next_stream`, `stall_streams`, `resume_streams`, `duplicate_next_event`,
        `skip_next_event`, `stream_error`, `malformed_frame`, `clear_faults`), levers (`interrupt`, `terminate`).
    RequestRecord: one request as the emulator saw it (status, `x-stainless-retry-count`, dropped or not).
    AgentTurn / ToolCallResult / ScriptedAgent / Script: scripted agents (`call_tool`, `call_tools`, `say`,
        `think`, `error`, `reschedule`, `terminate`, `subagent`, `stop_reason`).
    Behavior: the emulator's configurable answers to what the real API leaves unknown.
    InvariantReport / CallReport: what happened to every tool call.
    validate_event / validate_model: strict validation against the SDK's own models (no undeclared fields).
    WebhookDelivery / sign_webhook: webhook attempts as sent (`api.webhook_deliveries`, retried until 2xx, replayed
        by `api.redeliver_webhooks()`), and the Standard Webhooks signature, for testing a receiver.
    demo_script: the scripted agent `bridge demo` runs (tool names are parameters).
    serve_forever: run an emulator from the command line (`python -m bridge.testing`).
"""

try:
    import starlette  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("bridge.testing needs the emulator extra: pip install 'tool-bridge[emulator]'") from exc

from ._config import Behavior
from ._control import Control
from ._demo import demo_script
from ._http import RequestRecord
from ._invariants import CallReport, InvariantReport
from ._script import AgentTurn, Script, ScriptedAgent, ToolCallResult
from ._server import Emulator, serve_forever
from ._validate import validate_event, validate_model
from ._webhooks import WebhookDelivery
from ._webhooks import sign as sign_webhook

__all__ = [
    "AgentTurn",
    "Behavior",
    "CallReport",
    "Control",
    "Emulator",
    "InvariantReport",
    "RequestRecord",
    "Script",
    "ScriptedAgent",
    "ToolCallResult",
    "WebhookDelivery",
    "demo_script",
    "serve_forever",
    "sign_webhook",
    "validate_event",
    "validate_model",
]
