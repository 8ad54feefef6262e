"""Journals record each tool call's lifecycle so none is lost or run twice. See `_protocol.py` for the states."""

from ._inbox import ApprovalInbox
from ._memory import MemoryJournal
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
    "InboxDecision",
    "Journal",
    "JournalStats",
    "MemoryJournal",
    "SqliteJournal",
    "StoredResult",
]
