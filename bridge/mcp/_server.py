"""`MCPServer`: one `Toolset` served over MCP, under the same scheduler the bridge uses for agents.

Built on the official package's *low-level* `Server`, not FastMCP (`MCPServer` in 2.x), because everything FastMCP
adds on top is something we already do and must keep doing our way: it derives schemas from signatures (we send the
schemas `Toolset.definitions()` compiled for Claude, unchanged), validates input with its own messages and raw
values (we send our correctable, redacted ones), sends crash text unless told not to (we mask it with a ref id), and
runs sync functions on its own threads without a deadline (ours keep honest deadlines and concurrency slots). The
low-level server gives exactly the two hooks needed, `tools/list` and `tools/call`, and no second tool registry.

A call goes: MCP request -> `Scheduler.run` (per-tool, per-key, per-session and global slots; the deadline inside the
call's task) -> `Tool.call` (validation, the tool, result shaping with its output budget) -> MCP content. The
`ToolContext` carries the MCP request id as `tool_use_id`, and the MCP session (the `Mcp-Session-Id` over HTTP, one
id per process over stdio) as `session_id`; its `progress(...)` reports become `notifications/progress`. A client's
`notifications/cancelled` cancels the request's task in the SDK, which cancels the call here: async tools are
interrupted, sync tools see `ctx.cancelled`, and an abandoned thread keeps its slots until it ends.

Approval policies (`@tool(approval=...)`, `Toolset(..., approval=...)`, then the server's own `approval=`) are
evaluated before a call takes a slot, exactly as for agents: the validated input, sync or async policy functions, fail
closed. "deny" answers with the text agents get. "ask" asks the person at the client through MCP elicitation (a
form-mode prompt with no fields): accept runs the call once; decline, dismissal, an error or no answer within
`approval_timeout` denies it. On the 2025 protocols the prompt is an `elicitation/create` request sent while the
call waits; on 2026-07-28 it is an `input_required` result, and the client retries the call with the answer and the
`requestState` we gave it: an HMAC (key per server process) over the tool, the exact arguments, the MCP session, a
one-time nonce and the deadline, so an answer cannot be moved to other arguments, replayed, or used late. A client
that cannot be asked gets an `isError` result saying how to get the call approved: nothing runs unapproved. There is
no journal here; each decision is logged (`bridge.approvals`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import secrets
import threading
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import anyio
import anyio.from_thread
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .._errors import ConfigError
from ..runtime import ApprovalSettings, Limits, Outcome, OutcomeKind, Scheduler, Ticket, Timeouts, denial_message
from ..tools import (
    ApprovalPolicy,
    ApprovalRequest,
    CallResult,
    Tool,
    ToolContext,
    Toolset,
    Verdict,
    check_policy,
    evaluate_policy,
    is_allow,
)
from ._content import to_mcp_result
from ._sdk import APPROVAL_PROMPT, Elicit, Report, Request, Retry, build_server, input_required

__all__ = ["MCPServer"]

log = logging.getLogger("bridge.mcp")
approval_log = logging.getLogger("bridge.approvals")

_UNSET: Any = object()
_PROGRESS_BUFFER = 64  # reports waiting to be sent; beyond that, new ones are dropped (progress is advisory)
_PROMPT_INPUT = 2000  # characters of a call's input shown in the approval prompt


class MCPServer:
    """Serve a toolset to MCP clients (Claude Code, Claude Desktop, any MCP host).

    ```python
    async with MCPServer(toolset) as server:
        await server.serve_stdio()                          # or: await server.serve_http("127.0.0.1", 8765)
    ```

    Args:
        toolset: The tools, exactly as served to agents (anything `Toolset.coerce` accepts).
        name: The server name MCP clients show.
        limits: Concurrency limits; `per_session` applies per MCP session.
        timeout: Default deadline of one call when neither the tool nor its toolset sets one (precedence tool >
            toolset > this, as for agents). `None` means no deadline.
        approval: The approval policy of tools whose tool and toolset set none (what `Bridge(approval=...)` is for
            agents): "allow", "deny", "ask", an `Approval`, or a function of an `ApprovalRequest`.
        approval_timeout: Seconds to wait for the person at the client to answer an approval prompt; no answer
            denies the call (always: a call nobody approved never runs over MCP).

    Raises:
        DefinitionError: `approval` is not a policy.
        ConfigError: `approval_timeout` is not a positive number.
    """

    def __init__(
        self,
        toolset: Any,
        *,
        name: str = "tool-bridge",
        limits: Limits | None = None,
        timeout: float | None = _UNSET,
        approval: ApprovalPolicy | None = None,
        approval_timeout: float = ApprovalSettings.timeout,
    ) -> None:
        self.toolset = Toolset.coerce(toolset)
        self.name = name
        self.limits = limits or Limits()
        self.timeout: float | None = Timeouts().tool if timeout is _UNSET else timeout
        self.approval = check_policy(approval)
        if isinstance(approval_timeout, bool) or not isinstance(approval_timeout, int | float):
            raise ConfigError(f"approval_timeout must be a positive number of seconds, got {approval_timeout!r}")
        if not 0 < approval_timeout < math.inf:
            raise ConfigError(f"approval_timeout must be a positive number of seconds, got {approval_timeout!r}")
        self.approval_timeout = float(approval_timeout)
        self._state_key = secrets.token_bytes(32)  # signs the `requestState` of 2026-07-28 approval prompts
        self._used: dict[str, float] = {}  # nonces of approval answers already acted on -> their deadline
        self._process_session = "mcp-" + secrets.token_hex(6)
        self._scheduler: Scheduler | None = None
        self._stack: Any = None

    def __repr__(self) -> str:
        return f"<MCPServer {self.name!r} {self.toolset!r}>"

    async def __aenter__(self) -> MCPServer:
        """Open the toolset's resources and the scheduler (which watches sync tools' threads)."""
        from contextlib import AsyncExitStack

        async with AsyncExitStack() as stack:
            await stack.enter_async_context(self.toolset)
            self._scheduler = await stack.enter_async_context(Scheduler(self.limits))
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        stack, self._stack, self._scheduler = self._stack, None, None
        if stack is not None:
            await stack.__aexit__(*exc_info)

    @property
    def running(self) -> int:
        """Calls running now (sync calls whose thread was abandoned included until it ends)."""
        return self._scheduler.running if self._scheduler is not None else 0

    @property
    def queued(self) -> int:
        """Calls waiting for a concurrency slot now."""
        return self._scheduler.queued if self._scheduler is not None else 0

    def sdk_server(self) -> Any:
        """A low-level `mcp` `Server` for this toolset, for transports of your own (needs `async with self`)."""
        from importlib.metadata import PackageNotFoundError, version

        try:
            ours = version("tool-bridge")
        except PackageNotFoundError:
            ours = "0"
        return build_server(self.name, ours, self.tools, self.call)

    async def serve_stdio(self) -> None:
        """Serve one client over stdin/stdout until it closes stdin (what Claude Desktop and Claude Code launch)."""
        from mcp.server.stdio import stdio_server

        server = self.sdk_server()
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    async def serve_http(
        self,
        host: str = "127.0.0.1",
        port: int = 8765,
        *,
        token: str | None = None,
        allowed_origins: tuple[str, ...] = (),
        task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve streamable HTTP at `http://HOST:PORT/mcp` until cancelled (asyncio only: it runs on uvicorn).

        Args:
            host: Interface to bind; loopback by default, so only this machine can connect.
            port: Port to bind (0 picks a free one; `await tg.start(server.serve_http, ...)` returns it).
            token: When set, every request needs `Authorization: Bearer <token>` (else 401).
            allowed_origins: Origins accepted besides loopback ones (`http://localhost:*` and the like); a request
                with any other `Origin` header gets 403, as the MCP spec requires against DNS rebinding.
        """
        from ._http import serve_http

        await serve_http(
            self.sdk_server(), host, port, token=token, allowed_origins=allowed_origins, task_status=task_status
        )

    # -- the two MCP methods -----------------------------------------------------------------------------------------

    def tools(self) -> list[dict[str, Any]]:
        """`tools/list`: each tool's name, description and Claude-ready input schema, plus MCP annotations."""
        listed = []
        for tool in self.toolset:
            definition = tool.definition()
            entry: dict[str, Any] = {
                "name": definition["name"],
                "description": definition["description"],
                "inputSchema": definition["input_schema"],
            }
            hints = _annotations(tool)
            if hints:
                entry["annotations"] = hints
            listed.append(entry)
        return listed

    async def call(self, name: str, arguments: Mapping[str, Any], request: Request) -> dict[str, Any]:
        """`tools/call`: run one call under the scheduler and shape its answer as an MCP `CallToolResult`."""
        if name not in self.toolset:
            available = ", ".join(self.toolset.names()) or "none"
            result = CallResult.error(f"unknown tool {name!r}; available tools: {available}")
            return to_mcp_result(result, tool=name, request_id=request.request_id)
        if self._scheduler is None:
            raise RuntimeError("use the server as `async with MCPServer(...)` before serving")
        tool = self.toolset.get(name)
        refusal = await self._gate(tool, arguments, request)
        if isinstance(refusal, dict):  # an approval prompt the client answers by retrying the call
            return refusal
        if refusal is not None:
            return to_mcp_result(refusal, tool=name, request_id=request.request_id)
        ticket = self._ticket(tool, arguments, request)
        send, receive = anyio.create_memory_object_stream[tuple[str, float | None]](_PROGRESS_BUFFER)
        context = ToolContext(
            session_id=ticket.session_id,
            tool_use_id=request.request_id,
            tool_name=name,
            cancel_event=ticket.cancel_event,
            on_progress=_progress_sink(send) if request.report is not None else None,
        )
        scheduler = self._scheduler
        async with anyio.create_task_group() as tg:
            if request.report is not None:
                tg.start_soon(_forward_progress, receive, request.report)
            else:
                receive.close()
            with send:
                outcome = await scheduler.run(ticket, lambda run_sync: tool.call(arguments, context, run_sync=run_sync))
        return to_mcp_result(_answer(tool, outcome), tool=name, request_id=request.request_id)

    # -- approvals -------------------------------------------------------------------------------------------------

    async def _gate(
        self, tool: Tool, arguments: Mapping[str, Any], request: Request
    ) -> CallResult | dict[str, Any] | None:
        """None when the call may run; else its answer (a denial, why it cannot be approved here, or an
        `input_required` prompt as a wire dict)."""
        policy = self.toolset.approval_for(tool.name)
        if policy is None:
            policy = self.approval
        if is_allow(policy):  # the fast path: nothing evaluated
            return None
        validated = tool.validate_input(arguments)
        if validated is None:  # the call answers with the validation error; the tool does not run
            return None
        approval = ApprovalRequest(
            tool, MappingProxyType(validated), request.session_id, request.request_id, None, MappingProxyType({})
        )
        answer = await evaluate_policy(policy, approval)
        if answer.verdict is Verdict.ALLOW:
            self._log_decision(approval, "allowed", "policy")
            return None
        if answer.verdict is Verdict.DENY:
            return self._denied(approval, "policy", answer.reason)
        if request.elicit is None and request.retry is not None:
            return self._ask_by_retry(approval, arguments, request.retry)
        if request.elicit is None:
            self._log_decision(approval, "refused", "client", "the client cannot be asked (no elicitation support)")
            return CallResult.error(
                f"The tool {tool.name!r} needs approval before it runs, and this MCP client cannot ask you for it (it "
                "does not support elicitation, or this connection cannot carry it). The call did not run. To use the "
                "tool: connect with an MCP client that supports elicitation, serve it to an agent with `bridge run` "
                "(the call then waits for `bridge approvals approve`), or change its approval policy."
            )
        return await self._ask(approval, arguments, request.elicit)

    def _prompt(self, approval: ApprovalRequest, arguments: Mapping[str, Any]) -> str:
        shown = json.dumps(dict(arguments), ensure_ascii=False, sort_keys=True, default=str)
        if len(shown) > _PROMPT_INPUT:
            shown = shown[:_PROMPT_INPUT] + " ... (cut)"
        return (
            f"{self.name}: allow the tool {approval.tool_name!r} to run once with this input?\n\n{shown}\n\n"
            "Accept runs it; decline refuses it."
        )

    def _ask_by_retry(
        self, approval: ApprovalRequest, arguments: Mapping[str, Any], retry: Retry
    ) -> CallResult | dict[str, Any] | None:
        """2026-07-28: prompt with an `input_required` result; on the retried call, act on the (verified) answer."""
        if retry.state is None:
            deadline = int((time.time() + self.approval_timeout) * 1000)
            nonce = secrets.token_hex(12)
            state = f"{deadline}.{nonce}.{self._sign(deadline, nonce, approval, arguments)}"
            return input_required(self._prompt(approval, arguments), state)
        deadline_text, _, rest = retry.state.partition(".")
        nonce, _, signature = rest.partition(".")
        well_formed = deadline_text.isdigit() and len(deadline_text) <= 16  # ms since the epoch; no giant ints
        expected = self._sign(int(deadline_text), nonce, approval, arguments) if well_formed else ""
        if not expected or not hmac.compare_digest(signature, expected):
            return self._denied(approval, "the bridge", "the approval answer does not belong to this call")
        now = time.time()
        if now * 1000 > int(deadline_text):
            return self._denied(approval, "timeout", f"no decision within {self.approval_timeout:g} s")
        self._used = {n: until for n, until in self._used.items() if until >= now}
        if nonce in self._used:
            return self._denied(approval, "the bridge", "that approval was already used (approve each call)")
        self._used[nonce] = int(deadline_text) / 1000
        return self._act_on_answer(approval, retry.answers.get(APPROVAL_PROMPT))

    def _sign(self, deadline: int, nonce: str, approval: ApprovalRequest, arguments: Mapping[str, Any]) -> str:
        canonical = json.dumps(dict(arguments), ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)
        bound = json.dumps([deadline, nonce, approval.tool_name, approval.session_id, canonical])
        return hmac.new(self._state_key, bound.encode("utf-8"), hashlib.sha256).hexdigest()

    def _act_on_answer(self, approval: ApprovalRequest, action: str | None) -> CallResult | None:
        if action == "accept":
            self._log_decision(approval, "approved", "the user")
            return None
        if action == "decline":
            return self._denied(approval, "the user", "declined in the MCP client")
        if action == "cancel":
            return self._denied(approval, "the user", "the approval prompt was dismissed without a decision")
        return self._denied(approval, "the bridge", "the MCP client sent no answer to the approval prompt")

    async def _ask(self, approval: ApprovalRequest, arguments: Mapping[str, Any], elicit: Elicit) -> CallResult | None:
        """Ask the person at the client; None when they accept."""
        message = self._prompt(approval, arguments)
        action: str | None = None
        with anyio.move_on_after(self.approval_timeout):
            try:
                action = await elicit(message)
            except Exception as exc:
                ref = secrets.token_hex(4)
                approval_log.warning(
                    "MCP call %s (request %s): asking the client for approval failed (ref %s): %s",
                    approval.tool_name,
                    approval.call_id,
                    ref,
                    exc,
                )
                reason = f"the MCP client did not answer the approval prompt (ref {ref})"
                return self._denied(approval, "the bridge", reason)
        if action is None:
            return self._denied(approval, "timeout", f"no decision within {self.approval_timeout:g} s")
        return self._act_on_answer(approval, action)

    def _denied(self, approval: ApprovalRequest, by: str, reason: str | None) -> CallResult:
        self._log_decision(approval, "denied", by, reason)
        return CallResult.error(denial_message(by, reason))

    def _log_decision(self, approval: ApprovalRequest, outcome: str, by: str, reason: str | None = None) -> None:
        approval_log.info(
            "MCP call %s (request %s, session %s) %s by %s%s",
            approval.tool_name,
            approval.call_id,
            approval.session_id or "stdio",
            outcome,
            by,
            f": {reason}" if reason else "",
            extra={
                "session_id": approval.session_id,
                "tool_use_id": approval.call_id,
                "tool": approval.tool_name,
                "approval": outcome,
                "decided_by": by,
            },
        )

    def _ticket(self, tool: Tool, arguments: Mapping[str, Any], request: Request) -> Ticket:
        options = tool.options
        key_field = options.concurrency_key
        key = str(arguments.get(key_field)) if key_field is not None and key_field in arguments else None
        timeout = self.toolset.timeout_for(tool.name)
        return Ticket(
            request.session_id or self._process_session,
            request.request_id,
            tool.name,
            tool_limit=None if key_field is not None else options.max_concurrency,
            key=key,
            key_limit=options.max_concurrency if key is not None else None,
            timeout=timeout if timeout is not None else self.timeout,
        )


