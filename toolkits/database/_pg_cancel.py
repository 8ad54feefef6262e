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
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from bridge import ToolError

from ._source import Cancelled

__all__ = ["GRACE", "POLL_INTERVAL", "Watch", "cancelled_error", "cancelling"]

logger = logging.getLogger("toolkits.database")

POLL_INTERVAL = 0.05
"""Seconds between two looks at the cancel probe while a statement runs."""

_CANCEL_TIMEOUT = 5.0
"""How long the cancel request may take to reach the server before the watcher gives up (the deadline still holds)."""


def cancelled_error() -> ToolError:
    """What the model is told when its call was cancelled, before or while its statement ran."""
    return ToolError("cancelled: the call was cancelled and the statement stopped")


GRACE = 0.25
"""Seconds a statement may overrun its deadline (or a cancel request) before its server process is terminated."""


class Watch:
    """What the watcher did to the call's statement (read after the body ended)."""

    def __init__(self) -> None:
        self.cancel_sent = False
        self.terminated = False


@contextmanager
def cancelling(
    conn: psycopg.Connection[Any],
    cancelled: Cancelled | None,
    *,
    deadline: float | None = None,
    terminate: Callable[[int], None] | None = None,
) -> Iterator[Watch]:
    """While the body runs, stop `conn`'s statement once `cancelled()` turns true or the deadline passes.

    On cancellation, a cancel request (`Connection.cancel_safe`). Past the deadline the server's own
    `statement_timeout` has stopped the statement; one still running `GRACE` later (or `GRACE` after a cancel
    request) ignores interrupts, so `terminate(pid)` asks the server to end the process, and `GRACE` after that
    the client side of the socket is shut, so the call is answered and the pool drops the broken connection.

    The watcher is stopped and joined before this returns, so no cancel request is sent for a later statement on
    the same connection (the rollback, the pool's reset, the next call).

    Raises:
        ToolError: The call was already cancelled: nothing is sent to the server.
    """
    watch = Watch()
    if cancelled is not None and cancelled():
        raise cancelled_error()
    if cancelled is None and deadline is None:
        yield watch
        return
    done = threading.Event()
    pid = conn.info.backend_pid

    def watch_statement() -> None:
        stage, since = 0, 0.0
        while not done.wait(POLL_INTERVAL):
            now = time.monotonic()
            overdue = deadline is not None and now >= deadline + GRACE
            if stage == 0 and cancelled is not None and cancelled():
                stage, since, watch.cancel_sent = 1, now, True
                try:
                    conn.cancel_safe(timeout=_CANCEL_TIMEOUT)
                except psycopg.Error:
                    logger.warning("could not cancel a statement; terminating its server process", exc_info=True)
            elif terminate is not None and stage < 2 and (overdue or (stage == 1 and now >= since + GRACE)):
                # The server's statement_timeout fires at the deadline; a statement still running GRACE later
                # ignores interrupts, so a cancel request would change nothing (and could hit a later statement).
                stage, since, watch.terminated = 2, now, True
                try:
                    terminate(pid)
                except psycopg.Error:
                    logger.error("could not terminate server process %s after its deadline", pid, exc_info=True)
            elif stage == 2 and now >= since + GRACE:
                _hang_up(conn, pid)
                return

    watcher = threading.Thread(target=watch_statement, name="bridge-pg-cancel", daemon=True)
    watcher.start()
    try:
        yield watch
    finally:
        done.set()
        watcher.join()


def _hang_up(conn: psycopg.Connection[Any], pid: int) -> None:
    """Shut the client side of the socket, so the call's thread stops waiting for a server that does not answer.

    The server process was told to terminate, but it acts on that only at its next interrupt check: a function
    that never checks (LIKE on very long strings) computes on until it returns. The call must not wait for it, and
    its pooled connection must come back: the broken connection is discarded by the pool.
    """
    try:
        with socket.socket(fileno=os.dup(conn.pgconn.socket)) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except (OSError, psycopg.Error):
        logger.debug("could not shut down the socket of server process %s", pid, exc_info=True)
    logger.error(
        "PostgreSQL backend %s ignores cancel and terminate requests; the call was answered and its connection "
        "dropped, but the server process computes until its current function returns",
        pid,
    )
