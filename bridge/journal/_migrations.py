"""The SQLite journal's schema, its version history, and the checks made before a journal file is trusted.

The version lives in `PRAGMA user_version`; `PRAGMA application_id` marks the file as a tool-bridge journal so we
never migrate someone else's database. Each entry of `MIGRATIONS` turns version N-1 into version N and runs, with the
version bump, in one transaction: a crash mid-migration leaves the old version intact. A file from a newer tool-bridge
is refused before anything is written to it, because an old binary cannot know what the new columns mean (a newer
state it would misread as unfinished could be re-run).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from .._errors import JournalError, JournalSchemaError

__all__ = ["APPLICATION_ID", "MIGRATIONS", "SCHEMA_VERSION", "check_integrity", "check_version", "migrate"]

APPLICATION_ID = 0x54424A4C  # "TBJL"

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: the first layout. `seq` keeps arrival order, which unfinished() returns (wall clocks can step backwards).
    (
        f"PRAGMA application_id = {APPLICATION_ID}",
        """
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
        )
        """,
        "CREATE INDEX tool_calls_state ON tool_calls (state)",
    ),
    # 2: when a result was posted (a posted call never acked is re-checked against the history after a while), and
    #    an index that serves both retention (finished by age) and recovery (unfinished by state).
    (
        "ALTER TABLE tool_calls ADD COLUMN posted_at REAL",
        "DROP INDEX tool_calls_state",
        "CREATE INDEX tool_calls_state_age ON tool_calls (state, updated_at)",
    ),
    # 3: approvals. A call's approval (asked when, deadline, decision, by whom, when, why) as JSON on its row, and the
    #    inbox where another process (`bridge approvals approve`) leaves decisions for the bridge holding the journal:
    #    only the holder writes `tool_calls`, anyone may append to the inbox.
    (
        "ALTER TABLE tool_calls ADD COLUMN approval_json TEXT",
        """
        CREATE TABLE approval_inbox (
            seq         INTEGER PRIMARY KEY,
            session_id  TEXT,
            tool_use_id TEXT    NOT NULL,
            approve     INTEGER NOT NULL,
            decided_by  TEXT    NOT NULL,
            reason      TEXT,
            made_at     REAL    NOT NULL
        )
        """,
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)


def _pragma(conn: sqlite3.Connection, name: str) -> int:
    value = conn.execute(f"PRAGMA {name}").fetchone()[0]
    return int(value)


def check_version(conn: sqlite3.Connection, path: Path) -> int:
    """Refuse files we must not touch; return the schema version found (0 for a new, empty file).

    Raises:
        JournalSchemaError: The file was written by a newer tool-bridge.
        JournalError: The file is some other SQLite database.
    """
    found = _pragma(conn, "user_version")
    application = _pragma(conn, "application_id")
    if found > SCHEMA_VERSION and application == APPLICATION_ID:
        raise JournalSchemaError(
            f"journal {path} has schema version {found}, but this tool-bridge understands versions up to "
            f"{SCHEMA_VERSION}: it was written by a newer tool-bridge. Upgrade tool-bridge to use it (a journal is "
            "never downgraded in place), or point this bridge at another journal path."
        )
    if application != APPLICATION_ID:
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")]
        if application != 0 or found != 0 or tables:
            raise JournalError(
                f"{path} is not a tool-bridge journal (application_id {application:#x}, user_version {found}, "
                f"tables {tables}); refusing to modify it. Choose another journal path."
            )
    return found


def migrate(conn: sqlite3.Connection, path: Path) -> int:
    """Bring the file up to `SCHEMA_VERSION` in one transaction. Returns the version the file had before.

    The connection must be in autocommit mode (`isolation_level=None`) so the explicit transaction is ours.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = check_version(conn, path)  # again, under the write lock
        for statements in MIGRATIONS[found:]:
            for statement in statements:
                conn.execute(statement)
        if found != SCHEMA_VERSION:
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return found


def check_integrity(conn: sqlite3.Connection, path: Path) -> None:
    """Run `PRAGMA integrity_check` and refuse a damaged journal rather than act on wrong states.

    The full check (not `quick_check`) also verifies that indexes match their rows: a broken UNIQUE index could let
    one call be recorded twice. Retention keeps the journal small, so the scan is short.

    Raises:
        JournalError: The file is damaged; the message says what moving it aside would cost.
    """
    try:
        problems = [str(row[0]) for row in conn.execute("PRAGMA integrity_check(5)")]
    except sqlite3.DatabaseError as exc:  # damage bad enough that the check itself cannot walk the file
        problems = [str(exc)]
    if problems != ["ok"]:
        raise JournalError(
            f"journal {path} failed its integrity check: {'; '.join(problems)}. Restore it from a backup, or move "
            "it aside and restart: calls still unanswered are read again from the sessions' history, but calls it "
            "recorded as started may then run a second time."
        )
