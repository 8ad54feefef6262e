"""The SQLite side of the pack, standard library only: it runs inside a worker process (`_sqlite_worker.py`).

Everything that touches a SQLite connection lives here, layered as described in `_sqlite.py`:

1. `connect`: the file is opened through a `mode=ro` URI, so the engine refuses to write the main database.
2. `set_query_only`: `PRAGMA query_only=ON` refuses every write, including to files attached later (S1) and
   `VACUUM INTO` (which `mode=ro` allows).
3. `limit_connection`: no attached databases (S3), bounded SQL text and values, a heap ceiling
   (`PRAGMA hard_heap_limit`) and temp storage in that heap, so neither memory nor temp files grow without bound.
4. `forbid_extensions`: extension loading stays disabled.
5. `Authorizer` (`_sqlite_policy.py`): an allowlist checked by SQLite's own parser at prepare time (S5).
6. `Deadline`: a progress handler stops a statement at its deadline; the worker's parent kills the whole process
   when the statement does not stop (work inside one function call or in prepare never reaches the handler).

Rows are clipped here, in the worker, before they travel: a 60 MB blob never reaches the tool process. Errors leave
as `EngineError` data, which the parent turns into messages for the model.
"""

from __future__ import annotations

import base64
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from . import _sqlite_catalog as catalog
from ._sqlite_policy import Authorizer, Policy

__all__ = [
    "Caps",
    "Deadline",
    "EngineError",
    "connect",
    "forbid_extensions",
    "limit_connection",
    "session",
    "set_query_only",
]

_PROGRESS_STEPS = 1000  # virtual machine instructions between deadline checks (microseconds of work)
_MAX_NAME = 1000


@dataclass(frozen=True)
class Caps:
    """The numbers from `QueryLimits` the engine applies (plain data, so they cross the process boundary)."""

    max_sql_chars: int = 100_000
    max_cell_chars: int = 500
    max_blob_bytes: int = 96
    max_output_bytes: int = 64_000
    lock_timeout: float = 2.0
    max_memory_bytes: int = 256 * 1024 * 1024
    max_value_bytes: int = 16 * 1024 * 1024


class EngineError(Exception):
    """A failure described as data: `kind` picks the message the parent shows, `detail` is SQLite's own words."""

    def __init__(self, kind: str, detail: str = "", **extra: Any) -> None:
        super().__init__(kind, detail)
        self.kind, self.detail, self.extra = kind, detail, extra

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "detail": self.detail, **self.extra}


# --- layers -----------------------------------------------------------------------------------------------------------


def connect(uri: str, *, lock_timeout: float = 2.0) -> sqlite3.Connection:
    """Open a connection for one call: autocommit mode (we issue BEGIN/ROLLBACK ourselves), no statement cache."""
    conn = sqlite3.connect(
        uri, uri=True, isolation_level=None, check_same_thread=False, cached_statements=0, timeout=lock_timeout
    )
    conn.text_factory = _decode
    return conn


def _decode(raw: bytes) -> str:
    """Text that is not valid UTF-8 is shown with replacement characters instead of failing the whole result."""
    return raw.decode("utf-8", "replace")


def set_query_only(conn: sqlite3.Connection) -> None:
    """Make the connection refuse every write, whatever the file's mode (layer 2)."""
    conn.execute("PRAGMA query_only = ON")
    if conn.execute("PRAGMA query_only").fetchone() != (1,):  # pragma: no cover - a SQLite without query_only
        raise EngineError("config", "this SQLite build ignores PRAGMA query_only; it cannot serve a read-only source")


def limit_connection(conn: sqlite3.Connection, caps: Any) -> None:
    """No attached databases (layer 3), bounded SQL text and values, memory and temp storage in a bounded heap.

    `caps` is a `Caps` or a `QueryLimits` (anything with `max_sql_chars`; the memory fields are optional).
    """
    conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, caps.max_sql_chars)
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, getattr(caps, "max_value_bytes", 64 * 1024 * 1024))
    conn.execute("PRAGMA trusted_schema = OFF")
    memory = getattr(caps, "max_memory_bytes", None)
    if memory is not None:
        conn.execute(f"PRAGMA hard_heap_limit = {int(memory)}")
        conn.execute("PRAGMA temp_store = MEMORY")  # sorts and temp b-trees live in the bounded heap, not on disk


