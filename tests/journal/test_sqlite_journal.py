"""SqliteJournal beyond the shared protocol: durability on return, group commit, cancellation, retention, misuse."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import anyio
import pytest

from bridge import JournalError
from bridge.journal import CallState, SqliteJournal, StoredResult

pytestmark = pytest.mark.anyio

RESULT = StoredResult(content=({"type": "text", "text": "ok"},), is_error=False)


def outside_view(path: Path, tool_use_id: str) -> str | None:
    """The call's state as a separate connection (another process, a restart) would read it from the file."""
    conn = sqlite3.connect(path)
    try:
        row = conn.execute("SELECT state FROM tool_calls WHERE tool_use_id = ?", (tool_use_id,)).fetchone()
        return None if row is None else str(row[0])
    finally:
        conn.close()


def backdate(path: Path, seconds: float, *tool_use_ids: str) -> None:
    """Make calls look last touched `seconds` ago, as if time had passed."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=10)
    try:
        for tool_use_id in tool_use_ids:
            conn.execute(
                "UPDATE tool_calls SET updated_at = updated_at - ?, created_at = created_at - ? WHERE tool_use_id = ?",
                (seconds, seconds, tool_use_id),
            )
    finally:
        conn.close()


async def finish(journal: SqliteJournal, tool_use_id: str, state: CallState = CallState.ACKED) -> None:
    await journal.receive("s", tool_use_id, "tool", {})
    if state is CallState.ABANDONED:
        await journal.abandon("s", [tool_use_id])
        return
    await journal.start("s", tool_use_id)
    if state is CallState.STARTED:
        return
    await journal.complete("s", tool_use_id, RESULT)
    await journal.mark_acked("s", tool_use_id, "sevt")


async def test_start_and_complete_are_in_the_file_when_they_return(tmp_path: Path) -> None:
    """Once start() or complete() returns, its state (and every transition before it) is in the file for any reader."""
    path = tmp_path / "journal.db"
    async with SqliteJournal(path) as journal:
        await journal.receive("s", "t", "pay", {"cents": 5})
        await journal.start("s", "t")
        assert outside_view(path, "t") == "started"
        await journal.complete("s", "t", RESULT)
        assert outside_view(path, "t") == "completed"
        await journal.mark_posted("s", ["t"])  # queued: written soon, not waited for
        await journal.stats()  # a read waits for the writes queued before it
        assert outside_view(path, "t") == "posted"


async def test_concurrent_transitions_share_commits(tmp_path: Path) -> None:
    """Hundreds of concurrent transitions go out in a handful of transactions (group commit), all applied."""
    async with SqliteJournal(tmp_path / "journal.db") as journal:
        async with anyio.create_task_group() as tg:
            for i in range(256):
                tg.start_soon(journal.receive, "s", f"t{i}", "tool", {"i": i})
        commits = journal.commits
        async with anyio.create_task_group() as tg:
            for i in range(256):
                tg.start_soon(journal.start, "s", f"t{i}")
        assert journal.commits - commits <= 16, journal.commits - commits
        assert dict((await journal.stats()).by_state) == {"started": 256}


async def test_cancelled_callers_never_wedge_or_half_apply(tmp_path: Path) -> None:
    """Cancelling many in-flight transitions leaves each applied fully or not at all, and the journal keeps working."""
    async with SqliteJournal(tmp_path / "journal.db") as journal:
        first_done = anyio.Event()

        async def receive(i: int) -> None:
            await journal.receive("s", f"t{i}", "tool", {"i": i})
            first_done.set()

        async with anyio.create_task_group() as tg:
            for i in range(200):
                tg.start_soon(receive, i)
            await first_done.wait()
            tg.cancel_scope.cancel()
        records = await journal.unfinished()
        assert 1 <= len(records) <= 200
        assert all(dict(r.input) == {"i": int(r.tool_use_id[1:])} for r in records)
        assert await journal.receive("s", "after", "tool", {})
        assert await journal.start("s", "after")


async def test_unserialisable_input_fails_alone(tmp_path: Path) -> None:
    """An input that is not JSON raises TypeError to its caller without touching the journal."""
    async with SqliteJournal(tmp_path / "journal.db") as journal:
        with pytest.raises(TypeError):
            await journal.receive("s", "bad", "tool", {"when": object()})
        assert await journal.get("s", "bad") is None
        assert await journal.receive("s", "good", "tool", {})


async def test_use_outside_open_is_a_journal_error(tmp_path: Path) -> None:
    """Calling a journal before open() or after close() raises JournalError saying so."""
    journal = SqliteJournal(tmp_path / "journal.db")
    with pytest.raises(JournalError, match="not open"):
        await journal.receive("s", "t", "tool", {})
    async with journal:
        pass
    with pytest.raises(JournalError, match="not open"):
        await journal.get("s", "t")


async def test_expired_finished_calls_are_pruned_at_open(tmp_path: Path) -> None:
    """At open, acked and abandoned calls older than the retention go; newer ones and unfinished ones stay."""
    path = tmp_path / "journal.db"
    async with SqliteJournal(path) as journal:
        for tool_use_id in ("old_acked", "new_acked"):
            await finish(journal, tool_use_id)
        await finish(journal, "old_abandoned", CallState.ABANDONED)
        await finish(journal, "old_started", CallState.STARTED)
    backdate(path, 7200, "old_acked", "old_abandoned", "old_started")
    async with SqliteJournal(path, retention=timedelta(hours=1)) as journal:
        remaining = {r.tool_use_id for r in await journal.unfinished()}
        assert remaining == {"old_started"}
        assert await journal.get("s", "new_acked") is not None
        assert await journal.get("s", "old_acked") is None
        assert (await journal.stats()).calls == 2


async def test_retention_none_keeps_everything(tmp_path: Path) -> None:
    """With retention=None nothing is pruned automatically, however old."""
    path = tmp_path / "journal.db"
    async with SqliteJournal(path) as journal:
        await finish(journal, "old")
    backdate(path, 10 * 365 * 86400, "old")
    async with SqliteJournal(path, retention=None, prune_every=0) as journal:
        await finish(journal, "new")
        assert (await journal.stats()).calls == 2


async def test_retention_prunes_while_writing(tmp_path: Path) -> None:
    """A long-running journal prunes expired calls inside a later write's transaction, without a reopen."""
    path = tmp_path / "journal.db"
    async with SqliteJournal(path, retention=60, prune_every=0) as journal:
        await finish(journal, "old")
        await journal.stats()  # a read waits for the writes queued before it, so the ack is in the file
        backdate(path, 3600, "old")
        assert await journal.get("s", "old") is not None
        await journal.receive("s", "next", "tool", {})
        assert await journal.get("s", "old") is None


