"""The Starlette app: every Managed Agents route the SDK calls, answering with the shapes its models require.

Routes are thin: they parse the query (`key[]=` and `key=` arrays, `created_at[gte]` filters), call the store and
render JSON. Errors are `APIError`s rendered with the envelope, including 404/405 for unknown routes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ._http import parse_json
from ._session import Entry, Session
from ._sse import StreamEndpoint
from ._store import Store, paginate
from ._util import APIError, invalid, not_found, parse_time
from ._validate import check_sent_events

__all__ = ["build_app"]

Json = dict[str, Any]
_TIME_OPS = ("gt", "gte", "lt", "lte")
_STATUSES = frozenset({"rescheduling", "running", "idle", "terminated"})


def _list(request: Request, name: str) -> list[str]:
    params = request.query_params
    return params.getlist(f"{name}[]") + params.getlist(name)


def _int(request: Request, name: str, default: int | None, *, maximum: int | None = None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid(f"{name}: expected an integer, got {raw!r}") from None
    if value < 1 or (maximum is not None and value > maximum):
        raise invalid(f"{name}: must be between 1 and {maximum}" if maximum else f"{name}: must be at least 1")
    return value


def _bool(request: Request, name: str) -> bool:
    return request.query_params.get(name, "false").lower() == "true"


def _time_filter(request: Request) -> Callable[[datetime], bool]:
    bounds = [(op, parse_time(v)) for op in _TIME_OPS if (v := request.query_params.get(f"created_at[{op}]"))]
    checks = {"gt": datetime.__gt__, "gte": datetime.__ge__, "lt": datetime.__lt__, "lte": datetime.__le__}
    return lambda moment: all(checks[op](moment, bound) for op, bound in bounds)


def _order(request: Request, default: str) -> bool:
    order = request.query_params.get("order", default)
    if order not in ("asc", "desc"):
        raise invalid(f"order: expected 'asc' or 'desc', got {order!r}")
    return order == "desc"


async def _body(request: Request) -> Json:
    body = parse_json(await request.body())
    if not isinstance(body, dict):
        raise invalid("request body must be a JSON object")
    return body


def build_app(store: Store, stream_rules: list[tuple[str | None, int]]) -> Starlette:
    """The ASGI app serving `store` (wrap it in `EdgeMiddleware` for auth and faults)."""
    behavior = store.behavior

    def page_of(request: Request, items: list[Any], key: Callable[[Any], int], render: Callable[[Any], Json]) -> Json:
        limit = _int(request, "limit", behavior.default_list_limit, maximum=behavior.max_list_limit)
        assert limit is not None
        chunk, next_page, prev_page = paginate(items, key, limit=limit, page=request.query_params.get("page"))
        return {"data": [render(item) for item in chunk], "next_page": next_page, "prev_page": prev_page}

    def created(resource: Json) -> datetime:
        return parse_time(resource["created_at"])

    # -- agents ----------------------------------------------------------------------------------------------------

    async def agents(request: Request) -> Response:
        if request.method == "POST":
            return JSONResponse(store.create_agent(await _body(request)))
        keep = _time_filter(request)
        archived = _bool(request, "include_archived")
        items = [
            v[-1] for v in store.agents.values() if (archived or v[-1]["archived_at"] is None) and keep(created(v[-1]))
        ]
        page = page_of(request, items, lambda a: store.seq[a["id"]], lambda a: a)
        page.pop("prev_page")
        return JSONResponse(page)

    async def agent(request: Request) -> Response:
        agent_id = request.path_params["agent_id"]
        if request.method == "POST":
            return JSONResponse(store.update_agent(agent_id, await _body(request)))
        return JSONResponse(store.agent(agent_id, _int(request, "version", None)))

    async def agent_archive(request: Request) -> Response:
        return JSONResponse(store.archive_agent(request.path_params["agent_id"]))

    async def agent_versions(request: Request) -> Response:
        versions = list(reversed(store.agents.get(request.path_params["agent_id"]) or []))
        if not versions:
            raise not_found("agent", request.path_params["agent_id"])
        page = page_of(request, versions, lambda a: a["version"], lambda a: a)
        page.pop("prev_page")
        return JSONResponse(page)

    # -- environments ----------------------------------------------------------------------------------------------

    async def environments(request: Request) -> Response:
        if request.method == "POST":
            return JSONResponse(store.create_environment(await _body(request)))
        archived = _bool(request, "include_archived")
        items = [e for e in store.environments.values() if archived or e["archived_at"] is None]
        page = page_of(request, items, lambda e: store.seq[e["id"]], lambda e: e)
        page.pop("prev_page")
        return JSONResponse(page)

    async def environment(request: Request) -> Response:
        env_id = request.path_params["environment_id"]
        if request.method == "POST":
            return JSONResponse(store.update_environment(env_id, await _body(request)))
        if request.method == "DELETE":
            store.environment(env_id)
            del store.environments[env_id]
            return JSONResponse({"id": env_id, "type": "environment_deleted"})
        return JSONResponse(store.environment(env_id))

    async def environment_archive(request: Request) -> Response:
        env = store.environment(request.path_params["environment_id"])
        env["archived_at"] = env["archived_at"] or store.now()
        return JSONResponse(env)

    # -- sessions --------------------------------------------------------------------------------------------------

    def render(session: Session) -> Json:
        session.resource["status"] = session.status
        return session.resource

    async def sessions(request: Request) -> Response:
        if request.method == "POST":
            body = await _body(request)
            if body.get("initial_events"):
                allowed = frozenset({"user.message", "user.define_outcome"})
                body["initial_events"] = check_sent_events(body["initial_events"], allowed=allowed)
            return JSONResponse(render(store.create_session(body)))
        statuses = set(_list(request, "statuses"))
        if not statuses <= _STATUSES:
            raise invalid(f"statuses: unknown values {sorted(statuses - _STATUSES)}")
        keep = _time_filter(request)
        archived = _bool(request, "include_archived")
        agent_id = request.query_params.get("agent_id")
        version = _int(request, "agent_version", None)
        items = [
            s
            for s in store.sessions.values()
            if not s.deleted
            and (archived or s.resource["archived_at"] is None)
            and (not statuses or s.status in statuses)
            and (agent_id is None or s.resource["agent"]["id"] == agent_id)
            and (version is None or s.resource["agent"]["version"] == version)
            and keep(created(s.resource))
        ]
        if _order(request, "desc"):
            items.reverse()
        return JSONResponse(page_of(request, items, lambda s: store.seq[s.id], render))

    async def session(request: Request) -> Response:
        session_id = request.path_params["session_id"]
        if request.method == "DELETE":
            store.delete_session(session_id)
            return JSONResponse({"id": session_id, "type": "session_deleted"})
        found = store.session(session_id)
        if request.method == "POST":
            update_session(found, await _body(request))
        return JSONResponse(render(found))

    def update_session(found: Session, body: Json) -> None:
        from ._resources import patch_metadata, session_agent

        if body.get("vault_ids") is not None:
            raise invalid("vault_ids: cannot be updated")
        changes: Json = {}
        if isinstance(body.get("agent"), dict):
            if found.status == "running":
                raise invalid("agent: the session must not be running to update its tools")
            patched = session_agent(found.resource["agent"], body["agent"])
            patched["multiagent"] = found.resource["agent"].get("multiagent")
            found.resource["agent"] = patched
            changes["agent"] = patched
        if "metadata" in body:
            found.resource["metadata"] = changes["metadata"] = patch_metadata(
                found.resource["metadata"], body["metadata"]
            )
        for key in ("title", "budget"):
            if key in body:
                found.resource[key] = changes[key] = body[key]
        if changes:
            found.emit("session.updated", **changes)
            store.notify("session.updated", found.id)

    async def session_archive(request: Request) -> Response:
        found = store.session(request.path_params["session_id"])
        if found.resource["archived_at"] is None:
            found.resource["archived_at"] = store.now()
            store.notify("session.archived", found.id)
        return JSONResponse(render(found))

    # -- events ----------------------------------------------------------------------------------------------------

    def list_events(request: Request, entries: list[tuple[int, Entry]], thread_id: str | None) -> Json:
        types = set(_list(request, "types"))
        keep = _time_filter(request)
        items = [(i, e) for i, e in entries if e.view(thread_id) is not None]
        items = [(i, e) for i, e in items if (not types or e.event["type"] in types) and keep(e.at)]
        if _order(request, "asc"):
            items.reverse()
        limit = _int(request, "limit", behavior.default_events_limit, maximum=behavior.max_events_limit)
        assert limit is not None
        chunk, next_page, _ = paginate(items, lambda item: item[0], limit=limit, page=request.query_params.get("page"))
        return {"data": [e.view(thread_id) for _, e in chunk], "next_page": next_page}

    async def events(request: Request) -> Response:
        found = store.session(request.path_params["session_id"])
        if request.method == "POST":
            body = await _body(request)
            stored = found.receive(check_sent_events(body.get("events")))
            return JSONResponse({"data": stored})
        return JSONResponse(list_events(request, list(enumerate(found.log)), None))

    # -- threads ---------------------------------------------------------------------------------------------------

    def thread_of(request: Request) -> tuple[Session, str]:
        found = store.session(request.path_params["session_id"])
        thread_id = request.path_params["thread_id"]
        if thread_id not in found.threads:
            raise not_found("session thread", thread_id)
        return found, thread_id

    def render_thread(found: Session, thread_id: str) -> Json:
        info = found.threads[thread_id]
        created_at = next(e.event["processed_at"] for e in found.log if e.event.get("session_thread_id") == thread_id)
        return {
            "id": thread_id,
            "type": "session_thread",
            "session_id": found.id,
            "parent_thread_id": None,
            "status": "terminated" if info["status"] == "terminated" else found.status,
            "agent": {k: v for k, v in found.resource["agent"].items() if k != "multiagent"},
            "created_at": created_at,
            "updated_at": found.resource["updated_at"],
            "archived_at": info.get("archived_at"),
            "workflow_run_id": None,
        }

    async def threads(request: Request) -> Response:
        found = store.session(request.path_params["session_id"])
        statuses = set(_list(request, "statuses"))
        items = [t for t in found.threads if not statuses or render_thread(found, t)["status"] in statuses]
        order = {t: i for i, t in enumerate(found.threads)}
        page = page_of(request, items, lambda t: order[t], lambda t: render_thread(found, t))
        page.pop("prev_page")
        return JSONResponse(page)

    async def thread(request: Request) -> Response:
        found, thread_id = thread_of(request)
        return JSONResponse(render_thread(found, thread_id))

    async def thread_archive(request: Request) -> Response:
        found, thread_id = thread_of(request)
        found.threads[thread_id].setdefault("archived_at", store.now())
        return JSONResponse(render_thread(found, thread_id))

    async def thread_events(request: Request) -> Response:
        found, thread_id = thread_of(request)
        return JSONResponse(list_events(request, list(enumerate(found.log)), thread_id))

    async def api_error(request: Request, exc: Exception) -> Response:
        request_id = request.scope.get("state", {}).get("request_id", "req_unknown")
        if isinstance(exc, HTTPException):
            kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
            exc = APIError(exc.status_code, kind, f"{request.method} {request.url.path}: {exc.detail}")
        assert isinstance(exc, APIError)
        return JSONResponse(exc.envelope(request_id), status_code=exc.status, headers=exc.headers)

    def route(path: str, endpoint: Callable[[Request], Any], methods: list[str], query: str = "") -> Route:
        """A route whose GET accepts only the query parameters the SDK documents (others are a 400)."""
        allowed = frozenset(query.split())

        async def checked(request: Request) -> Response:
            if behavior.strict_query and request.method == "GET":
                unknown = {key.removesuffix("[]") for key in request.query_params} - allowed
                if unknown:
                    raise invalid(f"unknown query parameter(s): {', '.join(sorted(unknown))}")
            response: Response = await endpoint(request)
            return response

        return Route(path, checked, methods=methods)

    stream = StreamEndpoint(store, stream_rules)
    sid = "/v1/sessions/{session_id}"
    times = " ".join(f"created_at[{op}]" for op in _TIME_OPS)
    routes = [
        route("/v1/agents", agents, ["GET", "POST"], "created_at[gte] created_at[lte] include_archived limit page"),
        route("/v1/agents/{agent_id}", agent, ["GET", "POST"], "version"),
        route("/v1/agents/{agent_id}/archive", agent_archive, ["POST"]),
        route("/v1/agents/{agent_id}/versions", agent_versions, ["GET"], "limit page"),
        route("/v1/environments", environments, ["GET", "POST"], "include_archived limit page"),
        route("/v1/environments/{environment_id}", environment, ["GET", "POST", "DELETE"]),
        route("/v1/environments/{environment_id}/archive", environment_archive, ["POST"]),
        route(
            "/v1/sessions",
            sessions,
            ["GET", "POST"],
            f"agent_id agent_version {times} deployment_id include_archived limit memory_store_id order page statuses",
        ),
        route(sid, session, ["GET", "POST", "DELETE"]),
        route(sid + "/archive", session_archive, ["POST"]),
        route(sid + "/events", events, ["GET", "POST"], f"{times} limit order page types"),
        Route(sid + "/events/stream", stream, methods=["GET"]),
        route(sid + "/threads", threads, ["GET"], "limit page statuses"),
        route(sid + "/threads/{thread_id}", thread, ["GET"]),
        route(sid + "/threads/{thread_id}/archive", thread_archive, ["POST"]),
        route(sid + "/threads/{thread_id}/events", thread_events, ["GET"], "limit page"),
        Route(sid + "/threads/{thread_id}/stream", stream, methods=["GET"]),
    ]
    return Starlette(routes=routes, exception_handlers={APIError: api_error, HTTPException: api_error})
