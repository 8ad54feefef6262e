"""PostgreSQL plumbing shared by the fleet's tables: the connection pool, the schema and its migrations.

One database holds everything a fleet of bridges shares: the calls (`bridge_tool_calls`, the journal), who serves
which session (`bridge_leases`, with a global fencing sequence), which processes are alive (`bridge_processes`), and
the shared request budget (`bridge_budgets`). All names start with `bridge_` so the tables can live in a database
that also holds other things. The schema version lives in `bridge_schema`; each entry of `MIGRATIONS` turns version
N-1 into N and runs, with the version bump, in one transaction under a transaction-scoped advisory lock, so several
bridges starting at once migrate exactly once. A database written by a newer tool-bridge is refused, as the SQLite
journal refuses a newer file.

psycopg's async connections run on asyncio only, and every part of the bridge must run on trio too, so this uses
psycopg's sync pool with each database round trip in a worker thread, capped at the pool's size. Times come from the
database (`clock_timestamp()`), never from the bridge's clock: several machines must agree on lease expiry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from .._errors import JournalError, JournalSchemaError

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

__all__ = ["MIGRATIONS", "NOW", "SCHEMA_VERSION", "Database", "describe_dsn"]

T = TypeVar("T")

NOW = "extract(epoch from clock_timestamp())::float8"
"""The database's wall clock as epoch seconds (the journal's `created_at`/`updated_at` unit)."""

_LOCK = 0x54424A4C  # advisory lock key for migrations ("TBJL", as the SQLite journal's application id)

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE bridge_tool_calls (
            seq            bigint GENERATED ALWAYS AS IDENTITY,
            session_id     text    NOT NULL,
            tool_use_id    text    NOT NULL,
            thread_id      text,
            tool_name      text    NOT NULL,
            input_json     text    NOT NULL,
            state          text    NOT NULL,
            attempt        integer NOT NULL DEFAULT 0,
            result_json    text,
            is_error       boolean,
            in_doubt       boolean,
            acked_event_id text,
            posted_at      float8,
            created_at     float8  NOT NULL,
            updated_at     float8  NOT NULL,
            owner_id       text,
            fence          bigint,
            PRIMARY KEY (session_id, tool_use_id)
        )
        """,
        "CREATE INDEX bridge_tool_calls_state_age ON bridge_tool_calls (state, updated_at)",
        "CREATE INDEX bridge_tool_calls_open ON bridge_tool_calls (seq) WHERE state NOT IN ('acked', 'abandoned')",
        "CREATE SEQUENCE bridge_fence_seq",
        """
        CREATE TABLE bridge_leases (
            session_id  text        PRIMARY KEY,
            status      text        NOT NULL DEFAULT 'active',
            owner_id    text,
            fence       bigint      NOT NULL DEFAULT 0,
            expires_at  timestamptz,
            claimed_at  timestamptz,
            offered_at  timestamptz NOT NULL DEFAULT clock_timestamp()
        )
        """,
        "CREATE INDEX bridge_leases_owner ON bridge_leases (owner_id) WHERE status = 'active'",
        """
        CREATE TABLE bridge_processes (
            owner_id     text        PRIMARY KEY,
            host         text,
            pid          integer,
            started_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
            heartbeat_at timestamptz NOT NULL DEFAULT clock_timestamp()
        )
        """,
        """
        CREATE TABLE bridge_budgets (
            name text        PRIMARY KEY,
            tat  timestamptz NOT NULL DEFAULT clock_timestamp()
        )
        """,
    ),
    (  # 2: approvals (the decision kept with its call) and the inbox of decisions made by other processes
        "ALTER TABLE bridge_tool_calls ADD COLUMN approval_json text",
        """
        CREATE TABLE bridge_approval_inbox (
            seq          bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            session_id   text,
            tool_use_id  text    NOT NULL,
            approve      boolean NOT NULL,
            decided_by   text    NOT NULL,
            reason       text,
            made_at      float8  NOT NULL
        )
        """,
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)


def describe_dsn(dsn: str) -> str:
    """The DSN without its password, for logs and messages."""
    try:
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        params = conninfo_to_dict(dsn)
    except Exception:
        return "<unparsable dsn>"
    params.pop("password", None)
    return make_conninfo("", **{k: v for k, v in params.items() if v is not None})


