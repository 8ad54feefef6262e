"""Two real servers: `good` on 127.0.0.1 (allowed explicitly) and `canary` on 127.0.0.2, which must never be hit."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from http_servers import Server, serve


@pytest.fixture(scope="module")
def good() -> Iterator[Server]:
    """The allowed server, on 127.0.0.1."""
    with serve("127.0.0.1") as server:
        yield server


@pytest.fixture(scope="module")
def canary() -> Iterator[Server]:
    """A server on 127.0.0.2: blocked by the guard, so its hit list must stay empty."""
    with serve("127.0.0.2") as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_hits(good: Server, canary: Server) -> None:
    """Each test starts with empty hit lists."""
    good.hits.clear()
    canary.hits.clear()
