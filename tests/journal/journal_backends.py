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
    """

    name: str
    factory: Callable[[Path], Journal]
    root: Path
    durable: bool

    def make(self) -> Journal:
        """A journal over this test's storage."""
        return self.factory(self.root)
