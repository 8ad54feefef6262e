"""SQLite through the standard library, with six independent enforcement layers.

Each layer below is a small function so it can be tested on its own, and each one alone stops a known bypass:

1. `connect`: the file is opened through a `mode=ro` URI, so the engine refuses to write the main database.
2. `set_query_only`: `PRAGMA query_only=ON` refuses every write, including to files attached later (S1) and
   `VACUUM INTO` (which `mode=ro` allows).
3. `limit_connection`: `setlimit(SQLITE_LIMIT_ATTACHED, 0)` removes ATTACH and VACUUM INTO outright (S3), and length
   limits bound the SQL text and any value built at run time.
4. `forbid_extensions`: extension loading stays disabled.
5. `Authorizer` (`_sqlite_policy.py`): an allowlist checked by SQLite's own parser at prepare time (S5): SELECT,
   reads, allowlisted functions; PRAGMA, ATTACH, transaction control and writes are refused.
6. `Deadline`: a progress handler stops any statement past its deadline or once the call is cancelled (S6); SQLite
   has no statement timeout of its own.

On top of those, `Connection.execute` compiles exactly one statement (S4), every connection lives for one call and is
always rolled back, and values are bound, never formatted into SQL.
"""

from __future__ import annotations

import os
import sqlite3
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bridge import ConfigError, ToolError

from . import _sqlite_catalog as catalog
from ._format import Rows
from ._limits import QueryLimits
from ._source import Cancelled, Detail, ObjectType, Param, WriteOutcome
from ._sqlite_policy import Authorizer, Policy

__all__ = [
    "Deadline",
    "SqliteSource",
    "connect",
    "forbid_extensions",
    "limit_connection",
    "set_query_only",
    "sqlite_errors",
]

_URI_OPTIONS = frozenset({"immutable", "nolock"})
_PROGRESS_STEPS = 1000  # virtual machine instructions between deadline checks (microseconds of work)


# --- layers -----------------------------------------------------------------------------------------------------------


def connect(uri: str, *, lock_timeout: float = 2.0) -> sqlite3.Connection:
    """Open a connection for one call: autocommit mode (we issue BEGIN/ROLLBACK ourselves), no statement cache."""
    return sqlite3.connect(
        uri, uri=True, isolation_level=None, check_same_thread=False, cached_statements=0, timeout=lock_timeout
    )


def set_query_only(conn: sqlite3.Connection) -> None:
    """Make the connection refuse every write, whatever the file's mode (layer 2)."""
    conn.execute("PRAGMA query_only = ON")
    if conn.execute("PRAGMA query_only").fetchone() != (1,):  # pragma: no cover - a SQLite without query_only
        raise ConfigError("this SQLite build ignores PRAGMA query_only; it cannot serve a read-only source")


def limit_connection(conn: sqlite3.Connection, limits: QueryLimits) -> None:
    """No attached databases at all (layer 3), bounded SQL text and values, and no schema-borne functions."""
    conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, limits.max_sql_chars)
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 64 * 1024 * 1024)
    conn.execute("PRAGMA trusted_schema = OFF")


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

    def __init__(self, seconds: float, cancelled: Cancelled | None = None) -> None:
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


@contextmanager
def sqlite_errors(authorizer: Authorizer, deadline: Deadline, *, limits: QueryLimits) -> Iterator[None]:
    """Translate SQLite errors into `ToolError`s that tell the model what happened and what it can do."""
    try:
        yield
    except sqlite3.Error as exc:
        raise _tool_error(exc, authorizer, deadline, limits) from exc


def _tool_error(exc: sqlite3.Error, authorizer: Authorizer, deadline: Deadline, limits: QueryLimits) -> ToolError:
    message = str(exc)
    if deadline.reason == "timeout":
        return ToolError(
            f"timeout: the statement ran past its {deadline.seconds:g} s deadline and was stopped. Make it cheaper "
            f"(filter, aggregate, use an index) or pass a longer timeout_ms (up to {int(limits.max_timeout * 1000)})."
        )
    if deadline.reason == "cancelled":
        return ToolError("cancelled: the call was cancelled and the statement stopped")
    if authorizer.denied is not None:
        allowed = (
            "one INSERT, UPDATE or DELETE on this database's tables"
            if authorizer.policy is Policy.WRITE
            else "one SELECT (WITH and recursive CTEs included) over this database's tables"
        )
        return ToolError(f"denied_by_policy: {authorizer.denied} is not allowed here; this tool runs {allowed}")
    if isinstance(exc, sqlite3.ProgrammingError) and "one statement at a time" in message:
        return ToolError("invalid_input: send exactly one SQL statement; this one contains more than one")
    if "cannot VACUUM" in message:
        return ToolError("denied_by_policy: VACUUM is not allowed here; this tool runs one SELECT")
    if "too many attached databases" in message:
        return ToolError("denied_by_policy: ATTACH (and VACUUM INTO) are disabled on this source")
    if "readonly database" in message or "attempt to write" in message:
        return ToolError("denied_by_policy: this source is read-only; the engine refused a write")
    if "database is locked" in message or "database table is locked" in message:
        return ToolError("upstream_error: the database is locked by another writer; try again shortly")
    if isinstance(exc, sqlite3.ProgrammingError | sqlite3.OperationalError | sqlite3.IntegrityError):
        return ToolError(f"invalid_input: SQLite refused the statement: {message}")
    return ToolError(f"upstream_error: SQLite failed: {message}")


