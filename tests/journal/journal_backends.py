"""What the conformance suite needs to know about a journal backend (the fixtures live in conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bridge.journal import Journal


@dataclass(frozen=True)
class Backend:
    """Makes journals over one test's storage; `make()` again opens the same storage (when `durable`)."""

    name: str
    make: Callable[[], Journal]
    durable: bool
