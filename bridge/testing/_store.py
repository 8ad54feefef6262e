"""The emulator's world: agents with their versions, environments and sessions, and what spans them.

Everything here runs on the emulator's own event loop, so no locks are needed; the control handle reaches in through
the loop's portal. The store also owns the task group that runs scripted turns, and the store-wide `changed` event
that control waits block on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import anyio
from anyio.abc import TaskGroup

from ._config import Behavior
from ._resources import agent_from_body, environment_from_body, session_agent, session_resource
from ._script import Script, run_turn
from ._session import Session
from ._util import APIError, Clock, Ids, decode_page, encode_page, invalid, not_found, rfc3339

__all__ = ["Page", "Store", "paginate"]

Json = dict[str, Any]
T = TypeVar("T")
Page = tuple[list[T], str | None, str | None]
WebhookHook = Callable[[str, str, str | None], None]


def paginate(items: Sequence[T], key: Callable[[T], int], *, limit: int, page: str | None) -> Page[T]:
    """Keyset pagination over `items` (already filtered and in list order).

    Tokens hold the boundary item's stable sequence number, so pages do not shift when new items arrive. Returns the
    page, the `next_page` token (items after the last one) and the `prev_page` token (items before the first one).
    """
    start, stop = 0, len(items)
    if page is not None:
        position = decode_page(page)
        keys = [key(item) for item in items]
        if "after" in position:
            start = next((i + 1 for i, k in enumerate(keys) if k == position["after"]), len(items))
            stop = min(start + limit, len(items))
        elif "before" in position:
            stop = next((i for i, k in enumerate(keys) if k == position["before"]), 0)
            start = max(stop - limit, 0)
        else:
            raise invalid(f"invalid page token {page!r}")
    else:
        stop = min(limit, len(items))
    chunk = list(items[start:stop])
    next_page = encode_page({"after": key(chunk[-1])}) if chunk and stop < len(items) else None
    prev_page = encode_page({"before": key(chunk[0])}) if chunk and start > 0 else None
    return chunk, next_page, prev_page


class Store:
    """Agents, environments and sessions, keyed by id, in creation order."""

    def __init__(self, behavior: Behavior, script: Script | None, scripts: dict[str, Script] | None = None) -> None:
        self.behavior = behavior
        self.script = script
        self.scripts = dict(scripts or {})
        self.ids = Ids()
        self.clock = Clock()
        self.agents: dict[str, list[Json]] = {}
        self.environments: dict[str, Json] = {}
        self.sessions: dict[str, Session] = {}
        self.seq: dict[str, int] = {}
        self.changed: anyio.Event | None = None  # made on the emulator loop (`attach`): events bind to a backend
        self.closing = False
        self.tg: TaskGroup | None = None
        self.webhook_hooks: list[WebhookHook] = []

    def attach(self, tg: TaskGroup) -> None:
        """Bind to the emulator's loop: turns run in `tg`."""
        self.tg = tg
        self.changed = anyio.Event()

    def now(self) -> str:
        """A fresh, strictly increasing RFC 3339 timestamp."""
        return rfc3339(self.clock.now())

    def _register(self, ident: str) -> None:
        self.seq[ident] = len(self.seq)

    def poke(self) -> None:
        """Wake control waits to re-check their condition."""
        if self.changed is not None:
            self.changed.set()
        self.changed = anyio.Event()

    def notify(self, kind: str, resource_id: str, thread_id: str | None = None) -> None:
        """A webhook-worthy state change (`session.requires_action`, ...): tell every hook."""
        for hook in self.webhook_hooks:
            hook(kind, resource_id, thread_id)

    # -- agents ----------------------------------------------------------------------------------------------------

    def create_agent(self, body: Json) -> Json:
        agent_id = self.ids.new("agent")
        agent = agent_from_body(body, base=None, agent_id=agent_id, version=1, now=self.now())
        self.agents[agent_id] = [agent]
        self._register(agent_id)
        self.notify("agent.created", agent_id)
        return agent

    def agent(self, agent_id: str, version: int | None = None) -> Json:
        versions = self.agents.get(agent_id)
        if versions is None:
            raise not_found("agent", agent_id)
        if version is None:
            return versions[-1]
        if not 1 <= version <= len(versions):
            raise not_found("agent version", f"{agent_id}@{version}")
        return versions[version - 1]

    def update_agent(self, agent_id: str, body: Json) -> Json:
        current = self.agent(agent_id)
        expected = body.get("version")
        if expected is not None and expected != current["version"]:
            raise APIError(
                self.behavior.version_conflict_status,
                "conflict_error" if self.behavior.version_conflict_status == 409 else "invalid_request_error",
                f"agent {agent_id} is at version {current['version']}, not {expected}",
            )
        changes = {k: v for k, v in body.items() if k != "version"}
        updated = agent_from_body(
            changes, base=current, agent_id=agent_id, version=current["version"] + 1, now=self.now()
        )
        self.agents[agent_id].append(updated)
        self.notify("agent.updated", agent_id)
        return updated

    def archive_agent(self, agent_id: str) -> Json:
        agent = self.agent(agent_id)
        if agent["archived_at"] is None:
            now = self.now()
            for version in self.agents[agent_id]:
                version["archived_at"] = now
            self.notify("agent.archived", agent_id)
        return agent

    # -- environments ----------------------------------------------------------------------------------------------

    def create_environment(self, body: Json) -> Json:
        env_id = self.ids.new("env")
        env = environment_from_body(body, base=None, environment_id=env_id, now=self.now())
        self.environments[env_id] = env
        self._register(env_id)
        return env

    def environment(self, env_id: str) -> Json:
        env = self.environments.get(env_id)
        if env is None:
            raise APIError(
                404, "not_found_error", f"environment {env_id} not found", error_code="environment_not_found"
            )
        return env

    def update_environment(self, env_id: str, body: Json) -> Json:
        env = environment_from_body(body, base=self.environment(env_id), environment_id=env_id, now=self.now())
        self.environments[env_id] = env
        return env

    # -- sessions --------------------------------------------------------------------------------------------------

    def create_session(self, body: Json) -> Session:
        ref = body.get("agent")
        if "environment_id" not in body:
            raise invalid("environment_id: field required")
        self.environment(body["environment_id"])
        overrides: Json | None = None
        if isinstance(ref, str):
            agent = self.agent(ref)
        elif isinstance(ref, dict) and isinstance(ref.get("id"), str):
            agent = self.agent(ref["id"], ref.get("version"))
            if ref.get("type") == "agent_with_overrides":
                overrides = ref
        else:
            raise invalid('agent: expected an agent id or {"type": "agent", "id": ...}')
        if agent["archived_at"] is not None:
            raise invalid(f"agent {agent['id']} is archived")
        session_id = self.ids.new("sesn")
        resource = session_resource(body, session_id=session_id, agent=session_agent(agent, overrides), now=self.now())
        script = self.scripts.get(agent["name"], self.script)
        session = Session(
            session_id=session_id,
            resource=resource,
            ids=self.ids,
            clock=self.clock,
            behavior=self.behavior,
            on_change=self._session_changed,
            start_turn=lambda s, message: self._start_turn(s, message, script),
        )
        self.sessions[session_id] = session
        self._register(session_id)
        self.notify("session.created", session_id)
        initial = body.get("initial_events") or []
        if initial:
            session.receive(initial)
        return session

    def session(self, session_id: str) -> Session:
        session = self.sessions.get(session_id)
        if session is None or session.deleted:
            raise not_found("session", session_id)
        return session

    def delete_session(self, session_id: str) -> None:
        self.session(session_id).delete()

    def _session_changed(self, session: Session, kind: str, thread_id: str | None) -> None:
        if kind:
            self.notify(kind, session.id, thread_id)
        self.poke()

    def _start_turn(self, session: Session, message: Json, script: Script | None) -> None:
        if self.tg is None:
            raise RuntimeError("the emulator is not running")
        self.tg.start_soon(run_turn, session, message, script, self.behavior.emit_spans)

    def close(self) -> None:
        """Stop every turn and wake every stream and waiter so the server can shut down at once."""
        self.closing = True
        for session in self.sessions.values():
            if session.turn_scope is not None:
                session.turn_scope.cancel()
            session.queue.clear()
            session.poke()
        self.poke()