class Database:
    """A psycopg connection pool whose round trips run in worker threads (so it works on asyncio and trio).

    Args:
        dsn: A libpq connection string or `postgresql://` URL.
        max_size: Connections (and worker threads) at most.
        statement_timeout: Seconds a statement may run before the server cancels it.
        lock_timeout: Seconds a statement may wait for a row lock.
    """

    def __init__(
        self, dsn: str, *, max_size: int = 8, statement_timeout: float = 30.0, lock_timeout: float = 10.0
    ) -> None:
        self.dsn = dsn
        self.max_size = max_size
        self.statement_timeout = statement_timeout
        self.lock_timeout = lock_timeout
        self._pool: ConnectionPool[Any] | None = None
        self._limiter = anyio.CapacityLimiter(max_size)
        self._users = 0

    def __repr__(self) -> str:
        return f"Database({describe_dsn(self.dsn)!r}, max_size={self.max_size})"

    async def open(self) -> None:
        """Connect and bring the schema up to date (shared: every `open` needs its `close`)."""
        self._users += 1
        if self._pool is not None:
            return
        try:
            with anyio.CancelScope(shield=True):
                self._pool = await anyio.to_thread.run_sync(self._connect)
        except BaseException:
            self._users -= 1
            raise

    def _connect(self) -> ConnectionPool[Any]:
        try:
            import psycopg
            from psycopg_pool import ConnectionPool
        except ImportError as exc:
            raise JournalError("PostgreSQL needs the postgres extra: pip install 'tool-bridge[postgres]'") from exc
        options = (
            f"-c statement_timeout={int(self.statement_timeout * 1000)} -c lock_timeout={int(self.lock_timeout * 1000)}"
            " -c synchronous_commit=on -c default_transaction_isolation=read\\ committed"
        )
        pool: ConnectionPool[Any] = ConnectionPool(
            self.dsn,
            min_size=1,
            max_size=self.max_size,
            kwargs={"autocommit": True, "options": options},
            open=False,
            name="tool-bridge",
        )
        try:
            pool.open(wait=True, timeout=10.0)
            with pool.connection() as conn:
                migrate(conn, describe_dsn(self.dsn))
        except psycopg.Error as exc:
            pool.close()
            raise JournalError(f"cannot use PostgreSQL at {describe_dsn(self.dsn)}: {exc}") from exc
        except Exception as exc:  # PoolTimeout: the server is unreachable
            pool.close()
            if isinstance(exc, JournalError):
                raise
            raise JournalError(f"cannot connect to PostgreSQL at {describe_dsn(self.dsn)}: {exc}") from exc
        return pool

    async def close(self) -> None:
        """Release this user's hold; the last one closes the pool. Safe to call twice."""
        if self._users == 0:
            return
        self._users -= 1
        pool = self._pool
        if self._users == 0 and pool is not None:
            self._pool = None
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(pool.close)

    async def run(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run `work` with a pooled connection in a worker thread.

        A caller cancelled meanwhile still waits for the round trip to end (the thread cannot be stopped, and a
        statement the server may have committed must not be reported as not done): all or nothing, never unknown.
        """
        pool = self._pool
        if pool is None:
            raise JournalError(f"{self!r} is not open: call `await open()` or use `async with`")

        def call() -> T:
            import psycopg

            try:
                with pool.connection() as conn:
                    return work(conn)
            except psycopg.Error as exc:
                raise JournalError(f"PostgreSQL at {describe_dsn(self.dsn)}: {exc}") from exc

        return await anyio.to_thread.run_sync(call, limiter=self._limiter)


def migrate(conn: psycopg.Connection[Any], where: str) -> int:
    """Bring the schema up to `SCHEMA_VERSION` in one transaction; returns the version found (0: new)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS bridge_schema (id int PRIMARY KEY CHECK (id = 1), version int)")
        row = conn.execute("SELECT version FROM bridge_schema").fetchone()
        found = int(row[0]) if row else 0
        if found > SCHEMA_VERSION:
            raise JournalSchemaError(
                f"the tool-bridge tables at {where} have schema version {found}, but this tool-bridge understands "
                f"versions up to {SCHEMA_VERSION}: they were written by a newer tool-bridge. Upgrade this bridge "
                "(every bridge of a fleet must run a version that knows the schema)."
            )
        for statements in MIGRATIONS[found:]:
            for statement in statements:
                conn.execute(statement)
        if found != SCHEMA_VERSION:
            conn.execute(
                "INSERT INTO bridge_schema (id, version) VALUES (1, %s) ON CONFLICT (id) DO UPDATE SET version = %s",
                (SCHEMA_VERSION, SCHEMA_VERSION),
            )
    return found
