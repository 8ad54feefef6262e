"""A durable `Journal` in one SQLite file: the daemon's default.

Durability: WAL, and `start()`/`complete()` commit with `synchronous=FULL`, so the WAL is fsynced before they return;
the other transitions commit without waiting for an fsync (the next durable commit covers them; see `_protocol.py`
for why that is safe). Every transition is a compare-and-set `UPDATE ... WHERE state IN (...)` inside
`BEGIN IMMEDIATE`. Concurrent transitions share one transaction and one fsync (group commit, `_writer.py`), which is
what keeps durability cheap under load. An exclusive lock file (`_lock.py`) guarantees one process per journal, so a
`started` row found at open belongs to a process that is certainly dead.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import anyio

from .._errors import JournalError
from ._lock import JournalLock
from ._migrations import SCHEMA_VERSION, check_integrity, check_version, migrate
from ._protocol import CallRecord, CallState, JournalStats, StoredResult
from ._writer import Durability, GroupCommit, Work

__all__ = ["SqliteJournal"]

_log = logging.getLogger("bridge.journal")

T = TypeVar("T")

_WEEK = 7 * 24 * 3600.0
# receive, requeue, mark_posted, mark_acked, abandon and prune may be lost to a power cut (never reordered): each is
# re-derived from the session's history after a restart. start and complete are the at-most-once line and the outbox.
_LAZY = Durability.COMMITTED


def _states(states: Sequence[CallState]) -> str:
    return ", ".join(f"'{s.value}'" for s in states)


_FINISHED = _states([s for s in CallState if s.finished])
_POSTABLE = _states([CallState.COMPLETED, CallState.IN_DOUBT])
_KEY = "session_id = ? AND tool_use_id = ?"
_COLUMNS = (
    "session_id, tool_use_id, thread_id, tool_name, input_json, state, attempt, result_json, is_error, in_doubt, "
    "acked_event_id, posted_at, created_at, updated_at"
)

_RECEIVE = (
    "INSERT INTO tool_calls (session_id, tool_use_id, thread_id, tool_name, input_json, state, created_at, updated_at)"
    " VALUES (?, ?, ?, ?, ?, 'received', ?, ?) ON CONFLICT (session_id, tool_use_id) DO NOTHING"
)
_START = (
    "UPDATE tool_calls SET updated_at = ?, state = 'started', attempt = attempt + 1"
    f" WHERE {_KEY} AND state = 'received'"
)
_COMPLETE = (
    "UPDATE tool_calls SET updated_at = ?, state = ?, result_json = ?, is_error = ?, in_doubt = ?"
    f" WHERE {_KEY} AND state IN ('received', 'started')"
)
_REQUEUE = f"UPDATE tool_calls SET updated_at = ?, state = 'received' WHERE {_KEY} AND state = 'started'"
_POSTED = (
    f"UPDATE tool_calls SET updated_at = ?, state = 'posted', posted_at = ? WHERE {_KEY} AND state IN ({_POSTABLE})"
)
_ACKED = (
    "UPDATE tool_calls SET updated_at = ?, state = 'acked', acked_event_id = ?"
    f" WHERE {_KEY} AND state IN ({_POSTABLE}, 'posted')"
)
_ABANDON = f"UPDATE tool_calls SET state = 'abandoned', updated_at = ? WHERE {_KEY} AND state NOT IN ({_FINISHED})"
_ABANDON_SESSION = (
    f"UPDATE tool_calls SET state = 'abandoned', updated_at = ? WHERE session_id = ? AND state NOT IN ({_FINISHED})"
)
_GET = f"SELECT {_COLUMNS} FROM tool_calls WHERE {_KEY}"
_UNFINISHED = f"SELECT {_COLUMNS} FROM tool_calls WHERE state NOT IN ({_FINISHED})"
_PRUNE = f"DELETE FROM tool_calls WHERE state IN ({_FINISHED}) AND updated_at <= ?"


def _record(row: tuple[Any, ...]) -> CallRecord:
    (session_id, tool_use_id, thread_id, tool_name, input_json, state, attempt, result_json, is_error, in_doubt,
     acked_event_id, posted_at, created_at, updated_at) = row  # fmt: skip
    result = None
    if result_json is not None:
        content = tuple(json.loads(result_json))
        result = StoredResult(content=content, is_error=bool(is_error), in_doubt=bool(in_doubt))
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
    )


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class SqliteJournal:
    """Records every call's lifecycle in a SQLite file so a restarted bridge neither loses nor re-runs calls.

    `start()` returns only after the `started` row has been fsynced, which is what makes "never run a non-idempotent
    call twice" hold across SIGKILL and power loss, and `complete()` only after the result has (the journal is the
    outbox). Other transitions are committed when they return but ride on the next fsync. Concurrent transitions are
    committed together (group commit), so the cost per call falls as concurrency rises.

    The journal belongs to one process at a time: `open()` takes an exclusive lock on `<path>.lock` and raises
    `JournalLockedError` naming the holder if another process has it (or waits, with `wait_for_lock=True`, which
    makes a hot standby). Keep the file on a local disk; network filesystems break both the lock and the WAL.

    Args:
        path: The journal file; parent directories are created. `<path>.lock`, `-wal` and `-shm` live beside it.
        wait_for_lock: Wait for the holder to exit instead of failing when the journal is in use.
        retention: How long finished (acked or abandoned) calls are kept, in seconds or as a timedelta; they are
            pruned at open and then every `prune_every` seconds while writing. None keeps them forever. Keep it
            well above the longest session you serve, so a call is never forgotten while its session's history can
            still replay it.
        prune_every: Seconds between automatic prunes; the prune rides along in a transition's transaction.
        busy_timeout: Seconds SQLite waits on a file lock held by an outside reader (a backup, the sqlite3 shell).

    Raises (from `open()`):
        JournalLockedError: Another process holds the journal.
        JournalSchemaError: The file was written by a newer tool-bridge.
        JournalError: The file is damaged, is not a tool-bridge journal, or cannot be opened.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        wait_for_lock: bool = False,
        retention: float | timedelta | None = _WEEK,
        prune_every: float = 600.0,
        busy_timeout: float = 5.0,
    ) -> None:
        self.path = Path(path)
        self.wait_for_lock = wait_for_lock
        self.retention = retention.total_seconds() if isinstance(retention, timedelta) else retention
        self.prune_every = prune_every
        self.busy_timeout = busy_timeout
        self.migrated_from: int | None = None  # the schema version found at open, when it was migrated
        self._lock = JournalLock(self.path)
        self._writer: GroupCommit | None = None
        self._next_prune = 0.0

    def __repr__(self) -> str:
        state = "open" if self._writer is not None else "closed"
        return f"SqliteJournal({str(self.path)!r}, {state})"

    async def __aenter__(self) -> SqliteJournal:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Lock the journal, check its integrity and schema, migrate it if older, and prune expired calls."""
        if self._writer is not None:
            return
        await anyio.to_thread.run_sync(lambda: self.path.parent.mkdir(parents=True, exist_ok=True))
        try:
            await self._lock.acquire(wait=self.wait_for_lock)
            with anyio.CancelScope(shield=True):  # a cancelled open must not leak the connection it made
                conn = await anyio.to_thread.run_sync(self._connect)
        except BaseException:
            self._lock.release()  # also when cancelled just after taking it
            raise
        self._writer = GroupCommit(conn, name=str(self.path), on_write=self._maybe_prune)

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise JournalError(f"cannot open journal {self.path}: {exc}") from exc
        try:
            check_version(conn, self.path)  # refuse before writing anything, even the WAL switch
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise JournalError(f"journal {self.path}: SQLite refused WAL mode (got {mode!r}); use a local disk")
            conn.execute("PRAGMA synchronous = FULL")
            check_integrity(conn, self.path)
            found = migrate(conn, self.path)
            self.migrated_from = found if 0 < found < SCHEMA_VERSION else None
            if self.migrated_from is not None:
                _log.info("journal %s migrated from schema version %d", self.path, found)
            self._prune_now(conn)
        except sqlite3.Error as exc:
            conn.close()
            raise JournalError(f"cannot open journal {self.path}: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        return conn

    async def close(self) -> None:
        """Wait for queued transitions, close the file and release the lock. Safe to call twice."""
        writer, self._writer = self._writer, None
        try:
            if writer is not None:
                await writer.close(lambda conn: conn.close())
        finally:
            self._lock.release()

    @property
    def commits(self) -> int:
        """Write transactions so far; with `fsyncs` and `operations`, shows how well group commit batches."""
        return self._writer.commits if self._writer is not None else 0

    @property
    def fsyncs(self) -> int:
        """Durable commits (WAL fsyncs) so far."""
        return self._writer.fsyncs if self._writer is not None else 0

    @property
    def operations(self) -> int:
        """Journal operations run so far by this open journal."""
        return self._writer.operations if self._writer is not None else 0

    async def _run(self, work: Work[T], durability: Durability) -> T:
        if self._writer is None:
            raise JournalError(f"journal {self.path} is not open: call `await journal.open()` or use `async with`")
        return await self._writer.run(work, durability)

    async def _cas(self, sql: str, params: tuple[Any, ...], durability: Durability = _LAZY) -> bool:
        """One compare-and-set UPDATE with `updated_at` first and the call's key last: True if it matched."""
        return await self._run(lambda c: c.execute(sql, (time.time(), *params)).rowcount == 1, durability)

    def _prune_now(self, conn: sqlite3.Connection) -> int:
        self._next_prune = time.monotonic() + self.prune_every
        if self.retention is None:
            return 0
        return conn.execute(_PRUNE, (time.time() - self.retention,)).rowcount

    def _maybe_prune(self, conn: sqlite3.Connection) -> None:
        if time.monotonic() >= self._next_prune:
            pruned = self._prune_now(conn)
            if pruned:
                _log.debug("journal %s: pruned %d finished calls", self.path, pruned)

    async def receive(
        self,
        session_id: str,
        tool_use_id: str,
        tool_name: str,
        input: Mapping[str, Any],
        *,
        thread_id: str | None = None,
    ) -> bool:
        input_json = _dumps(dict(input))

        def work(conn: sqlite3.Connection) -> bool:
            now = time.time()
            params = (session_id, tool_use_id, thread_id, tool_name, input_json, now, now)
            return conn.execute(_RECEIVE, params).rowcount == 1

        return await self._run(work, _LAZY)

    async def start(self, session_id: str, tool_use_id: str) -> bool:
        return await self._cas(_START, (session_id, tool_use_id), Durability.DURABLE)

    async def complete(self, session_id: str, tool_use_id: str, result: StoredResult) -> bool:
        state = CallState.IN_DOUBT if result.in_doubt else CallState.COMPLETED
        values = (state.value, _dumps(list(result.content)), result.is_error, result.in_doubt)
        return await self._cas(_COMPLETE, (*values, session_id, tool_use_id), Durability.DURABLE)

    async def requeue(self, session_id: str, tool_use_id: str) -> bool:
        return await self._cas(_REQUEUE, (session_id, tool_use_id))

    async def mark_posted(self, session_id: str, tool_use_ids: Sequence[str]) -> None:
        def work(conn: sqlite3.Connection) -> None:
            now = time.time()
            conn.executemany(_POSTED, [(now, now, session_id, tid) for tid in tool_use_ids])

        await self._run(work, _LAZY)

    async def mark_acked(self, session_id: str, tool_use_id: str, event_id: str) -> bool:
        return await self._cas(_ACKED, (event_id, session_id, tool_use_id))

    async def abandon(self, session_id: str, tool_use_ids: Sequence[str] | None = None) -> int:
        def work(conn: sqlite3.Connection) -> int:
            now = time.time()
            if tool_use_ids is None:
                return conn.execute(_ABANDON_SESSION, (now, session_id)).rowcount
            return sum(conn.execute(_ABANDON, (now, session_id, tid)).rowcount for tid in tool_use_ids)

        return await self._run(work, _LAZY)

    async def get(self, session_id: str, tool_use_id: str) -> CallRecord | None:
        def work(conn: sqlite3.Connection) -> CallRecord | None:
            row = conn.execute(_GET, (session_id, tool_use_id)).fetchone()
            return None if row is None else _record(row)

        return await self._run(work, Durability.READ)

    async def unfinished(self, session_id: str | None = None) -> list[CallRecord]:
        def work(conn: sqlite3.Connection) -> list[CallRecord]:
            if session_id is None:
                rows = conn.execute(_UNFINISHED + " ORDER BY seq")
            else:
                rows = conn.execute(_UNFINISHED + " AND session_id = ? ORDER BY seq", (session_id,))
            return [_record(row) for row in rows]

        return await self._run(work, Durability.READ)

    async def prune(self, older_than: float) -> int:
        return await self._run(lambda c: c.execute(_PRUNE, (time.time() - older_than,)).rowcount, _LAZY)

    async def stats(self) -> JournalStats:
        def work(conn: sqlite3.Connection) -> JournalStats:
            by_state = {
                str(state): int(n) for state, n in conn.execute("SELECT state, COUNT(*) FROM tool_calls GROUP BY state")
            }
            (oldest,) = conn.execute(
                f"SELECT MIN(created_at) FROM tool_calls WHERE state NOT IN ({_FINISHED})"
            ).fetchone()
            size = 0
            for suffix in ("", "-wal"):
                with contextlib.suppress(FileNotFoundError):
                    size += os.stat(f"{self.path}{suffix}").st_size
            return JournalStats(
                calls=sum(by_state.values()),
                by_state=by_state,
                oldest_unfinished_age=None if oldest is None else max(0.0, time.time() - oldest),
                size_bytes=size,
            )

        return await self._run(work, Durability.READ)
