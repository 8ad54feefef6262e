"""A `Journal` in PostgreSQL: the journal a fleet of bridges shares.

Every transition is one statement, a compare-and-set (`UPDATE ... WHERE state IN (...)`, `INSERT ... ON CONFLICT DO
NOTHING`) committed before it returns (`synchronous_commit=on`): PostgreSQL's row locks make concurrent transitions
of one call, from one process or many, have exactly one winner, under READ COMMITTED, with no explicit transaction.
So `start()` is durable before the tool runs (the at-most-once line) and `complete()` before the result is posted (the
outbox), as in the SQLite journal; the other transitions are durable too, which costs nothing here because every
statement is its own commit anyway.

Fencing. Given `leases` (a `SessionLeases`), every write about a session carries this process's owner id and the
fencing token of its lease on that session, and the statement locks the lease row (`FOR SHARE`) and applies only if
the lease is still this process's, with that token, and unexpired. A process that lost a session (paused past its
lease, partitioned) can therefore change nothing about it, however late its write arrives: the takeover's lease
update and the stale write serialise on the lease row, and whichever comes second sees the other. A refused write
returns False, like any lost compare-and-set ("someone else owns this now"); `fenced` counts them. Without `leases`
(one process, or tests) nothing is fenced.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._pg import NOW, Database, describe_dsn
from ._protocol import MAY_LEAVE, ApprovalRecord, CallRecord, CallState, InboxDecision, JournalStats, StoredResult

if TYPE_CHECKING:
    import psycopg

    from ._leases import SessionLeases

__all__ = ["PostgresJournal"]

_WEEK = 7 * 24 * 3600.0
_T = "bridge_tool_calls"
_COLUMNS = (
    "session_id, tool_use_id, thread_id, tool_name, input_json, state, attempt, result_json, is_error, in_doubt, "
    "acked_event_id, posted_at, created_at, updated_at, approval_json"
)
_INBOX = "bridge_approval_inbox"
_FINISHED = ", ".join(f"'{s.value}'" for s in CallState if s.finished)


def _states(transition: str) -> str:
    return ", ".join(f"'{s.value}'" for s in sorted(MAY_LEAVE[transition]))


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _record(row: Sequence[Any]) -> CallRecord:
    (session_id, tool_use_id, thread_id, tool_name, input_json, state, attempt, result_json, is_error, in_doubt,
     acked_event_id, posted_at, created_at, updated_at, approval_json) = row  # fmt: skip
    result = None
    if result_json is not None:
        result = StoredResult(content=tuple(json.loads(result_json)), is_error=bool(is_error), in_doubt=bool(in_doubt))
    return CallRecord(
        session_id=session_id,
        tool_use_id=tool_use_id,
        tool_name=tool_name,
        input=json.loads(input_json),
        state=CallState(state),
        thread_id=thread_id,
        attempt=attempt,
        result=result,
        acked_event_id=acked_event_id,
        posted_at=posted_at,
        created_at=created_at,
        updated_at=updated_at,
        approval=None if approval_json is None else ApprovalRecord.from_json(json.loads(approval_json)),
    )


# The lease guard: a CTE that locks this process's lease row on the session, if it still holds it with this token.
_LEASE = (
    "lease AS (SELECT 1 FROM bridge_leases WHERE session_id = %(s)s AND owner_id = %(owner)s AND fence = %(fence)s"
    " AND status = 'active' AND expires_at > clock_timestamp() FOR SHARE)"
)
_GUARD = "AND EXISTS (SELECT 1 FROM lease)"

_SET = {
    "start": f"state = 'started', attempt = attempt + 1, owner_id = %(owner)s, fence = %(fence)s, updated_at = {NOW}",
    "complete": (
        "state = %(state)s, result_json = %(result)s, is_error = %(is_error)s, in_doubt = %(in_doubt)s, "
        f"updated_at = {NOW}"
    ),
    "requeue": f"state = 'received', updated_at = {NOW}",
    "await_approval": f"state = 'awaiting_approval', approval_json = %(approval)s, updated_at = {NOW}",
    "decide": f"state = 'received', approval_json = %(approval)s, updated_at = {NOW}",
    "mark_posted": f"state = 'posted', posted_at = {NOW}, updated_at = {NOW}",
    "mark_acked": f"state = 'acked', acked_event_id = %(event)s, updated_at = {NOW}",
    "abandon": f"state = 'abandoned', updated_at = {NOW}",
}


_IDS = {"one": "AND tool_use_id = %(t)s", "many": "AND tool_use_id = ANY(%(t)s)", "all": ""}


def _update(transition: str, *, fenced: bool, ids: str = "one") -> str:
    where = f"session_id = %(s)s {_IDS[ids]} AND state IN ({_states(transition)})"
    if not fenced:
        return f"UPDATE {_T} SET {_SET[transition]} WHERE {where} RETURNING tool_use_id"
    return f"WITH {_LEASE} UPDATE {_T} SET {_SET[transition]} WHERE {where} {_GUARD} RETURNING tool_use_id"


def _insert(*, fenced: bool) -> str:
    values = f"SELECT %(s)s, %(t)s, %(thread)s, %(name)s, %(input)s, 'received', {NOW}, {NOW}" + (
        " WHERE EXISTS (SELECT 1 FROM lease)" if fenced else ""
    )
    head = f"WITH {_LEASE} " if fenced else ""
    return (
        f"{head}INSERT INTO {_T} (session_id, tool_use_id, thread_id, tool_name, input_json, state, created_at, "
        f"updated_at) {values} ON CONFLICT (session_id, tool_use_id) DO NOTHING RETURNING seq"
    )


class PostgresJournal:
    """Records every call's lifecycle in PostgreSQL, shared by any number of bridge processes.

    The same contract as the SQLite journal (at most once across process death, the journal as the outbox), with no
    lock file: several processes use one database at once, and `leases` decides which of them may write about which
    session (see the module docstring). The tables are created, or migrated, at `open()`.

    Args:
        dsn: A libpq connection string or `postgresql://user@host/db` URL.
        leases: When given, every write is fenced by this process's lease on the call's session.
        retention: How long finished calls are kept, in seconds (None: forever); pruned at open.
        pool_size: Connections at most (each round trip holds one, in a worker thread).
        database: Share another component's pool (its `open`/`close` are reference-counted) instead of `dsn`'s own.

    Raises (from `open()`):
        JournalSchemaError: The tables were written by a newer tool-bridge.
        JournalError: The server is unreachable or refuses the connection, or the postgres extra is missing.
    """

    def __init__(
        self,
        dsn: str,
        *,
        leases: SessionLeases | None = None,
        retention: float | None = _WEEK,
        pool_size: int = 8,
        database: Database | None = None,
    ) -> None:
        self.dsn = dsn
        self.leases = leases
        self.retention = retention
        self.fenced = 0  # writes refused because this process did not hold the session's lease
        self._db = database or (leases.db if leases is not None else Database(dsn, max_size=pool_size))
        self._open = False

    def __repr__(self) -> str:
        return f"PostgresJournal({describe_dsn(self.dsn)!r}, {'open' if self._open else 'closed'})"

    async def __aenter__(self) -> PostgresJournal:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Connect, create or migrate the tables, and prune expired finished calls."""
        if self._open:
            return
        await self._db.open()
        self._open = True
        if self.retention is not None:
            await self.prune(self.retention)

    async def close(self) -> None:
        """Release the connections. Safe to call twice."""
        if self._open:
            self._open = False
            await self._db.close()

    # -- writes ------------------------------------------------------------------------------------------------------

    def _params(self, session_id: str, **values: Any) -> dict[str, Any] | None:
        """Statement parameters with the fence, or None when this process holds no lease on the session."""
        params: dict[str, Any] = {"s": session_id, "owner": None, "fence": None, **values}
        if self.leases is not None:
            fence = self.leases.token(session_id)
            if fence is None:
                self.fenced += 1
                return None
            params.update(owner=self.leases.owner_id, fence=fence)
        return params

    async def _write(self, query: str, params: dict[str, Any] | None) -> list[Any]:
        if params is None:
            return []

        def work(conn: psycopg.Connection[Any]) -> list[Any]:
            return [row[0] for row in conn.execute(query, params).fetchall()]

        rows = await self._db.run(work)
        if not rows and self.leases is not None and await self._lost(params):
            self.fenced += 1
        return rows

    async def _lost(self, params: Mapping[str, Any]) -> bool:
        """Whether a write that changed nothing was refused by the fence (rather than by the state)."""
        assert self.leases is not None
        valid = await self.leases.check(params["s"], params["fence"])
        return not valid

    async def receive(
        self,
        session_id: str,
        tool_use_id: str,
        tool_name: str,
        input: Mapping[str, Any],
        *,
        thread_id: str | None = None,
    ) -> bool:
        params = self._params(session_id, t=tool_use_id, thread=thread_id, name=tool_name, input=_dumps(dict(input)))
        return bool(await self._write(_insert(fenced=self.leases is not None), params))

    async def _move(self, transition: str, session_id: str, tool_use_id: str, **values: Any) -> bool:
        query = _update(transition, fenced=self.leases is not None)
        return bool(await self._write(query, self._params(session_id, t=tool_use_id, **values)))

    async def start(self, session_id: str, tool_use_id: str) -> bool:
        return await self._move("start", session_id, tool_use_id)

    async def complete(self, session_id: str, tool_use_id: str, result: StoredResult) -> bool:
        state = CallState.IN_DOUBT if result.in_doubt else CallState.COMPLETED
        values = {
            "state": state.value,
            "result": _dumps(list(result.content)),
            "is_error": result.is_error,
            "in_doubt": result.in_doubt,
        }
        return await self._move("complete", session_id, tool_use_id, **values)

    async def await_approval(self, session_id: str, tool_use_id: str, approval: ApprovalRecord) -> bool:
        return await self._move("await_approval", session_id, tool_use_id, approval=_dumps(approval.to_json()))

    async def decide(self, session_id: str, tool_use_id: str, approval: ApprovalRecord) -> bool:
        return await self._move("decide", session_id, tool_use_id, approval=_dumps(approval.to_json()))

    async def submit_decision(
        self, tool_use_id: str, *, approve: bool, by: str, reason: str | None = None, session_id: str | None = None
    ) -> int:
        """Not fenced: any process (or person) may decide; the bridge holding the call applies it."""
        query = (
            f"INSERT INTO {_INBOX} (session_id, tool_use_id, approve, decided_by, reason, made_at) "
            f"VALUES (%s, %s, %s, %s, %s, {NOW}) RETURNING seq"
        )

        def work(conn: psycopg.Connection[Any]) -> int:
            row = conn.execute(query, (session_id, tool_use_id, approve, by, reason)).fetchone()
            assert row is not None
            return int(row[0])

        return await self._db.run(work)

    async def decisions(self, after: int = 0) -> list[InboxDecision]:
        query = (
            f"SELECT seq, tool_use_id, approve, decided_by, reason, session_id, made_at FROM {_INBOX} "
            "WHERE seq > %s ORDER BY seq"
        )

        def work(conn: psycopg.Connection[Any]) -> list[InboxDecision]:
            rows = conn.execute(query, (after,)).fetchall()
            return [InboxDecision(int(q), t, bool(ok), by, why, s, float(at)) for q, t, ok, by, why, s, at in rows]

        return await self._db.run(work)

    async def requeue(self, session_id: str, tool_use_id: str) -> bool:
        return await self._move("requeue", session_id, tool_use_id)

    async def mark_posted(self, session_id: str, tool_use_ids: Sequence[str]) -> None:
        if tool_use_ids:
            query = _update("mark_posted", fenced=self.leases is not None, ids="many")
            await self._write(query, self._params(session_id, t=list(tool_use_ids)))

    async def mark_acked(self, session_id: str, tool_use_id: str, event_id: str) -> bool:
        return await self._move("mark_acked", session_id, tool_use_id, event=event_id)

    async def abandon(self, session_id: str, tool_use_ids: Sequence[str] | None = None) -> int:
        fenced = self.leases is not None
        if tool_use_ids is None:
            query = _update("abandon", fenced=fenced, ids="all")
            return len(await self._write(query, self._params(session_id)))
        if not tool_use_ids:
            return 0
        query = _update("abandon", fenced=fenced, ids="many")
        return len(await self._write(query, self._params(session_id, t=list(tool_use_ids))))

    # -- reads -------------------------------------------------------------------------------------------------------

    async def get(self, session_id: str, tool_use_id: str) -> CallRecord | None:
        query = f"SELECT {_COLUMNS} FROM {_T} WHERE session_id = %s AND tool_use_id = %s"

        def work(conn: psycopg.Connection[Any]) -> CallRecord | None:
            row = conn.execute(query, (session_id, tool_use_id)).fetchone()
            return None if row is None else _record(row)

        return await self._db.run(work)

    async def unfinished(self, session_id: str | None = None) -> list[CallRecord]:
        where = f"state NOT IN ({_FINISHED})" + (" AND session_id = %s" if session_id is not None else "")
        query = f"SELECT {_COLUMNS} FROM {_T} WHERE {where} ORDER BY seq"
        args = (session_id,) if session_id is not None else ()

        def work(conn: psycopg.Connection[Any]) -> list[CallRecord]:
            return [_record(row) for row in conn.execute(query, args).fetchall()]

        return await self._db.run(work)

    async def awaiting_approval(self) -> list[CallRecord]:
        """Calls parked until someone decides, oldest first (for `bridge approvals list`)."""
        query = f"SELECT {_COLUMNS} FROM {_T} WHERE state = %s ORDER BY seq"

        def work(conn: psycopg.Connection[Any]) -> list[CallRecord]:
            rows = conn.execute(query, (CallState.AWAITING_APPROVAL.value,)).fetchall()
            return [_record(row) for row in rows]

        return await self._db.run(work)

    async def find(self, tool_use_id: str, session_id: str | None = None) -> list[CallRecord]:
        """Every call with this id (in `session_id` only, if given): ids are unique per session, not globally."""
        query = f"SELECT {_COLUMNS} FROM {_T} WHERE tool_use_id = %s" + (" AND session_id = %s" if session_id else "")
        args = (tool_use_id, session_id) if session_id else (tool_use_id,)

        def work(conn: psycopg.Connection[Any]) -> list[CallRecord]:
            return [_record(row) for row in conn.execute(query, args).fetchall()]

        return await self._db.run(work)

    async def prune(self, older_than: float) -> int:
        query = f"DELETE FROM {_T} WHERE state IN ({_FINISHED}) AND updated_at <= {NOW} - %s"

        def work(conn: psycopg.Connection[Any]) -> int:
            conn.execute(f"DELETE FROM {_INBOX} WHERE made_at <= {NOW} - %s", (older_than,))
            return conn.execute(query, (older_than,)).rowcount

        return await self._db.run(work)

    async def stats(self) -> JournalStats:
        def work(conn: psycopg.Connection[Any]) -> JournalStats:
            rows = conn.execute(f"SELECT state, count(*) FROM {_T} GROUP BY state").fetchall()
            by_state = {str(state): int(n) for state, n in rows}
            oldest = conn.execute(
                f"SELECT {NOW} - min(created_at) FROM {_T} WHERE state NOT IN ({_FINISHED})"
            ).fetchone()
            size = conn.execute(f"SELECT pg_total_relation_size('{_T}')").fetchone()
            age = None if oldest is None or oldest[0] is None else max(0.0, float(oldest[0]))
            return JournalStats(
                calls=sum(by_state.values()),
                by_state=by_state,
                oldest_unfinished_age=age,
                size_bytes=int(size[0]) if size else None,
            )

        return await self._db.run(work)
