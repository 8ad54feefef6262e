"""The SQLite journal's SQL: a whole batch of transitions in one statement.

Why one statement: the writer thread gives up the GIL inside every SQLite call and must win it back from the event
loop afterwards; with the loop busy that costs up to a switch interval (5 ms) each time. Measured in a bridge under
load, a 2 µs UPDATE took 140 µs of wall time that way, and every `start()` waited behind it. So a batch travels as one
JSON array into `INSERT INTO temp.ops SELECT ... FROM json_each(?)`; `ops` is a view whose `INSTEAD OF INSERT`
triggers apply each transition, in the order it was made, to `tool_calls`. In autocommit mode that one statement is
also the transaction (all of the batch or none of it) and, with `synchronous=FULL`, the fsync. A receive's outcome
(its new `seq`, or nothing when the call was known) is left in `temp.received` and read back with one more query.

Each UPDATE keeps its guard (`state IN (...)`) although the in-memory mirror already decided the transition, and a
trigger aborts the whole statement when a guard matches no row: that means the file changed behind this process's
back (the lock should make that impossible), and the writer stops rather than write over state it does not know.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ._keys import KeyFilter
from ._protocol import MAY_LEAVE, ApprovalRecord, CallRecord, CallState, InboxDecision, JournalStats, StoredResult

__all__ = [
    "PRUNE",
    "PRUNE_INBOX",
    "SETUP",
    "Op",
    "add_decision",
    "apply",
    "dumps",
    "read_decisions",
    "read_keys",
    "read_record",
    "read_stats",
    "read_unfinished",
]

Op = tuple[str, tuple[Any, ...]]
"""A transition for the writer: its kind and its row (session_id, tool_use_id, then the values below)."""


def _states(states: frozenset[CallState] | Sequence[CallState]) -> str:
    return ", ".join(f"'{s.value}'" for s in sorted(states))


def _at(i: int) -> str:
    return f"json_extract(NEW.row, '$[{i}]')"


_FINISHED = _states([s for s in CallState if s.finished])

# Row values after (session_id, tool_use_id), by kind:
_SET = {
    "start": f"state = 'started', attempt = {_at(2)}, updated_at = {_at(3)}",  # attempt, updated_at
    "complete": (  # state, result_json, is_error, in_doubt, updated_at
        f"state = {_at(2)}, result_json = {_at(3)}, is_error = {_at(4)}, in_doubt = {_at(5)}, updated_at = {_at(6)}"
    ),
    "await_approval": f"state = 'awaiting_approval', approval_json = {_at(2)}, updated_at = {_at(3)}",
    "decide": f"state = 'received', approval_json = {_at(2)}, updated_at = {_at(3)}",  # approval_json, updated_at
    "requeue": f"state = 'received', updated_at = {_at(2)}",  # updated_at
    "mark_posted": f"state = 'posted', posted_at = {_at(2)}, updated_at = {_at(3)}",  # posted_at, updated_at
    "mark_acked": f"state = 'acked', acked_event_id = {_at(2)}, updated_at = {_at(3)}",  # event_id, updated_at
    "abandon": f"state = 'abandoned', updated_at = {_at(2)}",  # updated_at
}
_DIVERGED = "the journal file was changed by another process"


def _trigger(kind: str, body: str) -> str:
    return f"CREATE TEMP TRIGGER ops_{kind} INSTEAD OF INSERT ON ops WHEN NEW.kind = '{kind}' BEGIN {body} END"


SETUP: tuple[str, ...] = (
    "CREATE TEMP VIEW ops (n, kind, row) AS SELECT NULL, NULL, NULL",
    "CREATE TEMP TABLE received (n INTEGER PRIMARY KEY, seq INTEGER NOT NULL)",
    # receive: thread_id, tool_name, input_json, created_at
    _trigger(
        "receive",
        "INSERT OR IGNORE INTO tool_calls (session_id, tool_use_id, thread_id, tool_name, input_json, state, "
        f"created_at, updated_at) VALUES ({_at(0)}, {_at(1)}, {_at(2)}, {_at(3)}, {_at(4)}, 'received', {_at(5)}, "
        f"{_at(5)}); INSERT INTO received (n, seq) SELECT NEW.n, last_insert_rowid() WHERE changes() = 1;",
    ),
    *(
        _trigger(
            kind,
            f"UPDATE tool_calls SET {assignments} WHERE session_id = {_at(0)} AND tool_use_id = {_at(1)} "
            f"AND +state IN ({_states(MAY_LEAVE[kind])}); "  # "+": find the row by its key, never by state
            f"SELECT RAISE(ABORT, '{kind}: {_DIVERGED}') WHERE changes() <> 1;",
        )
        for kind, assignments in _SET.items()
    ),
)
"""Per-connection (temporary) objects the batches go through; created at open."""

_APPLY = (
    "INSERT INTO ops (n, kind, row) SELECT key, json_extract(value, '$[0]'), json_extract(value, '$[1]')"
    " FROM json_each(?)"
)
_RECEIVED = "SELECT json_group_array(json_array(n, seq)) FROM received"
PRUNE = f"DELETE FROM tool_calls WHERE state IN ({_FINISHED}) AND updated_at <= ?"
PRUNE_INBOX = "DELETE FROM approval_inbox WHERE made_at <= ?"


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def apply(conn: sqlite3.Connection, items: list[Op | Callable[[sqlite3.Connection], Any]]) -> list[Any]:
    """Run a batch; returns one result per item (a receive's `seq` or None; a read's value).

    A batch of transitions only is one autocommit statement. Reads (plain functions) are rare (a finished call's
    record, stats, prune); a batch with any runs in an explicit transaction, each read after the writes before it.
    """
    if not any(callable(item) for item in items):
        return _apply_ops(conn, items)  # type: ignore[arg-type]
    results: list[Any] = [None] * len(items)
    conn.execute("BEGIN IMMEDIATE")
    try:
        start = 0
        for index, item in enumerate([*items, None]):
            if item is None or callable(item):
                ops = items[start:index]
                if ops:
                    results[start:index] = _apply_ops(conn, ops)  # type: ignore[arg-type]
                if item is not None:
                    results[index] = item(conn)
                start = index + 1
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    return results


def _apply_ops(conn: sqlite3.Connection, ops: list[Op]) -> list[Any]:
    conn.execute(_APPLY, (dumps(ops),))
    results: list[Any] = [None] * len(ops)
    if any(kind == "receive" for kind, _ in ops):
        for n, seq in json.loads(conn.execute(_RECEIVED).fetchone()[0]):
            results[n] = seq
        conn.execute("DELETE FROM received")
    return results


def _record(row: tuple[Any, ...]) -> tuple[int, CallRecord]:
    (session_id, tool_use_id, thread_id, tool_name, input_json, state, attempt, result_json, is_error, in_doubt,
     acked_event_id, posted_at, created_at, updated_at, approval_json, seq) = row  # fmt: skip
    result = None
    if result_json is not None:
        content = tuple(json.loads(result_json))
        result = StoredResult(content=content, is_error=bool(is_error), in_doubt=bool(in_doubt))
    record = CallRecord(
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
    return seq, record


_COLUMNS = (
    "session_id, tool_use_id, thread_id, tool_name, input_json, state, attempt, result_json, is_error, in_doubt, "
    "acked_event_id, posted_at, created_at, updated_at, approval_json, seq"
)


def read_record(session_id: str, tool_use_id: str) -> Callable[[sqlite3.Connection], CallRecord | None]:
    def work(conn: sqlite3.Connection) -> CallRecord | None:
        query = f"SELECT {_COLUMNS} FROM tool_calls WHERE session_id = ? AND tool_use_id = ?"
        row = conn.execute(query, (session_id, tool_use_id)).fetchone()
        return None if row is None else _record(row)[1]

    return work


def add_decision(
    tool_use_id: str, approve: bool, by: str, reason: str | None, session_id: str | None
) -> Callable[[sqlite3.Connection], int]:
    def work(conn: sqlite3.Connection) -> int:
        cursor = conn.execute(
            "INSERT INTO approval_inbox (session_id, tool_use_id, approve, decided_by, reason, made_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (session_id, tool_use_id, int(approve), by, reason, time.time()),
        )
        return int(cursor.lastrowid or 0)

    return work


def read_decisions(after: int) -> Callable[[sqlite3.Connection], list[InboxDecision]]:
    def work(conn: sqlite3.Connection) -> list[InboxDecision]:
        rows = conn.execute(
            "SELECT seq, tool_use_id, approve, decided_by, reason, session_id, made_at FROM approval_inbox "
            "WHERE seq > ? ORDER BY seq",
            (after,),
        )
        return [InboxDecision(seq, use_id, bool(ok), by, why, sid, at) for seq, use_id, ok, by, why, sid, at in rows]

    return work


def read_keys(conn: sqlite3.Connection, limit: int) -> KeyFilter | None:
    """A filter of every call key in the file (run once, at open), or None when there are more than `limit`."""
    (count,) = conn.execute("SELECT COUNT(*) FROM tool_calls").fetchone()
    if count > limit:
        return None
    keys = KeyFilter(max(100_000, 2 * count))
    for key in conn.execute("SELECT session_id, tool_use_id FROM tool_calls"):
        keys.add(key)
    return keys


def read_unfinished(conn: sqlite3.Connection) -> list[tuple[int, CallRecord]]:
    """Every unfinished call with its `seq`, in arrival order (run once, at open)."""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM tool_calls WHERE state NOT IN ({_FINISHED}) ORDER BY seq")
    return [_record(row) for row in rows]


def read_stats(path: Path) -> Callable[[sqlite3.Connection], JournalStats]:
    def work(conn: sqlite3.Connection) -> JournalStats:
        by_state = {str(s): int(n) for s, n in conn.execute("SELECT state, COUNT(*) FROM tool_calls GROUP BY state")}
        (oldest,) = conn.execute(f"SELECT MIN(created_at) FROM tool_calls WHERE state NOT IN ({_FINISHED})").fetchone()
        size = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(FileNotFoundError):
                size += os.stat(f"{path}{suffix}").st_size
        return JournalStats(
            calls=sum(by_state.values()),
            by_state=by_state,
            oldest_unfinished_age=None if oldest is None else max(0.0, time.time() - oldest),
            size_bytes=size,
        )

    return work
