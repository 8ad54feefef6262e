"""`McpServer`: one supervised connection to an MCP server, and its tools as bridge `Tool`s.

One long-lived task owns the connection: it spawns the process (stdio) or opens the HTTP session, negotiates the
protocol, lists the tools, and then waits for the transport to end. The MCP SDK's stdio transport keeps anyio scopes
that must be entered and exited in one task, so nothing else ever enters or exits it. Calls run in their own (the
bridge's) tasks and only send requests on the open session.

```
owner task:  connect -> list tools -> pin check -> ready ... transport ends -> not ready -> backoff -> connect ...
call task:   wait until ready (within the timeout) -> tools/call -> result | timeout -> notifications/cancelled
```

- A call's timeout counts time without an answer or a progress notification (progress is logged and keeps the call
  alive); when it passes, the request is abandoned and the SDK sends `notifications/cancelled` with a bounded write,
  so the call never waits on a stuck server. The connection stays up: the tools do not vanish.
- Cancelling a call's task (a `user.interrupt`, the bridge's own deadline) cancels the MCP request the same way.
- A server that exits is restarted with exponential backoff (0, 0.5, 1, 2 ... 30 s); calls in flight get an error
  saying the outcome is unknown, calls arriving meanwhile wait for the restart within their timeout.
- `notifications/tools/list_changed` (2025 protocol) or a `subscriptions/listen` event (2026) makes the owner list
  the tools again; the new list is applied when no call to this server is running, never under a running call.
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import re
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Literal

import anyio
import anyio.abc
import mcp.types as mt
from mcp import ClientSession, MCPError, StdioServerParameters, stdio_client
from mcp.shared.message import SessionMessage

from bridge import ApprovalPolicy, ConfigError, Tool, ToolContext, ToolError, ToolResult

from ._pins import Definition, PinFile
from ._results import map_result
from ._spec import McpServerSpec

__all__ = ["McpServer", "Protocol"]

log = logging.getLogger("toolkits.mcp")

Protocol = Literal["auto", "2025", "2026"]
_MAX_BACKOFF = 30.0
_NAME_LIMIT = 64


def _backoff(failures: int) -> float:
    return 0.0 if failures == 0 else min(_MAX_BACKOFF, 0.5 * 2 ** (failures - 1))


def _definition(tool: mt.Tool) -> Definition:
    """What the server said about a tool, as pinned: the fields that change what the model reads or sends."""
    data = tool.model_dump(by_alias=True, mode="json", exclude_none=True)
    return {key: data[key] for key in ("name", "description", "inputSchema", "annotations") if key in data}


def exposed_name(prefix: str | None, name: str) -> str:
    """A Claude-valid tool name for an MCP tool: invalid characters become `_`, and it fits in 64 with the prefix."""
    clean = re.sub(r"[^A-Za-z0-9_-]", "_", name) or "tool"
    if not prefix:
        return clean[:_NAME_LIMIT]
    head = prefix if prefix.endswith(("_", "-")) else f"{prefix}_"
    return (head + clean)[:_NAME_LIMIT]


class McpServer:
    """A supervised MCP server whose tools are served as custom tools (`mcp_toolset` builds one).

    Args:
        spec: What to spawn or reach.
        prefix: Prepended to each tool name.
        timeout: Seconds a call may go without an answer or a progress notification.
        trusted: Take the server's annotations (read-only, idempotent, destructive) as true, and leave its text
            results unfenced. Untrusted servers' text is wrapped in an untrusted-data boundary.
        pins: The lock file to check definitions against, or None to serve whatever the server defines.
        protocol: `auto` tries the 2026-07-28 protocol and falls back to the 2025 handshake.
        startup_timeout: Seconds to connect, negotiate and list the tools.
        output_budget: Characters a result may carry (see `bridge.tool`).
        on_change: Called with the served tool names after the server's tool list changed and was applied.
        approvals: Approval policies by pattern of the server's tool names (fnmatch, first match wins): the first
            match becomes the tool's own `approval` option.
    """

    def __init__(
        self,
        spec: McpServerSpec,
        *,
        prefix: str | None,
        timeout: float,
        trusted: bool,
        pins: PinFile | None,
        protocol: Protocol,
        startup_timeout: float,
        output_budget: int | None,
        on_change: Callable[[list[str]], None] | None = None,
        approvals: tuple[tuple[str, ApprovalPolicy], ...] = (),
    ) -> None:
        self.on_change = on_change
        self.approvals = approvals
        self.spec = spec
        self.prefix = prefix
        self.timeout = timeout
        self.trusted = trusted
        self.pins = pins
        self.protocol = protocol
        self.startup_timeout = startup_timeout
        self.output_budget = output_budget
        self.restarts = 0
        self.protocol_version: str | None = None
        self.definitions: dict[str, Definition] = {}
        """What the server said about each tool in its latest list (by MCP name), before any pin check."""
        self._tools: dict[str, Tool] = {}
        self._refused: dict[str, str] = {}  # MCP tool name -> why calls are refused
        self._staged: list[mt.Tool] | None = None
        self._inflight = 0
        self._session: ClientSession | None = None
        self._ready = anyio.Event()
        self._dead = anyio.Event()
        self._list_changed = anyio.Event()
        self._last_failure: str | None = None

    def __repr__(self) -> str:
        return f"<McpServer {self.spec.name} {'ready' if self._session else 'down'} tools={len(self._tools)}>"

    # -- what the toolset sees --------------------------------------------------------------------------------------

    def tools(self) -> Mapping[str, Tool]:
        """The tools served now (a `bridge.ToolSource`): the same mapping object until they change."""
        return self._tools

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[McpServer]:
        """Connect (raising `ConfigError` when the first connection fails), supervise until exit, then stop."""
        # The task group is entered and exited by hand so that neither a startup error nor an exception thrown in
        # at the yield comes out wrapped in an ExceptionGroup: the supervisor never raises once started.
        tg = anyio.create_task_group()
        await tg.__aenter__()
        try:
            await tg.start(self._supervise)
        except BaseException:
            tg.cancel_scope.cancel()
            await tg.__aexit__(None, None, None)
            raise
        try:
            yield self
        finally:
            tg.cancel_scope.cancel()
            await tg.__aexit__(None, None, None)

    # -- the owner task ---------------------------------------------------------------------------------------------

    async def _supervise(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        failures = 0
        started = False
        while True:
            try:
                async with self._connected() as session:
                    failures = 0
                    self._session = session
                    self._ready.set()
                    if not started:
                        started = True
                        task_status.started()
                    await self._dead.wait()
                    reason = self._last_failure or "the connection closed"
            except Exception as exc:
                if not started:
                    raise ConfigError(
                        f"MCP server {self.spec.name!r} ({self.spec!r}) failed to start: {_why(exc)}"
                    ) from exc
                reason = _why(exc)
            finally:
                self._down()
                self._dead = anyio.Event()
                self._last_failure = None
            delay = _backoff(failures)
            failures += 1
            self.restarts += 1
            log.warning("MCP server %s stopped (%s); restarting in %.1f s", self.spec.name, reason, delay)
            await anyio.sleep(delay)

    @contextlib.asynccontextmanager
    async def _connected(self) -> AsyncIterator[ClientSession]:
        """Open the transport and session, negotiate, list the tools; yields while the transport lives."""
        async with self._transport() as (read, write), anyio.create_task_group() as tg:
            # Relay the server's messages so this task learns when the transport ends (the process exited).
            relay_send, relay_receive = anyio.create_memory_object_stream[SessionMessage | Exception](16)
            dead = self._dead

            async def relay() -> None:
                async with relay_send:
                    with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
                        async for message in read:
                            await relay_send.send(message)
                self._down()
                dead.set()

            tg.start_soon(relay)
            async with ClientSession(
                relay_receive,
                write,
                message_handler=self._on_message,
                logging_callback=self._on_log,
                client_info=mt.Implementation(name="tool-bridge", version="0.1"),
            ) as session:
                with anyio.fail_after(self.startup_timeout):
                    await self._negotiate(session)
                    self._apply(await self._list_tools(session), first=True)
                if self.protocol_version == "2026-07-28":
                    await tg.start(self._listen, session)  # subscribed before the first call
                tg.start_soon(self._refresh_on_change, session)
                try:
                    yield session
                finally:
                    tg.cancel_scope.cancel()

    @contextlib.asynccontextmanager
    async def _transport(self) -> AsyncIterator[Any]:
        spec = self.spec
        if spec.command is not None:
            params = StdioServerParameters(
                command=spec.command, args=list(spec.args), env=_child_env(spec.env), cwd=spec.cwd
            )
            async with stdio_client(params) as streams:
                yield streams
        else:
            import httpx2
            from mcp.client.streamable_http import streamable_http_client

            assert spec.url is not None
            timeout = httpx2.Timeout(30.0, read=300.0)
            async with (
                httpx2.AsyncClient(headers=dict(spec.headers), timeout=timeout) as http,
                streamable_http_client(spec.url, http_client=http) as streams,
            ):
                yield streams

    async def _negotiate(self, session: ClientSession) -> None:
        if self.protocol in ("auto", "2026"):
            try:
                result = await session.discover()
                self.protocol_version = session.protocol_version
                log.info("MCP server %s: protocol %s (%s)", self.spec.name, self.protocol_version, _info(result))
                return
            except MCPError:
                if self.protocol == "2026":
                    raise
        init = await session.initialize()
        self.protocol_version = init.protocol_version
        log.info("MCP server %s: protocol %s (%s)", self.spec.name, self.protocol_version, _info(init))

    async def _list_tools(self, session: ClientSession) -> list[mt.Tool]:
        tools: list[mt.Tool] = []
        cursor: str | None = None
        while True:
            params = mt.PaginatedRequestParams(cursor=cursor) if cursor else None
            page = await session.list_tools(params=params)
            tools.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                return tools

    async def _refresh_on_change(self, session: ClientSession) -> None:
        while True:
            await self._list_changed.wait()
            self._list_changed = anyio.Event()
            try:
                tools = await self._list_tools(session)
            except Exception as exc:
                log.warning("MCP server %s: listing the changed tools failed: %s", self.spec.name, _why(exc))
                continue
            self._staged = tools
            self._apply_if_idle()

    async def _listen(
        self, session: ClientSession, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        from mcp.client.subscriptions import listen

        started = False
        try:
            async with listen(session, tools_list_changed=True) as events:
                task_status.started()
                started = True
                async for _event in events:
                    self._list_changed.set()
        except Exception as exc:
            log.info("MCP server %s: no tool-change subscription (%s)", self.spec.name, _why(exc))
        finally:
            if not started:
                task_status.started()

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, mt.ToolListChangedNotification):
            self._list_changed.set()
        elif isinstance(message, Exception):
            log.warning("MCP server %s sent something unreadable: %s", self.spec.name, _why(message))

    async def _on_log(self, params: mt.LoggingMessageNotificationParams) -> None:
        log.debug("MCP server %s [%s]: %s", self.spec.name, params.level, params.data)

    def _down(self) -> None:
        """The connection is gone: new calls wait for the next one."""
        if self._session is not None:
            self._session = None
            self._ready = anyio.Event()

    # -- tools ------------------------------------------------------------------------------------------------------

    def _apply_if_idle(self) -> None:
        if self._staged is not None and self._inflight == 0:
            staged, self._staged = self._staged, None
            self._apply(staged, first=False)

    def _apply(self, listed: list[mt.Tool], *, first: bool) -> None:
        """Build the served tools from a tool list, after the pin check; replaces the mapping (never mutates it)."""
        current = {tool.name: _definition(tool) for tool in listed}
        self.definitions = current
        by_name = {tool.name: tool for tool in listed}
        refused: dict[str, str] = {}
        definitions: dict[str, Definition] = dict(current)
        if self.pins is not None:
            check = self.pins.check(self.spec.name, current)
            if check.first_use:
                self.pins.record(self.spec.name, current)
                log.info(
                    "MCP server %s: %d tool definitions pinned in %s", self.spec.name, len(current), self.pins.path
                )
            for name in check.added:
                log.warning(
                    "MCP server %s: new tool %r is not served until pinned (`bridge mcp pin`)", self.spec.name, name
                )
                del definitions[name]
            for name, pinned in check.changed.items():
                log.warning(
                    "MCP server %s: tool %r changed its definition since it was pinned; refused until `bridge mcp pin`"
                    " accepts the change",
                    self.spec.name,
                    name,
                )
                definitions[name] = pinned
                refused[name] = (
                    f"The MCP server {self.spec.name!r} changed the definition of tool {name!r} since it was approved, "
                    "so the bridge refuses to call it. An operator must review the change (`bridge mcp pin`)."
                )
        tools: dict[str, Tool] = {}
        for name, definition in definitions.items():
            try:
                tool = self._tool(name, definition, by_name[name].annotations)
            except Exception as exc:
                log.warning("MCP server %s: tool %r cannot be served: %s", self.spec.name, name, exc)
                continue
            if tool.name in tools:
                log.warning("MCP server %s: tool %r skipped, its name clashes once cleaned", self.spec.name, name)
                continue
            tools[tool.name] = tool
        self._refused = refused
        self._tools = tools
        if not first:
            log.info("MCP server %s: tool list changed; now %s", self.spec.name, ", ".join(tools) or "(none)")
            if self.on_change is not None:
                self.on_change(list(tools))

    def _tool(self, name: str, definition: Definition, annotations: mt.ToolAnnotations | None) -> Tool:
        options: dict[str, Any] = {}
        if self.output_budget is not None:
            options["output_budget"] = self.output_budget
        if self.trusted and annotations is not None:
            options["read_only"] = bool(annotations.read_only_hint)
            options["idempotent"] = bool(annotations.idempotent_hint)
            options["destructive"] = bool(annotations.destructive_hint)
        policy = next((policy for pattern, policy in self.approvals if fnmatch.fnmatchcase(name, pattern)), None)
        if policy is not None:
            options["approval"] = policy
        description = str(definition.get("description") or "").strip() or f"Tool {name} of MCP server {self.spec.name}."

        async def call(arguments: dict[str, Any], context: ToolContext) -> Any:
            return await self.call(name, arguments, context)

        schema = definition.get("inputSchema") or {"type": "object"}
        return Tool.from_schema(exposed_name(self.prefix, name), description, schema, call, **options)

    # -- calls ------------------------------------------------------------------------------------------------------

    async def _session_within(self, deadline: float) -> ClientSession:
        with anyio.move_on_after(max(0.0, deadline - anyio.current_time())):
            while self._session is None:
                await self._ready.wait()
        if self._session is None:
            raise ToolError(
                f"The MCP server {self.spec.name!r} is not available (it is restarting after it stopped); "
                "try again shortly."
            )
        return self._session

    async def call(self, name: str, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        """Call MCP tool `name`; every failure is a `ToolError` whose text the model reads."""
        refusal = self._refused.get(name)
        if refusal is not None:
            raise ToolError(refusal)
        session = await self._session_within(anyio.current_time() + self.timeout)
        scope = anyio.CancelScope(deadline=anyio.current_time() + self.timeout)

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            scope.deadline = anyio.current_time() + self.timeout
            fraction = progress / total if total else None
            context.progress(message or f"{progress:g}{f'/{total:g}' if total else ''}", fraction)

        self._inflight += 1
        try:
            with scope:
                result = await session.call_tool(name, arguments, progress_callback=on_progress)
            if scope.cancelled_caught:
                raise ToolError(
                    f"The MCP server {self.spec.name!r} did not answer tool {name!r} within {self.timeout:g} s "
                    "(nor report progress); the request was cancelled."
                )
        except MCPError as exc:
            if exc.error.code == mt.CONNECTION_CLOSED:
                if self._session is session:
                    self._last_failure = f"the connection failed during a call of {name!r}"
                    self._down()
                    self._dead.set()
                raise ToolError(
                    f"The MCP server {self.spec.name!r} stopped while running tool {name!r}; it is being restarted. "
                    "Whether the call took effect is unknown."
                ) from None
            raise ToolError(f"The MCP server {self.spec.name!r} rejected the call: {exc.error.message}") from None
        finally:
            self._inflight -= 1
            self._apply_if_idle()
        return map_result(result, server=self.spec.name, trusted=self.trusted)


def _child_env(extra: Mapping[str, str]) -> dict[str, str] | None:
    """The SDK's safe default environment plus the configured variables (None: the SDK's defaults alone)."""
    if not extra:
        return None
    from mcp.client.stdio import get_default_environment

    return {**get_default_environment(), **extra}


def _info(result: Any) -> str:
    info = getattr(result, "server_info", None)
    return f"{info.name} {info.version}" if info is not None else "unnamed server"


def _why(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    if isinstance(exc, MCPError):
        return f"MCP error {exc.error.code}: {exc.error.message}"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
