"""Carry a call's cancellation to the PostgreSQL server, so a cancelled statement stops now, not at its deadline.

A sync tool runs in a worker thread that the runtime abandons when the call is interrupted or times out; the thread
itself is blocked inside libpq and cannot notice anything. Without help the server keeps running the statement until
`statement_timeout`, holding a pooled connection (and its locks) for nothing. While a statement runs, a small watcher
thread polls the call's cancel probe and, once it turns true, sends the server a cancel request over a separate
connection (`Connection.cancel_safe`). The blocked thread then gets `QueryCanceled`, rolls back, and returns the
connection to the pool in a clean state.

The probe is polled because the runtime's flag is a plain `threading.Event` that calls nobody back; the watcher exists
only while a statement runs and ends at once when the statement does.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from bridge import ToolError

from ._source import Cancelled

__all__ = ["POLL_INTERVAL", "cancelled_error", "cancelling"]

logger = logging.getLogger("toolkits.database")

POLL_INTERVAL = 0.05
"""Seconds between two looks at the cancel probe while a statement runs."""

_CANCEL_TIMEOUT = 5.0
"""How long the cancel request may take to reach the server before the watcher gives up (the deadline still holds)."""


def cancelled_error() -> ToolError:
    """What the model is told when its call was cancelled, before or while its statement ran."""
    return ToolError("cancelled: the call was cancelled and the statement stopped")


@contextmanager
def cancelling(conn: psycopg.Connection[Any], cancelled: Cancelled | None) -> Iterator[None]:
    """While the body runs, send the server a cancel request for `conn` as soon as `cancelled()` turns true.

    The watcher is stopped and joined before this returns, so no cancel request is sent for a later statement on
    the same connection (the rollback, the pool's reset, the next call).

    Raises:
        ToolError: The call was already cancelled: nothing is sent to the server.
    """
    if cancelled is None:
        yield
        return
    if cancelled():
        raise cancelled_error()
    done = threading.Event()

    def watch() -> None:
        while not done.wait(POLL_INTERVAL):
            if cancelled():
                try:
                    conn.cancel_safe(timeout=_CANCEL_TIMEOUT)
                except psycopg.Error:
                    logger.warning("could not cancel a statement; the server stops it at its deadline", exc_info=True)
                return

    watcher = threading.Thread(target=watch, name="bridge-pg-cancel", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()
