"""End-to-end tests run on asyncio unless marked with `BOTH_BACKENDS` (see e2e_support)."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """asyncio by default; the core tests parametrize trio too."""
    return "asyncio"
