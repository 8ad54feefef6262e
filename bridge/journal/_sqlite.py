"""A durable `Journal` in one SQLite file: the daemon's default.

Three pieces. An exclusive lock file (`_lock.py`) makes this process the journal's only user, so a `started` row found
at open belongs to a process that is certainly dead, and the file's calls change only through us (other processes
only read them, and append approval decisions to the separate inbox table, see `_inbox.py`). Because of that, an
in-memory mirror of the *unfinished* calls is authoritative: every compare-and-set is decided there, on the event
loop, atomically and at memory speed, exactly as `MemoryJournal` decides it (both read `MAY_LEAVE`). And a writer
thread (`_writer.py`) makes the file follow: transitions are queued in order and each batch of them is written as one
statement in one transaction (`_statements.py`), so concurrent calls share a commit and an fsync (group commit).

Who waits for what: `start()` and `complete()` wait until their row is fsynced (WAL, `synchronous=FULL`): the
at-most-once line and the outbox. `receive()` of a call the mirror does not hold returns at once when a Bloom filter
of every key in the file (`_keys.py`) says it was certainly never seen, which is almost always; otherwise (a replay,
or a rare false positive) it asks the file. Reads of finished calls and `stats()` wait for the writes queued before
them. The rest (receipts, requeue, posted, acked, abandon) do not wait: a crash may lose the latest of them, never
reorder them, and each is re-derived from the session's history after a restart.

Measured (bench/ workload 5, 200 trivial calls through the Bridge on 2 shared cores), what remains of durability's
cost is not the fsync (turning it off changed nothing measurable) but the `start()` wait: with the loop saturated,
the writer thread needs the GIL back after each SQLite call and the loop needs a turn to see the commit.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio

from .._errors import JournalError
from . import _statements as sql
from ._keys import KeyFilter
from ._lock import JournalLock
from ._migrations import SCHEMA_VERSION, check_integrity, check_version, migrate
from ._protocol import MAY_LEAVE, ApprovalRecord, CallRecord, CallState, InboxDecision, JournalStats, StoredResult
from ._writer import Durability, Writer

__all__ = ["SqliteJournal"]

_log = logging.getLogger("bridge.journal")

_WEEK = 7 * 24 * 3600.0
_FILTER_MAX = 500_000  # journals with more calls than this ask the file on every new call (building costs ~3 µs/key)
Key = tuple[str, str]


class SqliteJournal:
    """Records every call's lifecycle in a SQLite file so a restarted bridge neither loses nor re-runs calls.

    `start()` returns only after the `started` row has been fsynced, which is what makes "never run a non-idempotent
    call twice" hold across SIGKILL and power loss, and `complete()` only after the result has (the journal is the
    outbox). Concurrent transitions share one transaction and one fsync (group commit), so the cost per call falls
    as concurrency rises; transitions nobody needs to wait for (posted, acked) cost the caller nothing.

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
        self._writer: Writer | None = None
        self._next_prune = 0.0
        self._calls: dict[Key, CallRecord] = {}  # the unfinished calls: the authority for every transition
        self._seq: dict[Key, int] = {}  # arrival order of the unfinished calls
        self._arrivals = 0
        self._keys: KeyFilter | None = None  # every key in the file, when there are few enough to hold

    def __repr__(self) -> str:
        state = "open" if self._writer is not None else "closed"
        return f"SqliteJournal({str(self.path)!r}, {state})"

    async def __aenter__(self) -> SqliteJournal:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- lifecycle ---------------------------------------------------------------------------------------------------

    async def open(self) -> None:
        """Lock the journal, check its integrity and schema, migrate it if older, and prune expired calls."""
        if self._writer is not None:
            return
        await anyio.to_thread.run_sync(lambda: self.path.parent.mkdir(parents=True, exist_ok=True))
        try:
            await self._lock.acquire(wait=self.wait_for_lock)
            with anyio.CancelScope(shield=True):  # a cancelled open must not leak the connection it made
                conn, unfinished, self._keys = await anyio.to_thread.run_sync(self._connect)
        except BaseException:
            self._lock.release()  # also when cancelled just after taking it
            raise
        self._calls = {(r.session_id, r.tool_use_id): r for _, r in unfinished}
        self._seq = {(r.session_id, r.tool_use_id): n for n, (_, r) in enumerate(unfinished)}
        self._arrivals = len(unfinished)
        self._writer = Writer(conn, sql.apply, name=str(self.path), on_write=self._maybe_prune)

    def _connect(self) -> tuple[sqlite3.Connection, list[tuple[int, CallRecord]], KeyFilter | None]:
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
            unfinished = sql.read_unfinished(conn)
            keys = sql.read_keys(conn, _FILTER_MAX)
            for statement in sql.SETUP:
                conn.execute(statement)
        except sqlite3.Error as exc:
            conn.close()
            raise JournalError(f"cannot open journal {self.path}: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        return conn, unfinished, keys

    async def close(self) -> None:
        """Write everything queued, close the file and release the lock. Safe to call twice."""
        writer, self._writer = self._writer, None
        try:
            if writer is not None:
                await writer.close()
        finally:
            self._calls, self._seq, self._keys = {}, {}, None
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
        """Journal writes and reads run so far."""
        return self._writer.operations if self._writer is not None else 0

    def _open_writer(self) -> Writer:
        if self._writer is None:
            raise JournalError(f"journal {self.path} is not open: call `await journal.open()` or use `async with`")
        self._writer.check()
        return self._writer

    def _prune_now(self, conn: sqlite3.Connection) -> int:
        self._next_prune = time.monotonic() + self.prune_every
        if self.retention is None:
            return 0
        cutoff = time.time() - self.retention
        conn.execute(sql.PRUNE_INBOX, (cutoff,))
        return int(conn.execute(sql.PRUNE, (cutoff,)).rowcount)

    def _maybe_prune(self, conn: sqlite3.Connection) -> None:
        if time.monotonic() >= self._next_prune:
            pruned = self._prune_now(conn)
            if pruned:
                _log.debug("journal %s: pruned %d finished calls", self.path, pruned)

    # -- transitions: decided in the mirror, then queued for the file ------------------------------------------------

    def _move(self, transition: str, key: Key, **changes: Any) -> CallRecord | None:
        """The compare-and-set: the new record if the call may leave its state by `transition`, else None."""
        record = self._calls.get(key)
        if record is None or record.state not in MAY_LEAVE[transition]:
            return None
        moved = replace(record, updated_at=time.time(), **changes)
        if moved.state.finished:
            del self._calls[key]
            del self._seq[key]
        else:
            self._calls[key] = moved
        return moved

    async def receive(
        self,
        session_id: str,
        tool_use_id: str,
        tool_name: str,
        input: Mapping[str, Any],
        *,
        thread_id: str | None = None,
    ) -> bool:
        writer = self._open_writer()
        key = (session_id, tool_use_id)
        if key in self._calls:
            return False
        input_json = sql.dumps(dict(input))
        now = time.time()
        record = CallRecord(
            session_id,
            tool_use_id,
            tool_name,
            dict(input),
            CallState.RECEIVED,
            thread_id,
            created_at=now,
            updated_at=now,
        )
        op = ("receive", (session_id, tool_use_id, thread_id, tool_name, input_json, now))
        keys = self._keys
        if keys is not None and not keys.full and key not in keys:  # certainly never seen: no need to ask the file
            keys.add(key)
            self._remember(key, record)
            writer.submit(op, Durability.QUEUED, wait=False)
            return True
        new = False

        def added(seq: int | None) -> None:  # on the loop, even if this caller was cancelled meanwhile
            nonlocal new
            if seq is not None and key not in self._calls:
                self._remember(key, record)
                new = True

        if keys is not None:
            keys.add(key)
        await writer.wait(writer.submit(op, Durability.QUEUED, wait=True, on_done=added))
        return new

    def _remember(self, key: Key, record: CallRecord) -> None:
        self._calls[key] = record
        self._seq[key] = self._arrivals = self._arrivals + 1

    async def start(self, session_id: str, tool_use_id: str) -> bool:
        writer = self._open_writer()
        key = (session_id, tool_use_id)
        record = self._calls.get(key)
        moved = self._move("start", key, state=CallState.STARTED, attempt=record.attempt + 1 if record else 1)
        if moved is None:
            return False
        op = ("start", (*key, moved.attempt, moved.updated_at))
        await writer.wait(writer.submit(op, Durability.DURABLE, wait=True))
        return True

    async def complete(self, session_id: str, tool_use_id: str, result: StoredResult) -> bool:
        writer = self._open_writer()
        content_json = sql.dumps(list(result.content))
        state = CallState.IN_DOUBT if result.in_doubt else CallState.COMPLETED
        moved = self._move("complete", (session_id, tool_use_id), state=state, result=result)
        if moved is None:
            return False
        values = (state.value, content_json, result.is_error, result.in_doubt, moved.updated_at)
        op = ("complete", (session_id, tool_use_id, *values))
        await writer.wait(writer.submit(op, Durability.DURABLE, wait=True))
        return True

    async def await_approval(self, session_id: str, tool_use_id: str, approval: ApprovalRecord) -> bool:
        parked = CallState.AWAITING_APPROVAL
        return await self._approval_move("await_approval", parked, session_id, tool_use_id, approval)

    async def decide(self, session_id: str, tool_use_id: str, approval: ApprovalRecord) -> bool:
        return await self._approval_move("decide", CallState.RECEIVED, session_id, tool_use_id, approval)

    async def _approval_move(
        self, kind: str, state: CallState, session_id: str, tool_use_id: str, approval: ApprovalRecord
    ) -> bool:
        writer = self._open_writer()
        moved = self._move(kind, (session_id, tool_use_id), state=state, approval=approval)
        if moved is None:
            return False
        op = (kind, (session_id, tool_use_id, sql.dumps(approval.to_json()), moved.updated_at))
        await writer.wait(writer.submit(op, Durability.DURABLE, wait=True))
        return True

    async def submit_decision(
        self, tool_use_id: str, *, approve: bool, by: str, reason: str | None = None, session_id: str | None = None
    ) -> int:
        seq: int = await self._open_writer().run(sql.add_decision(tool_use_id, approve, by, reason, session_id))
        return seq

    async def decisions(self, after: int = 0) -> list[InboxDecision]:
        found: list[InboxDecision] = await self._open_writer().run(sql.read_decisions(after))
        return found

    async def requeue(self, session_id: str, tool_use_id: str) -> bool:
        writer = self._open_writer()
        moved = self._move("requeue", (session_id, tool_use_id), state=CallState.RECEIVED)
        if moved is not None:
            writer.submit(("requeue", (session_id, tool_use_id, moved.updated_at)), Durability.QUEUED, wait=False)
        return moved is not None

    async def mark_posted(self, session_id: str, tool_use_ids: Sequence[str]) -> None:
        writer = self._open_writer()
        for tool_use_id in tool_use_ids:
            now = time.time()
            moved = self._move("mark_posted", (session_id, tool_use_id), state=CallState.POSTED, posted_at=now)
            if moved is not None:
                writer.submit(
                    ("mark_posted", (session_id, tool_use_id, now, moved.updated_at)), Durability.QUEUED, wait=False
                )

    async def mark_acked(self, session_id: str, tool_use_id: str, event_id: str) -> bool:
        writer = self._open_writer()
        moved = self._move("mark_acked", (session_id, tool_use_id), state=CallState.ACKED, acked_event_id=event_id)
        if moved is not None:
            op = ("mark_acked", (session_id, tool_use_id, event_id, moved.updated_at))
            writer.submit(op, Durability.QUEUED, wait=False)
        return moved is not None

    async def abandon(self, session_id: str, tool_use_ids: Sequence[str] | None = None) -> int:
        writer = self._open_writer()
        if tool_use_ids is None:
            tool_use_ids = [tid for (sid, tid) in self._calls if sid == session_id]
        count = 0
        for tool_use_id in tool_use_ids:
            moved = self._move("abandon", (session_id, tool_use_id), state=CallState.ABANDONED)
            if moved is not None:
                writer.submit(("abandon", (session_id, tool_use_id, moved.updated_at)), Durability.QUEUED, wait=False)
                count += 1
        return count

    # -- reads: unfinished calls from the mirror, the rest from the file after the writes queued before them ---------

    async def get(self, session_id: str, tool_use_id: str) -> CallRecord | None:
        writer = self._open_writer()
        record = self._calls.get((session_id, tool_use_id))
        if record is not None:
            return record
        found: CallRecord | None = await writer.run(sql.read_record(session_id, tool_use_id))
        return found

    async def unfinished(self, session_id: str | None = None) -> list[CallRecord]:
        self._open_writer()
        keys = sorted(self._seq, key=self._seq.__getitem__)
        return [self._calls[k] for k in keys if session_id is None or k[0] == session_id]

    async def prune(self, older_than: float) -> int:
        cutoff = time.time() - older_than
        pruned: int = await self._open_writer().run(lambda conn: conn.execute(sql.PRUNE, (cutoff,)).rowcount)
        return pruned

    async def stats(self) -> JournalStats:
        stats: JournalStats = await self._open_writer().run(sql.read_stats(self.path))
        return stats
