"""Journals record each tool call's lifecycle so none is lost or run twice. See `_protocol.py` for the states."""

from ._memory import MemoryJournal
from ._protocol import CallRecord, CallState, Journal, JournalStats, StoredResult
from ._sqlite import SqliteJournal

__all__ = ["CallRecord", "CallState", "Journal", "JournalStats", "MemoryJournal", "SqliteJournal", "StoredResult"]