# --- the source -------------------------------------------------------------------------------------------------------


def _file_uri(path_or_uri: str | os.PathLike[str], *, read_only: bool) -> tuple[Path, str]:
    """Validate the target and build the URI we open, forcing `mode=ro` (or `rw`, never `rwc`)."""
    text = os.fspath(path_or_uri)
    options: dict[str, str] = {}
    if text.startswith("file:"):
        parts = urllib.parse.urlsplit(text)
        path = Path(urllib.parse.unquote(parts.path))
        options = dict(urllib.parse.parse_qsl(parts.query))
        unknown = sorted(set(options) - _URI_OPTIONS - {"mode"})
        if unknown:
            raise ConfigError(f"unsupported SQLite URI options {unknown}; allowed: {sorted(_URI_OPTIONS)}")
        mode = options.pop("mode", None)
        if mode is not None and mode != ("ro" if read_only else "rw"):
            raise ConfigError(f"the URI asks for mode={mode}; pass read_only=... to sqlite_toolset instead")
    else:
        path = Path(text)
    if text in (":memory:", "") or not path.is_file():
        raise ConfigError(f"no SQLite database file at {text!r}; sqlite_toolset serves an existing file")
    query = urllib.parse.urlencode({"mode": "ro" if read_only else "rw", **options})
    return path.resolve(), f"{path.resolve().as_uri()}?{query}"