def forbid_extensions(conn: sqlite3.Connection) -> None:
    """Keep extension loading off (layer 4); Python builds without the feature have nothing to turn off."""
    disable = getattr(conn, "enable_load_extension", None)
    if disable is not None:
        disable(False)


class Deadline:
    """A progress handler that stops the running statement at a deadline or when the call is cancelled (layer 6).

    Attributes:
        reason: None while running; "timeout" or "cancelled" once it has stopped a statement.
    """

    def __init__(self, seconds: float, cancelled: Callable[[], bool] | None = None) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.cancelled = cancelled
        self.reason: str | None = None

    def __call__(self) -> int:
        if self.cancelled is not None and self.cancelled():
            self.reason = "cancelled"
            return 1
        if time.monotonic() >= self.at:
            self.reason = "timeout"
            return 1
        return 0

    def install(self, conn: sqlite3.Connection) -> None:
        """Attach to a connection; SQLite calls it every few microseconds of statement work."""
        conn.set_progress_handler(self, _PROGRESS_STEPS)


def classify(exc: BaseException, authorizer: Authorizer, deadline: Deadline) -> EngineError:
    """Describe a failure as data, most specific cause first."""
    message = str(exc)
    if deadline.reason is not None:
        return EngineError(deadline.reason)
    if isinstance(exc, MemoryError) or "out of memory" in message:
        return EngineError("memory")
    if authorizer.denied is not None:
        return EngineError("denied", authorizer.denied, policy=authorizer.policy.value)
    if isinstance(exc, sqlite3.ProgrammingError) and "one statement at a time" in message:
        return EngineError("multiple")
    if isinstance(exc, OverflowError):
        return EngineError("overflow", message)
    for needle, kind in (
        ("cannot VACUUM", "vacuum"),
        ("too many attached databases", "attach"),
        ("readonly database", "readonly"),
        ("attempt to write", "readonly"),
        ("database is locked", "locked"),
        ("database table is locked", "locked"),
        ("string or blob too big", "too_big"),
    ):
        if needle in message:
            return EngineError(kind, message)
    if isinstance(exc, sqlite3.ProgrammingError | sqlite3.OperationalError | sqlite3.IntegrityError):
        return EngineError("invalid", message)
    return EngineError("upstream", message)


@contextmanager
def session(
    uri: str, policy: Policy, timeout: float, caps: Caps, *, write: bool = False
) -> Iterator[tuple[sqlite3.Connection, Authorizer, Deadline]]:
    """One guarded connection inside one transaction, always rolled back unless the caller committed.

    Raises:
        EngineError: anything SQLite (or the heap ceiling) refused, described as data.
    """
    authorizer, deadline = Authorizer(policy), Deadline(timeout)
    try:
        conn = connect(uri, lock_timeout=caps.lock_timeout)
    except sqlite3.Error as exc:
        raise classify(exc, authorizer, deadline) from exc
    try:
        try:
            if not write:
                set_query_only(conn)
            limit_connection(conn, caps)
            forbid_extensions(conn)
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            conn.set_authorizer(authorizer)
            deadline.install(conn)
            yield conn, authorizer, deadline
        except (sqlite3.Error, MemoryError, OverflowError) as exc:
            raise classify(exc, authorizer, deadline) from exc
        except catalog.NotFound as exc:
            raise EngineError("not_found", exc.table, close=exc.close) from exc
    finally:
        conn.set_authorizer(None)
        conn.set_progress_handler(None, 0)
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        finally:
            conn.close()


# --- rows, clipped before they leave the worker -----------------------------------------------------------------------


def clip(value: Any, caps: Caps) -> Any:
    """A cell as JSON-safe data, cut to what the model can be shown: long text and blobs keep their head and size."""
    if isinstance(value, str):
        if len(value) > caps.max_cell_chars:
            return {"$t": value[: caps.max_cell_chars], "n": len(value)}
        return value
    if isinstance(value, bytes):
        return {"$b": base64.b64encode(value[: caps.max_blob_bytes]).decode("ascii"), "n": len(value)}
    return value


