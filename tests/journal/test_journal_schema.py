"""Schema versions: older journals are migrated in place, newer or foreign files are refused untouched."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from bridge import JournalError, JournalSchemaError
from bridge.journal import CallState, SqliteJournal, StoredResult

pytestmark = pytest.mark.anyio

APPLICATION_ID = 0x54424A4C
CURRENT = 3

# The version-1 layout exactly as it shipped, frozen here so a change to the migrations cannot silently rewrite it.
V1 = f"""
PRAGMA application_id = {APPLICATION_ID};
CREATE TABLE tool_calls (
    seq            INTEGER PRIMARY KEY,
    session_id     TEXT    NOT NULL,
    tool_use_id    TEXT    NOT NULL,
    thread_id      TEXT,
    tool_name      TEXT    NOT NULL,
    input_json     TEXT    NOT NULL,
    state          TEXT    NOT NULL,
    attempt        INTEGER NOT NULL DEFAULT 0,
    result_json    TEXT,
    is_error       INTEGER,
    in_doubt       INTEGER,
    acked_event_id TEXT,
    created_at     REAL    NOT NULL,
    updated_at     REAL    NOT NULL,
    UNIQUE (session_id, tool_use_id)
);
CREATE INDEX tool_calls_state ON tool_calls (state);
INSERT INTO tool_calls (session_id, tool_use_id, tool_name, input_json, state, attempt, result_json, is_error,
                        in_doubt, acked_event_id, created_at, updated_at) VALUES
    ('s', 'started', 'pay', '{{"cents":100}}', 'started', 1, NULL, NULL, NULL, NULL, 100.0, 101.0),
    ('s', 'done', 'pay', '{{}}', 'completed', 1, '[{{"type":"text","text":"ok"}}]', 0, 0, NULL, 102.0, 103.0),
    ('s', 'doubt', 'pay', '{{}}', 'in_doubt', 1, '[{{"type":"text","text":"?"}}]', 1, 1, NULL, 104.0, 105.0),
    ('s', 'waiting', 'pay', '{{}}', 'received', 0, NULL, NULL, NULL, NULL, 106.0, 106.0);
PRAGMA user_version = 1;
"""


def pragma(path: Path, name: str) -> object:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]
    finally:
        conn.close()


def write(path: Path, script: str) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.executescript(script)
    finally:
        conn.close()


async def test_version_1_journal_is_migrated_with_calls_in_flight(tmp_path: Path) -> None:
    """A v1 journal holding started, completed, in-doubt and waiting calls opens as the current version, intact."""
    path = tmp_path / "journal.db"
    write(path, V1)
    journal = SqliteJournal(path, retention=None)
    async with journal:
        assert journal.migrated_from == 1
        unfinished = await journal.unfinished()
        assert [(r.tool_use_id, r.state) for r in unfinished] == [
            ("started", CallState.STARTED),
            ("done", CallState.COMPLETED),
            ("doubt", CallState.IN_DOUBT),
            ("waiting", CallState.RECEIVED),
        ]
        assert dict(unfinished[0].input) == {"cents": 100}
        assert unfinished[1].result == StoredResult(content=({"type": "text", "text": "ok"},), is_error=False)
        assert unfinished[2].result is not None
        assert unfinished[2].result.in_doubt
        assert all(r.posted_at is None for r in unfinished)
        await journal.mark_posted("s", ["done"])  # the new column is used from now on
        posted = await journal.get("s", "done")
        assert posted is not None
        assert posted.posted_at is not None
    assert pragma(path, "user_version") == CURRENT
    async with SqliteJournal(path) as again:
        assert again.migrated_from is None


async def test_newer_schema_is_refused_and_left_untouched(tmp_path: Path) -> None:
    """A journal from a newer tool-bridge raises JournalSchemaError naming both versions and is not modified."""
    path = tmp_path / "journal.db"
    write(path, V1.replace("PRAGMA user_version = 1;", "PRAGMA user_version = 7;"))
    before = path.read_bytes()
    with pytest.raises(JournalSchemaError, match=r"schema version 7.*up to 3"):
        await SqliteJournal(path).open()
    assert path.read_bytes() == before
    assert pragma(path, "journal_mode") == "delete", "not even switched to WAL"
    async with SqliteJournal(tmp_path / "other.db"):  # and the lock was released on the way out
        pass
    with pytest.raises(JournalSchemaError):
        await SqliteJournal(path).open()


async def test_foreign_database_is_refused(tmp_path: Path) -> None:
    """Pointing the journal at another application's SQLite file refuses it rather than adding tables to it."""
    path = tmp_path / "shop.db"
    write(path, "CREATE TABLE orders (id INTEGER PRIMARY KEY); INSERT INTO orders VALUES (1);")
    before = path.read_bytes()
    with pytest.raises(JournalError, match="not a tool-bridge journal"):
        await SqliteJournal(path).open()
    assert path.read_bytes() == before


async def test_non_sqlite_file_is_refused(tmp_path: Path) -> None:
    """A file that is not a SQLite database raises JournalError, not a raw sqlite3 exception."""
    path = tmp_path / "journal.db"
    path.write_text("these are not the pages you are looking for\n" * 200)
    with pytest.raises(JournalError, match="not a database"):
        await SqliteJournal(path).open()


async def test_empty_file_and_new_path_become_current_journals(tmp_path: Path) -> None:
    """An empty file (version 0) and a path in a missing directory both become current-version WAL journals."""
    empty = tmp_path / "empty.db"
    empty.touch()
    fresh = tmp_path / "state" / "bridge" / "journal.db"
    for path in (empty, fresh):
        async with SqliteJournal(path) as journal:
            assert journal.migrated_from is None
            assert await journal.receive("s", "t", "tool", {})
        assert pragma(path, "user_version") == CURRENT
        assert pragma(path, "application_id") == APPLICATION_ID
        assert pragma(path, "journal_mode") == "wal"


def scribble_over_pages(path: Path) -> None:
    """Overwrite table pages in the middle of the file, leaving the header alone: a torn or bit-rotted disk."""
    page_size = int(str(pragma(path, "page_size")))
    with path.open("r+b") as f:
        f.seek(page_size * 4)
        f.write(b"\xff\x00\x13" * page_size)


def desynchronise_index(path: Path) -> None:
    """Change rows behind an index's back (via writable_schema), so the index no longer matches the table."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        row = conn.execute(
            "SELECT type, name, tbl_name, rootpage, sql FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL"
        ).fetchone()
        conn.execute("PRAGMA writable_schema = ON")
        conn.execute("DELETE FROM sqlite_schema WHERE name = ?", (row[1],))
    finally:
        conn.close()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("UPDATE tool_calls SET state = 'acked', updated_at = 0")
        conn.execute("PRAGMA writable_schema = ON")
        conn.execute("INSERT INTO sqlite_schema VALUES (?, ?, ?, ?, ?)", row)
    finally:
        conn.close()


@pytest.mark.parametrize("damage", [scribble_over_pages, desynchronise_index])
async def test_damaged_journal_is_refused_at_open(tmp_path: Path, damage: Callable[[Path], None]) -> None:
    """A journal with overwritten pages or an index out of step with its rows is refused at open, with advice."""
    path = tmp_path / "journal.db"
    async with SqliteJournal(path) as journal:
        for i in range(400):
            await journal.receive("s", f"t{i}", "tool", {"padding": "x" * 200})
    damage(path)
    with pytest.raises(JournalError, match="failed its integrity check") as caught:
        await SqliteJournal(path).open()
    assert "may then run a second time" in str(caught.value)