async def test_stats_report_size_and_age(tmp_path: Path) -> None:
    """stats() reports the file size on disk (growing with calls) and the oldest open call's age."""
    path = tmp_path / "journal.db"
    async with SqliteJournal(path) as journal:
        small = (await journal.stats()).size_bytes
        await finish(journal, "waiting", CallState.STARTED)
        backdate(path, 120, "waiting")
        for i in range(300):
            await journal.receive("s", f"t{i}", "tool", {"blob": "x" * 500})
        stats = await journal.stats()
    assert small is not None
    assert stats.size_bytes is not None
    assert stats.size_bytes > small
    assert stats.oldest_unfinished_age is not None
    assert 120 <= stats.oldest_unfinished_age < 3600


async def test_only_start_and_complete_wait_for_an_fsync(tmp_path: Path) -> None:
    """start() and complete() each wait for a durable commit; receive, post and ack are committed without an fsync."""
    async with SqliteJournal(tmp_path / "journal.db") as journal:
        steps: list[tuple[str, Callable[[], Awaitable[object]], int]] = [
            ("receive", lambda: journal.receive("s", "t", "tool", {}), 0),
            ("start", lambda: journal.start("s", "t"), 1),
            ("complete", lambda: journal.complete("s", "t", RESULT), 1),
            ("mark_posted", lambda: journal.mark_posted("s", ["t"]), 0),
            ("mark_acked", lambda: journal.mark_acked("s", "t", "sevt"), 0),
        ]
        for name, step, fsyncs in steps:
            before = journal.fsyncs
            await step()
            assert journal.fsyncs - before == fsyncs, name


async def test_a_file_changed_behind_its_back_stops_the_journal(tmp_path: Path) -> None:
    """If the file no longer matches what the journal wrote, the write fails and every later call raises an error."""
    path = tmp_path / "journal.db"
    async with SqliteJournal(path) as journal:
        await journal.receive("s", "t", "pay", {})
        await journal.start("s", "t")
        conn = sqlite3.connect(path, isolation_level=None, timeout=10)
        try:
            conn.execute("UPDATE tool_calls SET state = 'acked' WHERE tool_use_id = 't'")  # not through the journal
        finally:
            conn.close()
        with pytest.raises(JournalError, match="changed by another process"):
            await journal.complete("s", "t", RESULT)
        with pytest.raises(JournalError, match="restart the bridge"):
            await journal.receive("s", "u", "pay", {})
    assert outside_view(path, "t") == "acked", "nothing was written over it"