def _size(cell: Any) -> int:
    if isinstance(cell, dict):
        return len(str(cell.get("$t") or cell.get("$b") or "")) + 16
    return len(str(cell)) + 2


def fetch(conn: sqlite3.Connection, sql: str, params: Sequence[Any], cap: int, caps: Caps) -> dict[str, Any]:
    """Run one SELECT and fetch at most `cap` rows one at a time, stopping once `max_output_bytes` are in hand."""
    started = time.monotonic()
    cursor = conn.execute(sql, list(params))
    if cursor.description is None:
        raise EngineError("no_rows")
    rows: list[list[Any]] = []
    size, more, capped = 0, False, False
    while (row := cursor.fetchone()) is not None:
        if len(rows) == cap:
            more = True
            break
        cells = [clip(v, caps) for v in row]
        rows.append(cells)
        size += sum(_size(c) for c in cells)
        if size > caps.max_output_bytes:
            capped = cursor.fetchone() is not None
            break
    return {
        "columns": [str(d[0])[:_MAX_NAME] for d in cursor.description],
        "rows": rows,
        "more": more,
        "bytes_capped": capped,
        "elapsed_ms": (time.monotonic() - started) * 1000,
    }


# --- operations -------------------------------------------------------------------------------------------------------


def run(request: dict[str, Any], decide: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Carry out one request from the parent; `decide` asks the parent whether a write may commit."""
    caps = Caps(**request["caps"])
    op = request["op"]
    timeout = float(request["timeout"])
    if op == "write":
        return _write(request, caps, timeout, decide)
    policy = Policy(request.get("policy", "read"))
    with session(request["uri"], policy, timeout, caps) as (conn, _auth, _deadline):
        if op == "probe":
            conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()
            return {"version": conn.execute("SELECT sqlite_version()").fetchone()[0]}
        if op == "query":
            return fetch(conn, request["sql"], request["params"], int(request["cap"]), caps)
        if op == "sample":
            name = catalog.resolve(conn, request["table"])["name"]
            count = int(request["cap"])
            return fetch(conn, f"SELECT * FROM {catalog.quote(name)} LIMIT ?", [count], count, caps)
        if op == "explain":
            rows = conn.execute(f"EXPLAIN QUERY PLAN {request['sql']}", list(request["params"])).fetchall()
            depth: dict[int, int] = {0: -1}
            lines = []
            for node_id, parent, _unused, detail in rows:
                depth[node_id] = depth.get(parent, -1) + 1
                lines.append("  " * depth[node_id] + str(detail))
            return {"engine": "sqlite", "plan": lines}
        if op == "describe":
            return catalog.describe(conn, catalog.resolve(conn, request["table"]))
        if op == "search":
            found = catalog.search(
                conn, request["object_type"], request["pattern"], request["table"], request["detail"], request["limit"]
            )
            return {"found": found}
    raise EngineError("upstream", f"unknown operation {op!r}")


def _write(
    request: dict[str, Any], caps: Caps, timeout: float, decide: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    sample = int(request["sample"])
    with session(request["uri"], Policy.WRITE, timeout, caps, write=True) as (conn, _auth, _deadline):
        started = time.monotonic()
        cursor = conn.execute(request["sql"], list(request["params"]))
        returning: dict[str, Any] | None = None
        if cursor.description is not None:
            kept: list[list[Any]] = []
            extra = False
            for row in cursor:  # RETURNING: SQLite counts rows only as they are stepped
                if len(kept) < sample:
                    kept.append([clip(v, caps) for v in row])
                else:
                    extra = True
            returning = {
                "columns": [str(d[0])[:_MAX_NAME] for d in cursor.description],
                "rows": kept,
                "more": extra,
                "elapsed_ms": (time.monotonic() - started) * 1000,
            }
        outcome = {"rowcount": cursor.rowcount, "returning": returning}
        if decide(outcome):
            conn.set_authorizer(None)  # the policy is for the model's statement; COMMIT is ours
            conn.execute("COMMIT")
            outcome["committed"] = True
        return outcome
