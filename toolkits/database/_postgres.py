"""PostgreSQL through psycopg 3 and a connection pool, with four independent enforcement layers.

Each layer is a small function so it can be tested on its own, and each one alone stops a known bypass:

1. **Role** (`_pg_roles.inspect_role`, at construction): refuse a superuser, a member of the server-file roles, or a
   role that owns, can write or can create anything, when the source is read-only (P6, P7).
2. **Channel** (`fetch_rows`, `run_prepared`): model SQL only ever travels over the extended protocol, as a server-side
   cursor (`DECLARE ... CURSOR FOR`) or a prepared statement, both of which the server refuses to split into several
   commands. `COMMIT; DROP TABLE ...` (V1, P1-P4) has no channel to travel on.
3. **Parse** (`_guard.SqlGuard`, `_pg_allowlist.Allowlist`): pglast checks the statement kind and collects every name
   that could run code (calls in any position, V4; field notation; operators; types), which is then resolved against
   the catalog in the call's transaction and checked with an allowlist.
4. **Engine** (`begin`): `BEGIN READ ONLY`, `SET LOCAL statement_timeout`, `lock_timeout` and
   `idle_in_transaction_session_timeout`, and always `ROLLBACK` (P5, P8, P9). The deadline is the server's, so it holds
   even when the calling thread has been abandoned; a statement that ignores it is terminated (`_pg_cancel`).

Rows are fetched in small batches from a server-side cursor with large cells cut on the server (`_pg_rows`), so a
query over a million rows transfers `cap + 1` of them, truncation is detected exactly, and no cell is larger than a
few times `max_cell_chars` when it reaches this process (P10).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

try:
    import psycopg
    from psycopg import errors, sql
    from psycopg_pool import ConnectionPool, PoolTimeout

    from ._guard import READ_KINDS, WRITE_KINDS, SqlGuard, statement_text
    from ._pg_allowlist import Allowlist
    from ._pg_rows import fetch_rows, run_prepared, write_returning
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "the PostgreSQL toolset needs psycopg, psycopg-pool and pglast: pip install 'tool-bridge[postgres]'"
    ) from exc

from bridge import ConfigError, ToolError

from . import _pg_catalog as catalog
from ._format import Rows, fenced
from ._limits import QueryLimits
from ._pg_cancel import Watch, cancelled_error, cancelling
from ._pg_roles import inspect_role
from ._source import Cancelled, Detail, ObjectType, Param, WriteOutcome, check_params

__all__ = ["PostgresSource", "begin", "fetch_rows", "pg_errors", "run_prepared"]

logger = logging.getLogger("toolkits.database")
Connection = psycopg.Connection[tuple[Any, ...]]


# --- layers -----------------------------------------------------------------------------------------------------------


def begin(conn: Connection, *, read_only: bool, timeout: float, lock_timeout: float) -> None:
    """Open the call's transaction with the server-side deadlines (layer 4). Our own constant SQL, no model input.

    The trailing `SELECT 1` takes the transaction's snapshot. Until a snapshot exists, PostgreSQL still accepts
    `SET TRANSACTION READ WRITE` (or `SET transaction_read_only = off`) and turns a READ ONLY transaction into a
    writable one; after it, the mode is fixed for the rest of the transaction.
    """
    ms = max(1, int(timeout * 1000))
    conn.execute(
        sql.SQL(
            "BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ, {mode}; SET LOCAL statement_timeout = {timeout}; "
            "SET LOCAL lock_timeout = {lock}; SET LOCAL idle_in_transaction_session_timeout = {idle}; SELECT 1"
        ).format(
            mode=sql.SQL("READ ONLY" if read_only else "READ WRITE"),
            timeout=sql.Literal(ms),
            lock=sql.Literal(max(1, int(lock_timeout * 1000))),
            idle=sql.Literal(ms + 5000),
        )
    )


def rollback(conn: Connection) -> None:
    """End the call's transaction without keeping anything; a broken connection is left for the pool to discard."""
    if conn.closed or conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        return
    try:
        conn.execute("ROLLBACK")
    except psycopg.Error:
        logger.debug("rollback failed; the pool discards the connection", exc_info=True)


