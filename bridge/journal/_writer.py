"""The SQLite journal's writer: one dedicated thread, one connection, group commit.

The event loop never touches SQLite. Journal operations are queued (a list append under a lock held for
microseconds); the writer thread takes everything queued, applies it as one transaction (one statement, see
`_statements.py`), and starts over. Work that arrives while a commit is in flight goes out together in the next
one, so batches grow with load with no timer and no added latency when the journal is idle: that is group commit,
and it is what makes one fsync serve dozens of calls.

Why a dedicated thread rather than `anyio.to_thread` per batch: most operations (posted, acked, requeued) are not
waited for at all, so something must flush them without a caller driving it; and a hop through anyio's thread pool
costs a loop wakeup per batch even when nobody waits. The thread wakes the loop only for batches someone awaits, and
without waiting for the loop to run the wakeup (the loop's own thread-safe `call_soon_threadsafe` on asyncio,
`TrioToken.run_sync_soon` on trio, both found through anyio's loop token): a writer that blocked on a busy loop
would leave the next batch, and every `start()` in it, waiting too. Measured end to end, that wait, not the fsync,
is what durability costs a bridge.

Durability is per batch: the strongest any of its operations asks for. `DURABLE` commits with `synchronous=FULL`
(the WAL is fsynced before the waiters wake); otherwise `synchronous=NORMAL` (committed, fsynced by the next durable
commit or checkpoint). If a commit fails (disk full, I/O error) the writer stops for good and every later call
raises `JournalError`: after a failed write the in-memory state cannot be trusted, and a restart recovers from the
last durable state.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel

from .._errors import JournalError

__all__ = ["Batch", "Durability", "Writer"]

_log = logging.getLogger("bridge.journal")

Work = Any
"""What the writer runs: opaque to it, handed in batches to the `apply` function the journal gives it."""
Done = Callable[[Any], None]


class Durability(enum.IntEnum):
    """What an operation needs from its batch's commit; a batch gets the strongest any of its operations asks for."""

    QUEUED = 0
    """Applied in order, committed soon; may be lost with the process (every such transition is re-derived)."""
    DURABLE = 1
    """Committed and fsynced (`synchronous=FULL`) before the caller resumes."""


class Batch:
    """Operations committed together, and the caller-side wakeup for them."""

    __slots__ = ("done", "durable", "error", "event", "items", "wanted")

    def __init__(self) -> None:
        self.items: list[tuple[Work, Done | None]] = []
        self.durable = False
        self.wanted = False  # someone waits: wake the loop when done
        self.done = False
        self.error: BaseException | None = None
        self.event: anyio.Event | None = None

    def finish(self, results: list[Any]) -> None:
        """On the event loop: run the operations' completion callbacks in order, then wake the waiters."""
        if self.error is None:
            for (_, on_done), result in zip(self.items, results, strict=True):
                if on_done is not None:
                    on_done(result)
        self.done = True
        if self.event is not None:
            self.event.set()


class Writer:
    """Owns the connection and the thread that writes through it.

    Args:
        conn: An autocommit connection (`isolation_level=None`, `check_same_thread=False`); owned from now on.
        apply: Runs a batch's work items as one transaction and returns one result per item.
        name: Used in thread names and error messages (the journal's path).
        on_write: Called after each batch (retention piggybacks on it).
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        apply: Callable[[sqlite3.Connection, list[Work]], list[Any]],
        *,
        name: str,
        on_write: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        self._conn = conn
        self._apply = apply
        self._name = name
        self._on_write = on_write
        self._cond = threading.Condition(threading.Lock())
        self._open = Batch()
        self._idle = False
        self._stopping = False
        self._failed: BaseException | None = None
        self._synchronous = ""
        native = anyio.lowlevel.current_token().native_token
        self._soon: Callable[..., object] = getattr(native, "run_sync_soon", None) or native.call_soon_threadsafe  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._main, name=f"journal-writer {name}", daemon=True)
        self.commits = 0  # write transactions; with `fsyncs` and `operations`, how well group commit batches
        self.fsyncs = 0
        self.operations = 0
        self._thread.start()

    def check(self) -> None:
        """Raise `JournalError` if the writer failed or was closed; call before changing any in-memory state."""
        if self._failed is not None:
            raise JournalError(
                f"journal {self._name} failed to write ({self._failed}); restart the bridge: it recovers from the "
                "last durable state"
            ) from self._failed
        if self._stopping:
            raise JournalError(f"journal {self._name} is closed")

    def submit(self, work: Work, durability: Durability, *, wait: bool, on_done: Done | None = None) -> Batch:
        """Queue `work` (applied on the writer thread) and return its batch; never blocks on I/O.

        `on_done(result)` runs on the event loop once the batch committed; it needs `wait` (the loop is woken only
        for batches someone waits on).
        """
        self.check()
        with self._cond:
            batch = self._open
            batch.items.append((work, on_done))
            if durability is Durability.DURABLE:
                batch.durable = True
            if wait:
                batch.wanted = True
                if batch.event is None:
                    batch.event = anyio.Event()
            if self._idle:
                self._idle = False
                self._cond.notify()
        return batch

    async def wait(self, batch: Batch) -> None:
        """Wait until `batch` (returned by `submit(..., wait=True)`) is committed; raise if it failed."""
        if not batch.done:
            assert batch.event is not None
            await batch.event.wait()
        if batch.error is not None:
            raise JournalError(f"journal {self._name}: {batch.error}") from batch.error

    async def run(self, work: Work, durability: Durability = Durability.QUEUED) -> Any:
        """Queue `work` and return its result once its batch committed (reads see every earlier write)."""
        box: list[Any] = []
        batch = self.submit(work, durability, wait=True, on_done=box.append)
        await self.wait(batch)
        return box[0]

    async def close(self) -> None:
        """Flush everything queued, stop the thread and close the connection. Safe to call twice."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self._thread.join)

    # -- the writer thread ---------------------------------------------------------------------------------------

    def _main(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._open.items and not self._stopping:
                        self._idle = True
                        self._cond.wait()
                    self._idle = False
                    batch, self._open = self._open, Batch()
                if not batch.items:
                    return  # stopping, and everything before was flushed
                results = self._execute(batch)
                if batch.wanted:
                    try:
                        self._soon(batch.finish, results)
                    except Exception:  # the loop is gone (RuntimeError on asyncio, RunFinishedError on trio)
                        _log.warning("journal %s: the event loop ended before the journal was closed", self._name)
                        return
        finally:
            self._conn.close()

    def _execute(self, batch: Batch) -> list[Any]:
        if self._failed is not None:
            batch.error = self._failed
            return []
        conn = self._conn
        synchronous = "FULL" if batch.durable else "NORMAL"
        try:
            if synchronous != self._synchronous:
                conn.execute(f"PRAGMA synchronous = {synchronous}")
                self._synchronous = synchronous
            results = self._apply(conn, [work for work, _ in batch.items])
            if self._on_write is not None:
                self._on_write(conn)
        except Exception as exc:
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            _log.error("journal %s: a write failed, the journal stops: %s", self._name, exc)
            self._failed = batch.error = exc
            return []
        self.commits += 1
        self.fsyncs += batch.durable
        self.operations += len(batch.items)
        return results
