"""`Emulator`: the app served by uvicorn on 127.0.0.1, on its own thread and event loop.

Why a thread: uvicorn runs only on asyncio, while tests and the bridge run on asyncio or trio; and a real API does not
stall when the client's loop is busy. The emulator therefore owns a private asyncio loop (an anyio blocking portal)
and the caller talks to it over HTTP like to the real API. Startup binds the socket first, so the port is known and
accepting before `__aenter__` returns; shutdown ends every stream and turn, then closes every connection without
uvicorn's polling, so starting and stopping is cheap enough to do per test.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import threading
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any

import anyio
import uvicorn
from anthropic import Anthropic, AsyncAnthropic
from anyio.abc import TaskStatus
from anyio.from_thread import BlockingPortal, start_blocking_portal

from ._app import build_app
from ._config import Behavior
from ._control import Control
from ._faults import Faults
from ._http import EdgeMiddleware, RequestRecord
from ._script import Script
from ._store import Store
from ._webhooks import WebhookDelivery

__all__ = ["Emulator", "serve_forever"]


class Emulator:
    """A Managed Agents API on 127.0.0.1 that the real `anthropic` SDK talks to over HTTP.

    ```python
    async with Emulator(script=my_script) as api:
        client = api.client()
        agent = await client.beta.agents.create(name="a", model="claude-opus-5", tools=[...])
        ...
        await api.control.wait_idle(session.id)
        api.control.invariants().assert_ok()
    ```

    Args:
        script: What the agent does on each user message (see `AgentTurn`); None answers with an empty turn.
        scripts: Per-agent scripts, keyed by agent name; agents not named here run `script`.
        behavior: The emulator's answers to what the real API leaves unknown (see `Behavior`).
        api_key: The key clients must send (default: a random `sk-ant-emulator-...`).
        host: Interface to bind (127.0.0.1).
        port: Port to bind (0: a free one).
        max_retries: `max_retries` of the clients `client()` makes (the SDK's default is 2).
        webhook_url: Where to POST signed Standard Webhooks on session state changes (None: no webhooks).
        webhook_key: The `whsec_...` signing key (default: a random one, see `webhook_key`).
        raise_script_errors: Re-raise a script's exception when the emulator exits (default True), so a broken
            script fails the test instead of only ending its turn with `session.error`.
    """

    def __init__(
        self,
        script: Script | None = None,
        *,
        scripts: dict[str, Script] | None = None,
        behavior: Behavior | None = None,
        api_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        max_retries: int = 2,
        webhook_url: str | None = None,
        webhook_key: str | None = None,
        raise_script_errors: bool = True,
    ) -> None:
        self.behavior = behavior or Behavior()
        self.api_key = api_key or "sk-ant-emulator-" + secrets.token_hex(8)
        self.host = host
        self.max_retries = max_retries
        self.webhook_url = webhook_url
        self.webhook_key = webhook_key or "whsec_" + __import__("base64").b64encode(secrets.token_bytes(24)).decode()
        self.raise_script_errors = raise_script_errors
        self.webhook_deliveries: list[WebhookDelivery] = []
        self._port = port
        self._store = Store(self.behavior, script, scripts)
        self._faults = Faults()
        self._requests: list[RequestRecord] = []
        self._stream_rules: list[tuple[str | None, int]] = []
        self._portal: BlockingPortal | None = None
        self._portal_cm: AbstractContextManager[BlockingPortal] | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._stop: anyio.Event | None = None
        self._done: Any = None
        self._clients: list[AsyncAnthropic] = []
        self._sync_clients: list[Anthropic] = []
        self.control = Control(
            self._store, self._faults, self._requests, self._stream_rules, self._get_portal, lambda: self._thread
        )

    def _get_portal(self) -> BlockingPortal:
        if self._portal is None:
            raise RuntimeError("the emulator is not running: use `async with Emulator() as api`")
        return self._portal

    @property
    def port(self) -> int:
        """The bound port."""
        if self._sock is None:
            raise RuntimeError("the emulator is not running")
        port: int = self._sock.getsockname()[1]
        return port

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT`, for `AsyncAnthropic(base_url=...)` or `ANTHROPIC_BASE_URL`."""
        return f"http://{self.host}:{self.port}"

    def client(self, **options: Any) -> AsyncAnthropic:
        """An `AsyncAnthropic` configured for this emulator (closed when the emulator exits)."""
        options = {"api_key": self.api_key, "base_url": self.base_url, "max_retries": self.max_retries, **options}
        client = AsyncAnthropic(**options)
        self._clients.append(client)
        return client

    def sync_client(self, **options: Any) -> Anthropic:
        """A sync `Anthropic` configured for this emulator (closed when the emulator exits)."""
        options = {"api_key": self.api_key, "base_url": self.base_url, "max_retries": self.max_retries, **options}
        client = Anthropic(**options)
        self._sync_clients.append(client)
        return client

    # -- lifecycle -------------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Bind, start the loop thread and serve (blocking; prefer `async with` / `with`)."""
        # IPPROTO_TCP, not 0: asyncio turns Nagle off only on sockets whose proto says TCP, and accepted sockets
        # inherit the listener's. With proto 0 every response on a kept-alive connection waited ~40 ms for the
        # client's delayed ACK (headers and body are two writes).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.bind((self.host, self._port))
            sock.listen(1024)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self._portal_cm = start_blocking_portal("asyncio")
        self._portal = self._portal_cm.__enter__()
        try:
            self._done, _ = self._portal.start_task(self._main, name="bridge.testing emulator")
            self._thread = self._portal.call(threading.current_thread)
        except BaseException:
            self._teardown()
            raise

    def stop(self) -> None:
        """End every stream and turn, close every connection, stop the thread (blocking)."""
        for client in self._sync_clients:
            client.close()
        self._sync_clients.clear()
        if self._portal is not None and self._stop is not None:
            self._portal.call(self._stop.set)
            self._done.result()
        self._teardown()
        errors = [e for s in self._store.sessions.values() for e in s.script_errors]
        if errors and self.raise_script_errors:
            raise ExceptionGroup("scripted agent failed", errors)

    def _teardown(self) -> None:
        if self._portal_cm is not None:
            self._portal_cm.__exit__(None, None, None)
        self._portal_cm = self._portal = None
        self._thread = None
        if self._sock is not None:
            self._sock.close()

    async def __aenter__(self) -> Emulator:
        await anyio.to_thread.run_sync(self.start)
        return self

    async def __aexit__(self, *exc: object) -> None:
        with anyio.CancelScope(shield=True):
            for client in self._clients:
                await client.close()
            self._clients.clear()
            await anyio.to_thread.run_sync(self.stop)

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def _main(self, *, task_status: TaskStatus[None]) -> None:
        """Runs on the emulator loop: serve until stopped, then shut down fast."""
        assert self._sock is not None
        self._stop = anyio.Event()
        app = EdgeMiddleware(
            build_app(self._store, self._stream_rules),
            api_key=self.api_key,
            faults=self._faults,
            require_beta=self.behavior.require_beta_header,
            log=self._requests,
        )
        config = uvicorn.Config(app, http="h11", ws="none", lifespan="off", log_config=None, access_log=False)
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        async with anyio.create_task_group() as tg:
            self._store.attach(tg)
            if self.webhook_url is not None:
                from ._webhooks import WebhookSender

                sender = WebhookSender(self.webhook_url, self.webhook_key, self.webhook_deliveries)
                self._store.webhook_hooks.append(sender.notify)
                tg.start_soon(sender.run)
            await server.startup(sockets=[self._sock])
            task_status.started()
            await self._stop.wait()
            self._store.close()
            await _shutdown(server)
            tg.cancel_scope.cancel()


async def _shutdown(server: uvicorn.Server) -> None:
    """uvicorn's shutdown without its fixed 0.1 s sleeps: stop listening, finish handlers, close connections."""
    for listener in server.servers:
        listener.close()
    for connection in list(server.server_state.connections):
        connection.shutdown()
    tasks = list(server.server_state.tasks)
    if tasks:
        await asyncio.wait(tasks, timeout=5)
    for connection in list(server.server_state.connections):
        transport = getattr(connection, "transport", None)
        if transport is not None:
            transport.close()
    for listener in server.servers:
        await listener.wait_closed()
    for _ in range(3):
        await asyncio.sleep(0)


def serve_forever(host: str = "127.0.0.1", port: int = 8765, **options: Any) -> None:
    """Serve an emulator until interrupted (Ctrl-C); what `python -m bridge.testing` runs."""
    emulator = Emulator(host=host, port=port, **options)
    with emulator:
        print(f"Managed Agents emulator on {emulator.base_url}  (api key: {emulator.api_key})", flush=True)
        threading.Event().wait()
