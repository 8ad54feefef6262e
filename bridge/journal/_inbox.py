"""`ApprovalInbox`: approvals seen and decided from outside the bridge that holds a SQLite journal.

`bridge approvals list|show|approve|deny` runs in its own process while `bridge run` holds the journal's lock, so it
must not write call rows: the holder's in-memory mirror is their authority (`_sqlite.py`). It reads them (SQLite's WAL
lets a reader in beside the writer) and appends decisions to the `approval_inbox` table, which the running bridge
polls (`Approvals`, every `ApprovalSettings.poll_interval` seconds while calls wait) and applies as if they had been
made in-process: the decision is then journaled on the call, with who made it and when. A decision made while no
bridge runs waits in the inbox and is applied when the call is parked again after the restart.

The inbox never creates or migrates a journal: a file that does not exist, is not a journal, or predates approvals
(schema version 3) is refused with what to do.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import anyio

from .._errors import JournalError
from ._migrations import APPLICATION_ID, SCHEMA_VERSION
from ._pg import describe_dsn
from ._postgres import PostgresJournal
from ._protocol import CallRecord, CallState
from ._statements import _COLUMNS, _record

__all__ = ["ApprovalInbox", "PostgresInbox"]

_APPROVALS_SINCE = 3
T = TypeVar("T")


def _one(call_id: str, records: list[CallRecord]) -> CallRecord | None:
    if len(records) > 1:
        sessions = ", ".join(r.session_id for r in records)
        raise JournalError(f"call {call_id} exists in several sessions ({sessions}); name one with --session")
    return records[0] if records else None


def _awaiting(call_id: str, record: CallRecord | None, where: str) -> CallRecord:
    """`record`, if a decision may be left for it; else the error saying why not."""
    if record is None:
        raise JournalError(f"no call {call_id} in journal {where}")
    if record.state is not CallState.AWAITING_APPROVAL:
        outcome = record.approval.outcome.value if record.approval is not None else "no approval asked"
        raise JournalError(f"call {call_id} is not awaiting approval (state {record.state.value}, {outcome})")
    return record


class ApprovalInbox:
    """Read a journal's calls awaiting approval and leave decisions for the bridge that holds it.

    Args:
        path: The SQLite journal file (`bridge run`'s `--journal` / `<state-dir>/journal.db`).
        busy_timeout: Seconds to wait on SQLite's write lock (the bridge holds it for milliseconds at a time).

    Raises (from every method):
        JournalError: The file is missing, is not a tool-bridge journal, or is too old or too new.
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 5.0) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout

    def __repr__(self) -> str:
        return f"ApprovalInbox({str(self.path)!r})"

    def _connect(self) -> sqlite3.Connection:
        if not self.path.is_file():
            raise JournalError(f"no journal at {self.path}: give the path `bridge run` uses (--journal/--state-dir)")
        try:
            conn = sqlite3.connect(f"file:{self.path}?mode=rw", uri=True, timeout=self.busy_timeout)
            application = int(conn.execute("PRAGMA application_id").fetchone()[0])
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        except sqlite3.Error as exc:
            raise JournalError(f"cannot open journal {self.path}: {exc}") from exc
        if application != APPLICATION_ID:
            conn.close()
            raise JournalError(f"{self.path} is not a tool-bridge journal")
        if not _APPROVALS_SINCE <= version <= SCHEMA_VERSION:
            conn.close()
            old = version < _APPROVALS_SINCE
            hint = "start `bridge run` on it once to migrate it" if old else "upgrade tool-bridge"
            raise JournalError(f"journal {self.path} has schema version {version}: {hint}")
        return conn

    def pending(self) -> list[CallRecord]:
        """Calls parked until someone decides, oldest first."""
        conn = self._connect()
        try:
            query = f"SELECT {_COLUMNS} FROM tool_calls WHERE state = ? ORDER BY seq"
            return [_record(row)[1] for row in conn.execute(query, (CallState.AWAITING_APPROVAL.value,))]
        finally:
            conn.close()

    def get(self, call_id: str, session_id: str | None = None) -> CallRecord | None:
        """The call with this id (its latest record), or None.

        Raises:
            JournalError: Several sessions have a call with this id and `session_id` was not given.
        """
        conn = self._connect()
        try:
            query = f"SELECT {_COLUMNS} FROM tool_calls WHERE tool_use_id = ?"
            params: tuple[str, ...] = (call_id,)
            if session_id is not None:
                query += " AND session_id = ?"
                params = (call_id, session_id)
            records = [_record(row)[1] for row in conn.execute(query, params)]
        finally:
            conn.close()
        return _one(call_id, records)

    def submit(
        self, call_id: str, *, approve: bool, by: str, reason: str | None = None, session_id: str | None = None
    ) -> CallRecord:
        """Leave a decision for a call awaiting approval; returns the call as it stands.

        Raises:
            JournalError: No such call, or it is not awaiting approval (decided already, or never asked).
        """
        record = _awaiting(call_id, self.get(call_id, session_id), str(self.path))
        conn = self._connect()
        try:
            with conn:
                conn.execute(
                    "INSERT INTO approval_inbox (session_id, tool_use_id, approve, decided_by, reason, made_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (record.session_id, call_id, int(approve), by, reason, time.time()),
                )
        except sqlite3.Error as exc:
            raise JournalError(f"cannot write to journal {self.path}: {exc}") from exc
        finally:
            conn.close()
        return record


class PostgresInbox:
    """`ApprovalInbox`'s three operations on a fleet's PostgreSQL journal (one short connection per command).

    Decisions go to the journal's inbox table, never onto the call rows: those belong to the member holding the
    session's lease (fenced writes), which applies the decision within its poll interval.
    """

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.path = f"postgresql {describe_dsn(dsn)}"

    def _run(self, work: Callable[[PostgresJournal], Awaitable[T]]) -> T:
        async def main() -> T:
            async with PostgresJournal(self.dsn, pool_size=1) as journal:
                return await work(journal)

        return anyio.run(main)

    def pending(self) -> list[CallRecord]:
        """Calls parked until someone decides, oldest first."""
        return self._run(lambda journal: journal.awaiting_approval())

    def get(self, call_id: str, session_id: str | None = None) -> CallRecord | None:
        """The call with this id, or None (JournalError when several sessions have it and none is named)."""
        return _one(call_id, self._run(lambda journal: journal.find(call_id, session_id)))

    def submit(
        self, call_id: str, *, approve: bool, by: str, reason: str | None = None, session_id: str | None = None
    ) -> CallRecord:
        """Leave a decision for a call awaiting approval; returns the call as it stands."""

        async def work(journal: PostgresJournal) -> CallRecord:
            record = _awaiting(call_id, _one(call_id, await journal.find(call_id, session_id)), self.path)
            await journal.submit_decision(call_id, approve=approve, by=by, reason=reason, session_id=record.session_id)
            return record

        return self._run(work)