@contextmanager
def pg_errors(timeout: float, limits: QueryLimits, cancelled: Cancelled | None = None) -> Iterator[None]:
    """Translate server errors into `ToolError`s that say what happened and what the model can do."""
    try:
        yield
    except psycopg.Error as exc:
        raise _tool_error(exc, timeout, limits, cancelled) from exc


def _tool_error(exc: psycopg.Error, timeout: float, limits: QueryLimits, cancelled: Cancelled | None) -> ToolError:
    detail = (exc.diag.message_primary or str(exc)).strip()
    if isinstance(exc, errors.QueryCanceled):
        if cancelled is not None and cancelled():
            return cancelled_error()
        return ToolError(
            f"timeout: the statement ran past its {timeout:g} s deadline and the server stopped it. Make it cheaper "
            f"(filter, aggregate, use an index) or pass a longer timeout_ms (up to {int(limits.max_timeout * 1000)})."
        )
    if isinstance(exc, errors.LockNotAvailable):
        return ToolError(f"timeout: a lock was not granted within {limits.lock_timeout:g} s; try again later")
    if isinstance(exc, errors.ReadOnlySqlTransaction | errors.InsufficientPrivilege):
        return ToolError(fenced("denied_by_policy: the database refused it; its message:", detail))
    if isinstance(exc, errors.ConfigurationLimitExceeded | errors.OutOfMemory | errors.DiskFull):
        return ToolError(
            fenced(
                "denied_by_policy: the statement hit a server resource limit (temp_file_limit, memory); make it "
                "cheaper (filter, aggregate, fewer or smaller columns). The server said:",
                detail,
            )
        )
    if isinstance(exc, errors.SyntaxError) and "multiple commands" in detail:
        return ToolError("invalid_input: send exactly one SQL statement; this one contains more than one")
    if isinstance(exc, errors.ProgrammingError | errors.DataError | errors.IntegrityError | errors.ProtocolViolation):
        hint = (
            " (placeholders are $1, $2, ...; params gives one value per placeholder)" if "parameter" in detail else ""
        )
        return ToolError(fenced(f"invalid_input: PostgreSQL refused the statement{hint}; its message:", detail))
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return ToolError(fenced("upstream_error: the database connection failed:", detail))
    return ToolError(fenced("upstream_error: PostgreSQL failed:", detail))


def _commit(conn: Connection) -> None:
    """COMMIT; a connection lost while committing leaves the outcome unknown, and the model must be told so."""
    try:
        conn.execute("COMMIT")
    except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
        raise ToolError(
            "in_doubt: the connection failed while committing; the change may or may not have been applied. "
            "Check the data before trying again."
        ) from exc


def _discard_session_state(conn: Connection) -> None:
    """Pool reset hook: drop prepared statements, temp objects and settings before the next call reuses it."""
    conn.execute("DISCARD ALL")


# --- the source -------------------------------------------------------------------------------------------------------