class SqliteSource:
    """A SQLite file served to the model; every call opens its own guarded connection in the calling thread."""

    engine = "sqlite"
    placeholder_help = "Bind values with ? placeholders (or ?1, ?2) and pass them in params, in order."
    preview_effects = "nothing: the preview was rolled back (AUTOINCREMENT counters included)"

    def __init__(self, path_or_uri: str | os.PathLike[str], *, read_only: bool, limits: QueryLimits) -> None:
        self.read_only = read_only
        self.limits = limits
        self.path, self._uri = _file_uri(path_or_uri, read_only=True)
        self._write_uri = None if read_only else _file_uri(path_or_uri, read_only=False)[1]
        try:
            with self._session(Policy.CATALOG, limits.timeout, None) as (conn, _auth, _deadline):
                conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()  # reads the header: is it a database?
                self.version = conn.execute("SELECT sqlite_version()").fetchone()[0]
        except ToolError as exc:
            raise ConfigError(f"cannot open {self.path} as a SQLite database: {exc}") from exc

    @contextmanager
    def _session(
        self, policy: Policy, timeout: float, cancelled: Cancelled | None, *, write: bool = False
    ) -> Iterator[tuple[sqlite3.Connection, Authorizer, Deadline]]:
        """One guarded connection inside one transaction, always rolled back unless the caller committed.

        `policy` is what the statement may do; `write` opens the file read-write (only `write()` asks for it).
        """
        uri = self._write_uri if write else self._uri
        if uri is None:
            raise ToolError("denied_by_policy: this source is read-only")
        authorizer, deadline = Authorizer(policy), Deadline(timeout, cancelled)
        with sqlite_errors(authorizer, deadline, limits=self.limits):
            conn = connect(uri, lock_timeout=self.limits.lock_timeout)
        try:
            with sqlite_errors(authorizer, deadline, limits=self.limits):
                if not write:
                    set_query_only(conn)
                limit_connection(conn, self.limits)
                forbid_extensions(conn)
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                conn.set_authorizer(authorizer)
                deadline.install(conn)
            with sqlite_errors(authorizer, deadline, limits=self.limits):
                yield conn, authorizer, deadline
        finally:
            conn.set_authorizer(None)
            conn.set_progress_handler(None, 0)
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.close()

    def describe(self) -> dict[str, Any]:
        return {
            "engine": "sqlite",
            "version": self.version,
            "database": self.path.name,
            "mode": "read-only" if self.read_only else "read-write",
            "placeholders": self.placeholder_help,
        }

    def search_objects(
        self,
        object_type: ObjectType,
        pattern: str,
        schema: str | None,
        table: str | None,
        detail: Detail,
        limit: int,
        cancelled: Cancelled,
    ) -> list[dict[str, Any]]:
        _main_only(schema)
        with self._session(Policy.CATALOG, self.limits.timeout, cancelled) as (conn, _a, _d):
            return catalog.search(conn, object_type, pattern, table, detail, limit)

    def describe_table(self, table: str, schema: str | None, cancelled: Cancelled) -> dict[str, Any]:
        _main_only(schema)
        with self._session(Policy.CATALOG, self.limits.timeout, cancelled) as (conn, _a, _d):
            return catalog.describe(conn, catalog.resolve(conn, table))

    def sample_rows(self, table: str, schema: str | None, count: int, cancelled: Cancelled) -> Rows:
        _main_only(schema)
        with self._session(Policy.READ, self.limits.timeout, cancelled) as (conn, _a, _d):
            name = catalog.resolve(conn, table)["name"]
            return _fetch(conn, f"SELECT * FROM {catalog.quote(name)} LIMIT ?", [count], count, time.monotonic())

    def query(self, sql: str, params: Sequence[Param], cap: int, timeout: float, cancelled: Cancelled) -> Rows:
        self.limits.check_sql(sql)
        started = time.monotonic()
        with self._session(Policy.READ, timeout, cancelled) as (conn, _a, _d):
            return _fetch(conn, sql, params, cap, started)

    def explain(self, sql: str, params: Sequence[Param], analyze: bool, timeout: float, cancelled: Cancelled) -> Any:
        self.limits.check_sql(sql)
        if analyze:
            raise ToolError("invalid_input: SQLite has no EXPLAIN ANALYZE; call explain without analyze")
        # EXPLAIN QUERY PLAN compiles but never runs the statement, so DML may be explained on read-write sources.
        policy = Policy.READ if self.read_only else Policy.WRITE
        with self._session(policy, timeout, cancelled) as (conn, _a, _d):
            rows = conn.execute(f"EXPLAIN QUERY PLAN {sql}", list(params)).fetchall()
        depth: dict[int, int] = {0: -1}
        lines = []
        for node_id, parent, _unused, detail in rows:
            depth[node_id] = depth.get(parent, -1) + 1
            lines.append("  " * depth[node_id] + str(detail))
        return {"engine": "sqlite", "plan": lines}

    def write(
        self,
        sql: str,
        params: Sequence[Param],
        *,
        commit: bool,
        check: Callable[[int], None],
        sample: int,
        timeout: float,
        cancelled: Cancelled,
    ) -> WriteOutcome:
        self.limits.check_sql(sql)
        if self.read_only:
            raise ToolError("denied_by_policy: this source is read-only")
        started = time.monotonic()
        with self._session(Policy.WRITE, timeout, cancelled, write=True) as (conn, _a, _d):
            cursor = conn.execute(sql, list(params))
            returning: Rows | None = None
            if cursor.description is not None:
                kept: list[Sequence[Any]] = []
                for row in cursor:  # RETURNING: SQLite counts rows only as they are stepped
                    if len(kept) <= sample:
                        kept.append(row)
                columns = [d[0] for d in cursor.description]
                returning = Rows(columns, kept[:sample], len(kept) > sample, (time.monotonic() - started) * 1000)
            rowcount = cursor.rowcount
            check(rowcount)
            if commit:
                conn.set_authorizer(None)  # the policy is for the model's statement; COMMIT is ours
                conn.execute("COMMIT")
        return WriteOutcome(rowcount=rowcount, returning=returning)

    def close(self) -> None:
        """Nothing to release: connections live for one call."""


def _main_only(schema: str | None) -> None:
    if schema not in (None, "main"):
        raise ToolError(f"invalid_input: a SQLite source has one schema, 'main' (got {schema!r})")


def _fetch(conn: sqlite3.Connection, sql: str, params: Sequence[Param], cap: int, started: float) -> Rows:
    cursor = conn.execute(sql, list(params))
    if cursor.description is None:
        raise ToolError("invalid_input: the statement returns no rows; this tool runs one SELECT")
    fetched = cursor.fetchmany(cap + 1)
    columns = [d[0] for d in cursor.description]
    return Rows(columns, fetched[:cap], len(fetched) > cap, (time.monotonic() - started) * 1000)
