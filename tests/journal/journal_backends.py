"""What the conformance suite needs to know about a journal backend (the fixtures live in conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bridge.journal import Journal


@dataclass(frozen=True)
class Backend:
    """A journal backend under test.

    Attributes:
        name: For test ids and messages.
        factory: Makes an (unopened) journal over the storage identified by a directory; the same directory means the
            same storage, so a durable backend's second journal sees what the first one wrote.
        root: This test's storage directory.
        durable: Whether anything survives close.
        bounded: Makes a journal over the same storage that promises to remember at least `keep_finished` finished
            calls, `keep_results` of them whole (a backend whose window is an age, not a count, ignores both).
        forgets_by_count: Whether finished calls past `keep_finished` are forgotten (False: they are kept until
            their age passes the backend's retention, which `prune()` stands in for in the suite).
    """

    name: str
    factory: Callable[[Path], Journal]
    root: Path
    durable: bool
    bounded: Callable[[Path, int, int], Journal]
    forgets_by_count: bool

    def make(self) -> Journal:
        """A journal over this test's storage."""
        return self.factory(self.root)

    def make_bounded(self, keep_finished: int, keep_results: int) -> Journal:
        """A journal over this test's storage with (at least) these windows for finished calls."""
        return self.bounded(self.root, keep_finished, keep_results)
