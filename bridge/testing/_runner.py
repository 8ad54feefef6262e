"""`AppServer`: any ASGI app served by uvicorn on 127.0.0.1, on a private thread and asyncio loop.

Why a thread: uvicorn runs only on asyncio, while tests and the bridge run on asyncio or trio; and a real API does not
stall when the client's loop is busy. Startup binds and listens before returning, so the port is known and accepting;
shutdown closes every connection without uvicorn's fixed 0.1 s sleeps, so starting and stopping is cheap enough to do
per test. The emulator is one `AppServer`; tests also use one as a webhook receiver.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import AbstractContextManager
from typing import Any

import anyio
import uvicorn
from anyio.abc import TaskGroup, TaskStatus
from anyio.from_thread import BlockingPortal, start_blocking_portal
from starlette.types import ASGIApp

__all__ = ["AppServer"]


class AppServer:
    """Serve `app` on `host:port` (0: a free port) until `stop()`.

    Args:
        app: The ASGI app.
        host: Interface to bind.
        port: Port to bind, 0 for a free one.
        on_start: Called on the server's loop with its task group before serving (start background tasks here).
        on_stop: Called on the server's loop before connections are closed (end long responses here).
    """

    def __init__(
        self,
        app: ASGIApp,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        on_start: Callable[[TaskGroup], None] | None = None,
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        self.app = app
        self.host = host
        self._port = port
        self._on_start = on_start
        self._on_stop = on_stop
        self._sock: socket.socket | None = None
        self._portal_cm: AbstractContextManager[BlockingPortal] | None = None
        self.portal: BlockingPortal | None = None
        self.thread: threading.Thread | None = None
        self._stop: anyio.Event | None = None
        self._done: Future[Any] | None = None

    @property
    def port(self) -> int:
        """The bound port."""
        if self._sock is None:
            raise RuntimeError("the server is not running")
        port: int = self._sock.getsockname()[1]
        return port

    @property
    def url(self) -> str:
        """`http://host:port`."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        """Bind, start the loop thread and serve (blocks until accepting)."""
        # IPPROTO_TCP, not 0: asyncio turns Nagle off only on sockets whose proto says TCP, and accepted sockets
        # inherit the listener's. With proto 0 every response on a kept-alive connection waited ~40 ms for the
        # client's delayed ACK (headers and body are two writes). Found by the bench.
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
        self.portal = self._portal_cm.__enter__()
        try:
            self._done, _ = self.portal.start_task(self._main, name=f"AppServer {self.url}")
            self.thread = self.portal.call(threading.current_thread)
        except BaseException:
            self._teardown()
            raise

    def stop(self) -> None:
        """Close every connection and stop the thread (blocking)."""
        if self.portal is not None and self._stop is not None and self._done is not None:
            self.portal.call(self._stop.set)
            self._done.result()
        self._teardown()

    def _teardown(self) -> None:
        if self._portal_cm is not None:
            self._portal_cm.__exit__(None, None, None)
        self._portal_cm = self.portal = None
        self.thread = None
        if self._sock is not None:
            self._sock.close()

    async def _main(self, *, task_status: TaskStatus[None]) -> None:
        assert self._sock is not None
        self._stop = anyio.Event()
        config = uvicorn.Config(self.app, http="h11", ws="none", lifespan="off", log_config=None, access_log=False)
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        async with anyio.create_task_group() as tg:
            if self._on_start is not None:
                self._on_start(tg)
            await server.startup(sockets=[self._sock])
            task_status.started()
            await self._stop.wait()
            if self._on_stop is not None:
                self._on_stop()
            await _shutdown(server)
            tg.cancel_scope.cancel()


async def _shutdown(server: uvicorn.Server) -> None:
    """uvicorn's shutdown without its fixed sleeps: stop listening, let handlers finish, close connections."""
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
