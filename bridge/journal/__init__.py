"""Journals record each tool call's lifecycle so none is lost or run twice. See `_protocol.py` for the states.

Backends: memory, SQLite (one process), PostgreSQL (a fleet: with `SessionLeases`, which process serves which session,
and fencing of every write by the lease's token). psycopg is imported only when a PostgreSQL object is opened.
"""

from ._inbox import ApprovalInbox, PostgresInbox
from ._leases import Lease, LeaseStats, SessionLeases
from ._memory import MemoryJournal
from ._pg import Database, describe_dsn
from ._postgres import PostgresJournal
from ._protocol import (
    ApprovalOutcome,
    ApprovalRecord,
    CallRecord,
    CallState,
    InboxDecision,
    Journal,
    JournalStats,
    StoredResult,
)
from ._sqlite import SqliteJournal

__all__ = [
    "ApprovalInbox",
    "ApprovalOutcome",
    "ApprovalRecord",
    "CallRecord",
    "CallState",
    "Database",
    "InboxDecision",
    "Journal",
    "JournalStats",
    "Lease",
    "LeaseStats",
    "MemoryJournal",
    "PostgresInbox",
    "PostgresJournal",
    "SessionLeases",
    "SqliteJournal",
    "StoredResult",
    "describe_dsn",
]
