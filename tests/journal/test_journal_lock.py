"""One process per SQLite journal: a second one is refused with the holder's identity, or waits when asked."""

from __future__ import annotations

import logging
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process

from bridge import JournalLockedError
from bridge.journal import SqliteJournal

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]

# Opens the journal, says so, and holds it until its stdin closes.
HOLDER = """
import sys, anyio
from bridge.journal import SqliteJournal

async def main():
    async with SqliteJournal(sys.argv[1]):
        print("locked", flush=True)
        await anyio.to_thread.run_sync(sys.stdin.read)

anyio.run(main)
"""


@asynccontextmanager
async def holder(path: Path) -> AsyncIterator[Process]:
    """A child process holding the journal at `path` until its stdin is closed."""
    async with await anyio.open_process([sys.executable, "-c", HOLDER, str(path)], cwd=ROOT) as proc:
        assert proc.stdout is not None
        output = b""
        with anyio.fail_after(30):
            while b"locked\n" not in output:
                output += await proc.stdout.receive()
        try:
            yield proc
        finally:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()


async def test_second_process_is_refused_with_the_holder_named(tmp_path: Path) -> None:
    """Opening a journal another process holds raises JournalLockedError naming its pid and host, and the way out."""
    path = tmp_path / "journal.db"
    async with holder(path) as proc:
        with pytest.raises(JournalLockedError) as caught:
            await SqliteJournal(path).open()
    message = str(caught.value)
    assert f"process {proc.pid} on host {socket.gethostname()}" in message
    assert str(path) in message
    assert "wait_for_lock=True" in message


async def test_waiting_opener_takes_over_when_holder_exits(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """With wait_for_lock=True, open() waits while another process holds the journal and succeeds once it exits."""
    path = tmp_path / "journal.db"
    waiting = anyio.Event()

    class Announce(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "waiting" in record.getMessage():
                waiting.set()

    caplog.set_level(logging.INFO, logger="bridge.journal")
    handler = Announce()
    logging.getLogger("bridge.journal").addHandler(handler)
    journal = SqliteJournal(path, wait_for_lock=True)
    try:
        async with holder(path) as proc, anyio.create_task_group() as tg:
            tg.start_soon(journal.open)
            with anyio.fail_after(10):
                await waiting.wait()
            assert repr(journal).endswith("closed)"), "still waiting while the holder lives"
            assert proc.stdin is not None
            await proc.stdin.aclose()  # the holder exits and releases the lock
            assert await proc.wait() == 0
        assert await journal.receive("s", "t", "tool", {})
    finally:
        logging.getLogger("bridge.journal").removeHandler(handler)
        await journal.close()


async def test_sigkilled_holder_releases_the_lock(tmp_path: Path) -> None:
    """The kernel drops a killed holder's lock, so a restart can open the journal at once."""
    path = tmp_path / "journal.db"
    async with holder(path) as proc:
        proc.kill()
        await proc.wait()
    async with SqliteJournal(path) as journal:
        assert await journal.receive("s", "t", "tool", {})


async def test_same_process_second_instance_is_refused(tmp_path: Path) -> None:
    """Two SqliteJournal objects on one path in one process conflict too, and the message says it is this process."""
    path = tmp_path / "journal.db"
    async with SqliteJournal(path):
        with pytest.raises(JournalLockedError, match="this process"):
            await SqliteJournal(path).open()
    async with SqliteJournal(path) as again:  # released on close
        assert await again.stats()


async def test_cancelled_waiting_open_leaves_no_lock_behind(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Cancelling an open() that waits for the lock gives up cleanly: it never takes the lock later."""
    path = tmp_path / "journal.db"
    waiting = anyio.Event()

    class Announce(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            waiting.set()

    caplog.set_level(logging.INFO, logger="bridge.journal")
    handler = Announce()
    logging.getLogger("bridge.journal").addHandler(handler)
    try:
        holder_journal = SqliteJournal(path)
        await holder_journal.open()
        waiter = SqliteJournal(path, wait_for_lock=True)
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter.open)
            with anyio.fail_after(10):
                await waiting.wait()
            tg.cancel_scope.cancel()
        await holder_journal.close()
        async with SqliteJournal(path) as successor:
            assert await successor.receive("s", "t", "tool", {})
        await waiter.close()
    finally:
        logging.getLogger("bridge.journal").removeHandler(handler)
