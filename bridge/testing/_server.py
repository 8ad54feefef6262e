"""`Emulator`: the Managed Agents app, served by an `AppServer` on 127.0.0.1, plus its clients and control handle."""

from __future__ import annotations

import base64
import secrets
import threading
from types import TracebackType
from typing import Any

import anyio
from anthropic import Anthropic, AsyncAnthropic
from anyio.abc import TaskGroup
from anyio.from_thread import BlockingPortal

from ._app import build_app
from ._config import Behavior
from ._control import Control
from ._faults import Faults, RateLimit
from ._http import EdgeMiddleware, RequestRecord
from ._runner import AppServer
from ._script import Script
from ._store import Store
from ._webhooks import RETRY_DELAYS, WebhookDelivery, WebhookSender

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
        extra_api_keys: More accepted Bearer keys, e.g. an `environment_key` a runner authenticates with.
        host: Interface to bind (127.0.0.1).
        port: Port to bind (0: a free one).
        max_retries: `max_retries` of the clients `client()` makes (the SDK's default is 2).
        webhook_url: Where to POST signed Standard Webhooks on session state changes (None: no webhooks).
        webhook_key: The `whsec_...` signing key (default: a random one, see `webhook_key`).
        webhook_retry_delays: Seconds before each retry of a webhook not answered 2xx (same `webhook-id`).
        webhook_concurrency: Deliveries in flight at once: 1 (default) sends first attempts in order; more is faster
            and delivers out of order, as real senders do.
        rate_limit: Requests per second the API accepts, all routes together, as an organisation's limit (None: no
            limit). Past it, requests get 429 `rate_limit_error` with `retry-after` (see `RateLimit`).
        rate_burst: Requests accepted at once before the rate applies (default: one second's worth).
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
        extra_api_keys: tuple[str, ...] = (),
        host: str = "127.0.0.1",
        port: int = 0,
        max_retries: int = 2,
        webhook_url: str | None = None,
        webhook_key: str | None = None,
        webhook_retry_delays: tuple[float, ...] = RETRY_DELAYS,
        webhook_concurrency: int = 1,
        rate_limit: float | None = None,
        rate_burst: float | None = None,
        raise_script_errors: bool = True,
    ) -> None:
        self.behavior = behavior or Behavior()
        self.api_key = api_key or "sk-ant-emulator-" + secrets.token_hex(8)
        self.extra_api_keys = extra_api_keys
        self.host = host
        self.max_retries = max_retries
        self.webhook_url = webhook_url
        self.webhook_key = webhook_key or "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        self.raise_script_errors = raise_script_errors
        self.webhook_retry_delays = webhook_retry_delays
        self.webhook_concurrency = webhook_concurrency
        self.webhook_deliveries: list[WebhookDelivery] = []
        self._webhooks: WebhookSender | None = None
        self.rate_limit = RateLimit(rate_limit, rate_burst) if rate_limit is not None else None
        self._edge: EdgeMiddleware | None = None
        self._port = port
        self._store = Store(self.behavior, script, scripts)
        self._faults = Faults()
        self._requests: list[RequestRecord] = []
        self._stream_rules: list[tuple[str | None, int]] = []
        self._server: AppServer | None = None
        self._clients: list[AsyncAnthropic] = []
        self._sync_clients: list[Anthropic] = []
        self.control = Control(
            self._store,
            self._faults,
            self._requests,
            self._stream_rules,
            self._get_portal,
            self._loop_thread,
        )

    def _loop_thread(self) -> threading.Thread | None:
        return self._server.thread if self._server else None

    def _get_portal(self) -> BlockingPortal:
        if self._server is None or self._server.portal is None:
            raise RuntimeError("the emulator is not running: use `async with Emulator() as api`")
        return self._server.portal

    @property
    def port(self) -> int:
        """The bound port."""
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        return self._server.port

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
        app = self._edge = EdgeMiddleware(
            build_app(self._store, self._stream_rules),
            api_keys=frozenset({self.api_key, *self.extra_api_keys}),
            faults=self._faults,
            require_beta=self.behavior.require_beta_header,
            log=self._requests,
            on_logged=self._store.poke,
            rate_limit=self.rate_limit,
        )
        self._server = AppServer(app, self.host, self._port, on_start=self._on_start, on_stop=self._store.close)
        self._server.start()

    def _on_start(self, tg: TaskGroup) -> None:
        self._store.attach(tg)
        if self.webhook_url is not None:
            sender = WebhookSender(
                self.webhook_url,
                self.webhook_key,
                self.webhook_deliveries,
                retry_delays=self.webhook_retry_delays,
                concurrency=self.webhook_concurrency,
            )
            self._webhooks = sender
            self._store.webhook_hooks.append(sender.notify)
            tg.start_soon(sender.run)

    def set_rate_limit(
        self, rate: float | None, burst: float | None = None, *, routes: tuple[str, ...] | None = None
    ) -> RateLimit | None:
        """Start (or change, or with None end) the rate limit while serving; `routes` limits it to those routes
        (`"POST /v1/sessions/*/events"`). Returns the new limit, whose `accepted`/`limited` counts tests can read."""
        limit = None if rate is None else RateLimit(rate, burst, routes=routes)
        self.rate_limit = limit
        edge = self._edge
        if edge is not None:

            def install() -> None:
                edge.rate_limit = limit

            self._get_portal().call(install)
        return limit

    def redeliver_webhooks(self) -> int:
        """Send every webhook delivered so far once more, with its original `webhook-id` (duplicates); returns how
        many were queued."""
        sender = self._webhooks
        if sender is None:
            raise RuntimeError("the emulator sends no webhooks: give it `webhook_url=`")
        return self._get_portal().call(sender.redeliver)

    def stop(self) -> None:
        """End every stream and turn, close every connection, stop the thread (blocking)."""
        for client in self._sync_clients:
            client.close()
        self._sync_clients.clear()
        if self._server is not None:
            self._server.stop()
        errors = [e for s in self._store.sessions.values() for e in s.script_errors]
        if errors and self.raise_script_errors:
            raise ExceptionGroup("scripted agent failed", errors)

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


def serve_forever(host: str = "127.0.0.1", port: int = 8765, **options: Any) -> None:
    """Serve an emulator until interrupted (Ctrl-C); what `python -m bridge.testing` runs."""
    emulator = Emulator(host=host, port=port, **options)
    with emulator:
        print(f"Managed Agents emulator on {emulator.base_url}  (api key: {emulator.api_key})", flush=True)
        threading.Event().wait()
