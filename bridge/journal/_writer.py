"""Group commit: many concurrent journal operations share one transaction and one fsync.

A durable transition costs an fsync, and an fsync costs the same for one row as for a hundred. So operations are
queued, and whoever finds the connection idle becomes the *leader*: it takes everything queued, runs it in one
`BEGIN IMMEDIATE ... COMMIT` on a worker thread, and wakes every waiter. Operations that arrive during that commit
queue up and go out together in the next one, so batches grow by themselves with load, with no timer and no added
latency when the journal is idle.

Why this shape rather than a dedicated writer thread: a dedicated thread would have to wake the event loop when a
commit lands, which needs backend-specific plumbing (asyncio's `call_soon_threadsafe`, trio's tokens). Running each
batch through `anyio.to_thread.run_sync` gets that portably. The connection is still used by one thread at a time
(only the leader touches it), which is the single-writer discipline SQLite wants, and the batch runs under a private
`CapacityLimiter(1)` so it never queues behind sync tools that fill anyio's default thread pool.

Cancellation: an operation cancelled while still queued is withdrawn and never applied. Once taken into a batch it is
applied (the batch runs shielded, since other callers' operations share it), and a cancelled caller just does not see
the result. Either way, no transition is ever half-applied.
"""

from __future__ import annotations

import enum
import sqlite3
from collections.abc import Callable
from typing import Generic, TypeVar

import anyio
import anyio.lowlevel

from .._errors import JournalError

__all__ = ["Durability", "GroupCommit", "Work"]

T = TypeVar("T")
Work = Callable[[sqlite3.Connection], T]

_GATHER_PASSES = 8
"""At most this many event-loop passes spent letting a batch grow (`GroupCommit._gather`)."""


class Durability(enum.IntEnum):
    """What an operation needs from its batch's commit; a batch gets the strongest any of its operations asks for."""

    READ = 0
    """Reads only: no transaction."""
    COMMITTED = 1
    """Committed before returning, fsynced by the next durable commit or checkpoint (`synchronous=NORMAL`). A power
    loss may undo it, never reorder it: the WAL is append-only, so a later fsync covers it too."""
    DURABLE = 2
    """Committed and fsynced before returning (`synchronous=FULL`)."""


class _Pending(Generic[T]):
    __slots__ = ("done", "durability", "error", "event", "lead", "result", "work")

    def __init__(self, work: Work[T], durability: Durability) -> None:
        self.work = work
        self.durability = durability
        self.event = anyio.Event()
        self.lead = False
        self.done = False
        self.result: T | None = None
        self.error: BaseException | None = None


class GroupCommit:
    """Serialises work on one SQLite connection and commits concurrent writes together.

    Args:
        conn: An autocommit connection (`isolation_level=None`, `check_same_thread=False`); owned from now on.
        name: Used in error messages (the journal's path).
        on_write: Called inside each batch's write transaction before its commit (retention piggybacks on it);
            skipped when a failed batch is retried one operation at a time.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        name: str,
        on_write: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        self._conn = conn
        self._name = name
        self._on_write = on_write
        self._limiter = anyio.CapacityLimiter(1)
        self._queue: list[_Pending[object]] = []
        self._busy = False  # a leader is running a batch, or has been elected and is about to
        self._closed = False
        self._synchronous = ""
        self.commits = 0  # write transactions committed; with `operations`, how well group commit batches
        self.fsyncs = 0  # of which durable (synchronous=FULL)
        self.operations = 0

    async def run(self, work: Work[T], durability: Durability) -> T:
        """Run `work(conn)` in the next batch and return its result once the batch committed as `durability` asks.

        Raises:
            JournalError: The journal is closed, or SQLite failed (disk full, I/O error); the work was not applied.
        """
        if self._closed:
            raise JournalError(f"journal {self._name} is closed")
        return await self._submit(work, durability)

    async def close(self, final: Work[None]) -> None:
        """Refuse new work, let queued work finish, then run `final` (which closes the connection)."""
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            await self._submit(lambda conn: None, Durability.READ)  # a barrier: everything queued before it is done
            await anyio.to_thread.run_sync(final, self._conn, limiter=self._limiter)

    async def _submit(self, work: Work[T], durability: Durability) -> T:
        pending: _Pending[T] = _Pending(work, durability)
        queued: _Pending[object] = pending  # type: ignore[assignment]
        self._queue.append(queued)
        if self._busy:
            try:
                await pending.event.wait()
            except BaseException:
                if queued in self._queue:
                    self._queue.remove(queued)  # withdrawn before anyone ran it
                if pending.lead and not pending.done:
                    self._busy = False  # we were elected but will not lead: pass it on
                    self._elect()
                raise
            if not pending.lead:
                return self._outcome(pending)
        self._busy = True
        await self._gather()  # never raises: it only yields, shielded
        batch, self._queue = self._queue, []
        try:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._execute, batch, limiter=self._limiter)
        finally:
            for item in batch:
                item.event.set()
            self._busy = False
            self._elect()
        return self._outcome(pending)

    async def _gather(self) -> None:
        """Let tasks already runnable queue their operations before the leader takes the batch.

        The tasks a commit wakes usually queue their next operation a few event-loop passes later (a call's `start`
        is followed by its tool, then its `complete`). Taking the queue at once would send the first of them alone
        and make the rest wait a whole commit for it; yielding while the queue still grows lets them share one. An
        idle journal pays one pass, no timer.
        """
        for _ in range(_GATHER_PASSES):
            size = len(self._queue)
            await anyio.lowlevel.cancel_shielded_checkpoint()
            if len(self._queue) == size:
                return

    def _elect(self) -> None:
        """Make the oldest queued operation the next leader, reserving the role so nobody else takes it."""
        if not self._busy and self._queue:
            self._busy = True
            leader = self._queue[0]
            leader.lead = True
            leader.event.set()

    def _outcome(self, pending: _Pending[T]) -> T:
        if not pending.done and pending.error is None:
            raise JournalError(f"journal {self._name}: the operation was interrupted and not applied")
        if pending.error is not None:
            if isinstance(pending.error, sqlite3.Error):
                raise JournalError(f"journal {self._name}: {pending.error}") from pending.error
            raise pending.error
        return pending.result  # type: ignore[return-value]

    def _execute(self, batch: list[_Pending[object]]) -> None:
        """In the worker thread: run the batch in one transaction; if it fails, run each item alone."""
        self.operations += len(batch)
        try:
            self._transaction(batch, maintain=True)
        except Exception as exc:
            if len(batch) == 1:
                batch[0].error = exc
            else:
                for item in batch:  # isolate the failing operation; the others still commit
                    try:
                        self._transaction([item], maintain=False)
                    except Exception as single:
                        item.error = single

    def _transaction(self, batch: list[_Pending[object]], *, maintain: bool) -> None:
        conn = self._conn
        durability = max(item.durability for item in batch)
        write = durability is not Durability.READ
        if write:
            synchronous = "FULL" if durability is Durability.DURABLE else "NORMAL"
            if synchronous != self._synchronous:
                conn.execute(f"PRAGMA synchronous = {synchronous}")
                self._synchronous = synchronous
            conn.execute("BEGIN IMMEDIATE")
        try:
            results = [item.work(conn) for item in batch]
            if write:
                if maintain and self._on_write is not None:
                    self._on_write(conn)
                conn.execute("COMMIT")
                self.commits += 1
                self.fsyncs += durability is Durability.DURABLE
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        for item, result in zip(batch, results, strict=True):
            item.result = result
            item.done = True
