"""An exclusive lock file beside a SQLite journal, so two processes never share one journal.

SQLite itself would let two bridges open the same file and interleave their writes; each would then treat the other's
`started` calls as its own crashed work. `fcntl.flock` on `<journal>.lock` makes ownership a kernel fact instead: the
lock lives exactly as long as the holder's open file description, so when the holder dies (even by SIGKILL) the kernel
releases it, and the next owner knows for certain that nothing else is running the calls it recovers. No lease, no
grace period, no stale-lock heuristics.

The holder writes its pid, host and start time into the lock file so a refused process can say who has it. The file
is never deleted: unlinking a lock file races with a process that has just opened it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path

import anyio

from .._errors import JournalLockedError

__all__ = ["JournalLock"]

_log = logging.getLogger("bridge.journal")

_POLL_FIRST = 0.05
_POLL_MAX = 1.0


class JournalLock:
    """The exclusive lock on one journal, held from `acquire()` until `release()` or process exit.

    Args:
        journal: The journal file the lock protects; the lock file is `<journal>.lock` beside it.
    """

    def __init__(self, journal: Path) -> None:
        self.journal = journal
        self.path = journal.with_name(journal.name + ".lock")
        self._fd: int | None = None

    def __repr__(self) -> str:
        return f"JournalLock({str(self.path)!r}, held={self.held})"

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock if it is free, without blocking. Returns False when another holder has it."""
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        self._fd = fd
        return True

    async def acquire(self, *, wait: bool) -> None:
        """Take the lock, or raise `JournalLockedError` naming the holder (or wait for it when `wait` is True).

        Waiting polls with a growing interval rather than blocking a thread in `flock`: a blocked thread cannot be
        cancelled, and would take the lock after its caller gave up, holding it forever.
        """
        interval = _POLL_FIRST
        announced = False
        while not await anyio.to_thread.run_sync(self.try_acquire):
            holder = self.describe_holder()
            if not wait:
                raise JournalLockedError(
                    f"journal {self.journal} is in use by {holder}; only one process may use a SQLite journal at a "
                    "time. Stop that bridge, give this one its own journal path, or pass wait_for_lock=True to "
                    "wait until it exits."
                )
            if not announced:
                _log.info("journal %s is in use by %s; waiting for it to be released", self.journal, holder)
                announced = True
            await anyio.sleep(interval)
            interval = min(interval * 2, _POLL_MAX)

    def release(self) -> None:
        """Release the lock. Safe to call when not held."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the last descriptor releases the flock

    def describe_holder(self) -> str:
        """Who holds the lock, as the holder wrote it: "process 123 on host db1 (since 2025-01-01 12:00:00)"."""
        try:
            info = json.loads(self.path.read_bytes() or b"{}")
            pid, host, since = int(info["pid"]), str(info["host"]), float(info["since"])
        except (OSError, ValueError, KeyError, TypeError):
            return "another process (holder unknown)"
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since))
        if pid == os.getpid() and host == socket.gethostname():
            return f"this process (pid {pid}) through another SqliteJournal opened on the same path since {when}"
        return f"process {pid} on host {host} (since {when})"