class PostgresSource:
    """A PostgreSQL database served to the model through a small pool of connections."""

    engine = "postgresql"
    placeholder_help = "Bind values with $1, $2, ... placeholders and pass them in params, in order."
    preview_effects = (
        "no rows: the preview was rolled back. Sequence values it drew (nextval, serial or identity defaults) stay "
        "used, because PostgreSQL never rolls sequences back, so later ids skip them"
    )

    def __init__(
        self,
        dsn: str,
        *,
        read_only: bool,
        limits: QueryLimits,
        allow_privileged_role: bool = False,
        allow_functions: Iterable[str] = (),
        pool_size: int = 4,
        connect_timeout: float = 10.0,
    ) -> None:
        self.read_only = read_only
        self.limits = limits
        allowed = list(allow_functions)
        self.guard = SqlGuard.default(allowed)
        self.allowlist = Allowlist(allowed)
        self._dsn = dsn
        self._connect_kwargs: dict[str, Any] = {"autocommit": True, "connect_timeout": max(1, int(connect_timeout))}
        self.warnings: list[str] = []
        self._check_role(allow_privileged_role)
        self._pool_size = pool_size
        self._pool: ConnectionPool[Connection] | None = None
        self._lock = threading.Lock()

    def _check_role(self, allow_privileged_role: bool) -> None:
        try:
            with psycopg.connect(self._dsn, **self._connect_kwargs) as conn:
                report = inspect_role(conn, read_only=self.read_only)
                row = conn.execute("SELECT current_setting('server_version'), current_database()").fetchone()
        except psycopg.Error as exc:
            raise ConfigError(f"cannot connect to PostgreSQL to check the role: {exc}") from exc
        self.version, self.database = (str(row[0]), str(row[1])) if row else ("?", "?")
        self.role = report.role
        self.warnings = list(report.warnings)
        mode = "read-only" if self.read_only else "read-write"
        if report.refusals and not allow_privileged_role:
            raise ConfigError(
                [f"refusing to serve a {mode} PostgreSQL source: {r}" for r in report.refusals] + [report.fix()]
            )
        for refusal in report.refusals:
            self.warnings.append(f"UNSAFE: {refusal}")
        for warning in self.warnings:
            logger.warning("PostgreSQL source %s as %s: %s", self.database, self.role, warning)

    def _connection_pool(self) -> ConnectionPool[Connection]:
        with self._lock:
            if self._pool is None:
                self._pool = ConnectionPool(
                    self._dsn,
                    min_size=0,
                    max_size=self._pool_size,
                    kwargs=self._connect_kwargs,
                    reset=_discard_session_state,
                    open=True,
                    name=f"bridge-{self.database}",
                )
            return self._pool

    @contextmanager
    def _transaction(self, *, write: bool, timeout: float, cancelled: Cancelled | None) -> Iterator[Connection]:
        """A pooled connection inside a fresh transaction, rolled back at the end unless the caller committed.

        The call has one hard deadline, `timeout` from now: past it (or once the call is cancelled) the statement
        gets a cancel request, and `GRACE` later, if the server is still busy, its process is terminated (see
        `_pg_cancel`). Waiting for a free pooled connection counts against the same deadline.
        """
        deadline = time.monotonic() + timeout
        watch = Watch()
        try:
            with (
                pg_errors(timeout, self.limits, cancelled),
                self._connection_pool().connection(timeout=max(0.1, timeout)) as conn,
            ):
                try:
                    with cancelling(conn, cancelled, deadline=deadline, terminate=self._terminate) as watch:
                        begin(conn, read_only=not write, timeout=timeout, lock_timeout=self.limits.lock_timeout)
                        yield conn
                finally:
                    rollback(conn)
        except ToolError as exc:
            if watch.terminated and not (cancelled is not None and cancelled()):
                raise ToolError(
                    f"timeout: the statement ran past its {timeout:g} s deadline and ignored the cancel request, so "
                    "its server process was terminated and its connection dropped. Make it cheaper (LIKE on very long "
                    "strings never stops early) or pass a longer timeout_ms (up to "
                    f"{int(self.limits.max_timeout * 1000)})."
                ) from exc
            raise
        except PoolTimeout as exc:
            raise ToolError(
                f"upstream_error: all {self._pool_size} database connections stayed busy for the call's {timeout:g} s "
                "deadline; try again shortly"
            ) from exc

    def _terminate(self, pid: int) -> None:
        """End one of our own server processes that ignored its cancel request (same role: no privilege needed)."""
        with psycopg.connect(self._dsn, **self._connect_kwargs) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", [pid])
        logger.warning("terminated PostgreSQL backend %s: its statement ignored the cancel request", pid)

    def describe(self) -> dict[str, Any]:
        return {
            "engine": "postgresql",
            "version": self.version,
            "database": self.database,
            "role": self.role,
            "mode": "read-only" if self.read_only else "read-write",
            "placeholders": self.placeholder_help,
            **({"warnings": self.warnings} if self.warnings else {}),
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
        with self._transaction(write=False, timeout=self.limits.timeout, cancelled=cancelled) as conn:
            return catalog.search(conn, object_type, pattern, schema, table, detail, limit)

    def describe_table(self, table: str, schema: str | None, cancelled: Cancelled) -> dict[str, Any]:
        with self._transaction(write=False, timeout=self.limits.timeout, cancelled=cancelled) as conn:
            return catalog.describe(conn, catalog.resolve(conn, table, schema))

    def sample_rows(self, table: str, schema: str | None, count: int, cancelled: Cancelled) -> Rows:
        with self._transaction(write=False, timeout=self.limits.timeout, cancelled=cancelled) as conn:
            found = catalog.resolve(conn, table, schema)
            name = sql.Identifier(found["schema"], found["name"])
            query = sql.SQL("SELECT * FROM {} LIMIT $1").format(name).as_string(conn)
            return fetch_rows(conn, query, [count], count, self.limits)

    def query(self, sql_text: str, params: Sequence[Param], cap: int, timeout: float, cancelled: Cancelled) -> Rows:
        self.limits.check_sql(sql_text)
        check_params(params)
        refs = self.guard.check_read(sql_text)
        statement = statement_text(sql_text)
        with self._transaction(write=False, timeout=timeout, cancelled=cancelled) as conn:
            self.allowlist.resolve(conn, refs)
            return fetch_rows(conn, statement, params, cap, self.limits)

    def explain(
        self, sql_text: str, params: Sequence[Param], analyze: bool, timeout: float, cancelled: Cancelled
    ) -> Any:
        self.limits.check_sql(sql_text)
        if analyze and self.read_only:
            raise ToolError("denied_by_policy: EXPLAIN ANALYZE runs the query; this source is read-only")
        check_params(params)
        if self.read_only or analyze:
            refs = self.guard.check_read(sql_text)
            inner = READ_KINDS
        else:
            kind = self.guard.write_kind(sql_text)
            inner = WRITE_KINDS if kind in WRITE_KINDS else READ_KINDS
            refs = (self.guard.check_write if kind in WRITE_KINDS else self.guard.check_read)(sql_text)
        text = f"EXPLAIN ({'ANALYZE, ' if analyze else ''}FORMAT JSON) {sql_text}"
        self.guard.check_explain(text, inner=inner)
        # Always inside a READ ONLY transaction: ANALYZE executes, so only reads may be analyzed. Planning evaluates
        # constant expressions, so the allowlist and the hard deadline apply to explain as to a query.
        with self._transaction(write=False, timeout=timeout, cancelled=cancelled) as conn:
            self.allowlist.resolve(conn, refs)
            row = run_prepared(conn, text, params).fetchone()
        return {"engine": "postgresql", "plan": row[0] if row else None}

    def write(
        self,
        sql_text: str,
        params: Sequence[Param],
        *,
        commit: bool,
        check: Callable[[int], None],
        sample: int,
        timeout: float,
        cancelled: Cancelled,
    ) -> WriteOutcome:
        self.limits.check_sql(sql_text)
        if self.read_only:
            raise ToolError("denied_by_policy: this source is read-only")
        check_params(params)
        refs = self.guard.check_write(sql_text)
        statement = statement_text(sql_text)
        with self._transaction(write=True, timeout=timeout, cancelled=cancelled) as conn:
            self.allowlist.resolve(conn, refs)
            started = time.monotonic()
            returning = None
            if refs.returning:
                rowcount, returning = write_returning(conn, statement, params, sample, self.limits)
            else:
                rowcount = run_prepared(conn, statement, params).rowcount
            if returning is not None:
                returning.elapsed_ms = (time.monotonic() - started) * 1000
            check(rowcount)
            if commit:
                _commit(conn)
        return WriteOutcome(rowcount=rowcount, returning=returning)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