def _annotations(tool: Tool) -> dict[str, Any]:
    """MCP tool annotations from the tool's options (hints for the client's approval UI, never trusted)."""
    options = tool.options
    hints: dict[str, Any] = {}
    if options.read_only:
        hints["readOnlyHint"] = True
    if options.destructive:
        hints["destructiveHint"] = True
    if options.idempotent:
        hints["idempotentHint"] = True
    return hints


def _answer(tool: Tool, outcome: Outcome[CallResult]) -> CallResult:
    """The result for a scheduler outcome; the texts are the ones agents get for the same outcome."""
    if outcome.kind is OutcomeKind.COMPLETED and outcome.value is not None:
        return outcome.value
    if outcome.kind is OutcomeKind.SHED:
        text = f"The server is overloaded ({outcome.reason}); the call did not run. Try again shortly."
        return CallResult.error(text)
    unsafe = outcome.started and not (tool.options.idempotent or tool.options.read_only)
    effect = " Any effect it already had is unknown." if unsafe else ""
    if outcome.kind is OutcomeKind.TIMED_OUT:
        text = f"The tool {tool.name!r} did not finish in time ({outcome.reason}) and was stopped."
        return CallResult.error(text + effect)
    reason = outcome.reason or "cancelled"
    if not outcome.started:
        return CallResult.error(f"The call was cancelled before it started ({reason}); it did not run.")
    return CallResult.error(f"The call was cancelled while running ({reason}).{effect}")


def _progress_sink(send: MemoryObjectSendStream[tuple[str, float | None]]) -> Any:
    """`ctx.progress(...)` from the event loop or from a sync tool's worker thread -> the call's progress stream."""
    loop_thread = threading.get_ident()

    def report(message: str, fraction: float | None) -> None:
        try:
            if threading.get_ident() == loop_thread:
                send.send_nowait((message, fraction))
            else:
                anyio.from_thread.run_sync(send.send_nowait, (message, fraction))
        except (anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError, RuntimeError):
            pass  # advisory: a full buffer, a finished call, or a thread that is not anyio's drops the report

    return report


async def _forward_progress(receive: MemoryObjectReceiveStream[tuple[str, float | None]], report: Report) -> None:
    """Send each report as `notifications/progress`: `fraction` of 1.0 when known, else a count of reports."""
    count = 0
    async with receive:
        async for message, fraction in receive:
            count += 1
            try:
                if fraction is not None:
                    await report(fraction, 1.0, message)
                else:
                    await report(float(count), None, message)
            except Exception as exc:  # a client gone mid-call must not fail the call itself
                log.debug("progress notification not sent: %s", exc)
