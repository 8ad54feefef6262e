"""Each PostgreSQL enforcement layer on its own, against a real server (`toolkits/database/_postgres.py`).

Every test applies exactly one layer and shows it alone stops its bypass; the probes P1-P10 of the reference are
reproduced where one layer is not enough, to pin down why the others exist.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest

psycopg = pytest.importorskip("psycopg")

from pg import PgServer  # noqa: E402

from bridge import ConfigError  # noqa: E402
from toolkits.database import QueryLimits  # noqa: E402
from toolkits.database._pg_roles import inspect_role  # noqa: E402
from toolkits.database._postgres import PostgresSource, begin, fetch_rows, rollback, run_prepared  # noqa: E402
from toolkits.database._source import never_cancelled  # noqa: E402

Connection = Any


def connect(dsn: str) -> Connection:
    return psycopg.connect(dsn, autocommit=True)


@pytest.fixture
def victim(pg: PgServer) -> Iterator[str]:
    """A throwaway table the writer role may drop, so probes that succeed do not damage shared fixtures."""
    name = f"victim_{secrets.token_hex(4)}"
    with connect(pg.admin) as conn:
        conn.execute(f"CREATE TABLE {name} (id int); ALTER TABLE {name} OWNER TO bridge_writer")
    yield name
    with connect(pg.admin) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {name}")


def exists(pg: PgServer, table: str) -> bool:
    return bool(pg.scalar("SELECT to_regclass(%s) IS NOT NULL", [table]))


# --- layer 2: the channel ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("params", [None, ()])
def test_probes_p1_p3_simple_protocol_runs_stacked_statements(pg: PgServer, victim: str, params: Any) -> None:
    """P1-P3: sent through the simple protocol (no params, or empty params), COMMIT ends READ ONLY and DROP runs."""
    with connect(pg.writer) as conn:
        conn.execute(f"BEGIN TRANSACTION READ ONLY; SELECT 1; COMMIT; DROP TABLE {victim};", params)
    assert not exists(pg, victim)


def test_channel_alone_server_cursor_refuses_stacked_statements(pg: PgServer, victim: str) -> None:
    """Layer 2 (P4): the server-side cursor travels the extended protocol, which refuses several commands."""
    with connect(pg.writer) as conn:
        conn.execute("BEGIN")
        with pytest.raises(psycopg.errors.SyntaxError, match="multiple commands"):
            fetch_rows(conn, f"SELECT 1; COMMIT; DROP TABLE {victim}", [], 5)
        conn.execute("ROLLBACK")
    assert exists(pg, victim)


def test_channel_alone_prepared_statement_refuses_stacked_statements(pg: PgServer, victim: str) -> None:
    """Layer 2 (P4): a prepared statement, even with no parameters, cannot carry a second command."""
    with connect(pg.writer) as conn:
        for payload in [f"SELECT 1; COMMIT; DROP TABLE {victim}", f"COMMIT; DROP TABLE {victim}"]:
            with pytest.raises(psycopg.errors.SyntaxError, match="multiple commands"):
                run_prepared(conn, payload, [])
    assert exists(pg, victim)


# --- layer 4: the engine ----------------------------------------------------------------------------------------------


def test_read_only_transaction_alone_refuses_writes(pg: PgServer, victim: str) -> None:
    """Layer 4 (P9): inside our READ ONLY transaction a writer role cannot INSERT, use a writable CTE or DROP."""
    with connect(pg.writer) as conn:
        for statement in [
            f"INSERT INTO {victim} VALUES (1)",
            f"WITH d AS (DELETE FROM {victim} RETURNING *) SELECT * FROM d",
            f"DROP TABLE {victim}",
            "SELECT nextval('canary_seq')",
        ]:
            begin(conn, read_only=True, timeout=5, lock_timeout=1)
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                run_prepared(conn, statement, [])
            rollback(conn)
    assert exists(pg, victim)


def test_read_only_transaction_mode_cannot_be_switched_back(pg: PgServer, victim: str) -> None:
    """Layer 4: `begin` takes the snapshot, so SET TRANSACTION READ WRITE can no longer reopen writes.

    Without the snapshot PostgreSQL accepts the switch as the first statement of a READ ONLY transaction.
    """
    with connect(pg.writer) as conn:
        for switch in ["SET TRANSACTION READ WRITE", "SET transaction_read_only = off"]:
            begin(conn, read_only=True, timeout=5, lock_timeout=1)
            with pytest.raises(psycopg.errors.ActiveSqlTransaction, match="before any query"):
                conn.execute(switch)
            rollback(conn)
        conn.execute("BEGIN TRANSACTION READ ONLY")  # the probe: no snapshot yet
        conn.execute("SET TRANSACTION READ WRITE")
        conn.execute(f"INSERT INTO {victim} VALUES (1)")
        conn.execute("ROLLBACK")


def test_probe_p5_read_only_default_is_advisory(pg: PgServer, victim: str) -> None:
    """P5: a session default of read-only is undone by the session itself; only an explicit READ ONLY tx holds."""
    with psycopg.connect(pg.writer, autocommit=True, options="-c default_transaction_read_only=on") as conn:
        conn.execute("SET default_transaction_read_only = off")
        conn.execute(f"INSERT INTO {victim} VALUES (1)")
    assert pg.scalar(f"SELECT count(*) FROM {victim}") == 1


def test_probe_p6_superuser_read_only_transaction_still_reads_server_files(pg: PgServer) -> None:
    """P6: a READ ONLY transaction does not stop a superuser's pg_read_file (why the role check and denylist exist)."""
    with connect(pg.admin) as conn:
        begin(conn, read_only=True, timeout=5, lock_timeout=1)
        row = run_prepared(conn, "SELECT pg_read_file('secret.txt')", []).fetchone()
        rollback(conn)
    assert row is not None
    assert pg.secret in row[0]


def test_statement_timeout_alone_stops_pg_sleep_10(pg: PgServer) -> None:
    """Layer 4 (P8): SET LOCAL statement_timeout makes the server cancel pg_sleep(10) at the deadline."""
    with connect(pg.reader) as conn:
        begin(conn, read_only=True, timeout=0.3, lock_timeout=1)
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled, match="statement timeout"):
            run_prepared(conn, "SELECT pg_sleep(10)", [])
        elapsed = time.monotonic() - started
        rollback(conn)
    assert 0.3 <= elapsed < 10  # not before its deadline, and not after pg_sleep's own 10 s


def test_timeouts_are_local_to_the_transaction(pg: PgServer) -> None:
    """SET LOCAL lasts one transaction: the pooled session keeps no deadline of a past call."""
    with connect(pg.reader) as conn:
        begin(conn, read_only=True, timeout=1.5, lock_timeout=0.25)
        inside = run_prepared(conn, "SELECT current_setting('statement_timeout'), current_setting('lock_timeout')", [])
        assert inside.fetchone() == ("1500ms", "250ms")
        assert run_prepared(conn, "SELECT current_setting('transaction_read_only')", []).fetchone() == ("on",)
        rollback(conn)
        assert conn.execute("SHOW statement_timeout").fetchone() == ("0",)


def test_lock_timeout_alone_bounds_lock_waits(pg: PgServer) -> None:
    """Layer 4: a query waiting on a lock fails after lock_timeout instead of hanging the call."""
    with connect(pg.admin) as holder, connect(pg.reader) as conn:
        holder.execute("BEGIN; LOCK TABLE canary IN ACCESS EXCLUSIVE MODE")
        begin(conn, read_only=True, timeout=10, lock_timeout=0.2)
        with pytest.raises(psycopg.errors.LockNotAvailable):
            fetch_rows(conn, "SELECT * FROM canary", [], 5)  # LockNotAvailable: lock_timeout, not the 10 s one
        rollback(conn)
        holder.execute("ROLLBACK")


def test_source_always_rolls_back_and_leaves_sessions_idle(pg: PgServer) -> None:
    """After a query, an error or a timeout, the pooled connection holds no open transaction."""
    source = PostgresSource(pg.reader, read_only=True, limits=QueryLimits())
    try:
        source.query("SELECT * FROM canary", [], 5, 5, never_cancelled)
        with pytest.raises(Exception, match="does not exist"):
            source.query("SELECT * FROM nope", [], 5, 5, never_cancelled)
        with pytest.raises(Exception, match="timeout"):
            source.query("SELECT count(*) FROM big AS a, big AS b", [], 5, 0.2, never_cancelled)
        states = pg.scalar(
            "SELECT array_agg(state) FROM pg_stat_activity WHERE usename = 'bridge_reader' AND backend_type = 'client "
            "backend'"
        )
        assert states
        assert set(states) == {"idle"}
        assert source.query("SELECT value FROM canary", [], 5, 5, never_cancelled).rows == [("intact",)]
    finally:
        source.close()


# --- layer 1: the role ------------------------------------------------------------------------------------------------


def test_role_check_flags_superuser_and_writers(pg: PgServer) -> None:
    """Layer 1: the superuser and a role with write grants are refused for a read-only source; a reader is clean."""
    with connect(pg.admin) as conn:
        admin = inspect_role(conn, read_only=True)
    with connect(pg.writer) as conn:
        writer = inspect_role(conn, read_only=True)
        writer_rw = inspect_role(conn, read_only=False)
    with connect(pg.reader) as conn:
        reader = inspect_role(conn, read_only=True)
    assert any("superuser" in r for r in admin.refusals)
    assert any("can write" in r and "public.canary" in r for r in writer.refusals)
    assert writer_rw.refusals == []
    assert (reader.refusals, reader.warnings) == ([], [])


@pytest.fixture
def extra_role(pg: PgServer) -> Iterator[str]:
    """A fresh login role with SELECT on the shop tables; tests grant it more."""
    role = f"bridge_role_{secrets.token_hex(3)}"
    with connect(pg.admin) as conn:
        conn.execute(
            f"CREATE ROLE {role} LOGIN; GRANT CONNECT ON DATABASE shop TO {role}; GRANT USAGE ON SCHEMA public TO "
            f"{role}; GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"
        )
    yield role
    with connect(pg.admin) as conn:
        conn.execute(f"DROP OWNED BY {role}; DROP ROLE {role}")


@pytest.mark.parametrize(
    ("grant", "refusal"),
    [
        ("GRANT pg_read_server_files TO {role}", "pg_read_server_files"),
        ("GRANT pg_execute_server_program TO {role}", "pg_execute_server_program"),
        ("GRANT CREATE ON SCHEMA public TO {role}", "CREATE objects in schema public"),
        ("GRANT CREATE ON DATABASE shop TO {role}", "CREATE schemas"),
        ("GRANT UPDATE (value) ON canary TO {role}", "public.canary"),
        ("GRANT TRUNCATE ON customers TO {role}", "public.customers"),
        ("ALTER TABLE canary OWNER TO {role}", "public.canary"),
    ],
)
def test_role_check_refuses_each_over_privilege(pg: PgServer, extra_role: str, grant: str, refusal: str) -> None:
    """Layer 1: each privilege beyond reading is refused, with the GRANTs that fix it in the error."""
    with connect(pg.admin) as conn:
        conn.execute(grant.format(role=extra_role))
    try:
        with pytest.raises(ConfigError, match=refusal) as caught:
            PostgresSource(pg.dsn(extra_role), read_only=True, limits=QueryLimits())
        assert "GRANT SELECT ON ALL TABLES" in str(caught.value)
    finally:
        with connect(pg.admin) as conn:
            conn.execute("ALTER TABLE canary OWNER TO bridge_admin")


def test_role_check_warns_about_temporary_tables(
    pg: PgServer, extra_role: str, caplog: pytest.LogCaptureFixture
) -> None:
    """TEMP is a warning, not a refusal: the SQL check already refuses SELECT INTO, and it is on by default."""
    with connect(pg.admin) as conn:
        conn.execute(f"GRANT TEMPORARY ON DATABASE shop TO {extra_role}")
    with caplog.at_level(logging.WARNING, logger="toolkits.database"):
        source = PostgresSource(pg.dsn(extra_role), read_only=True, limits=QueryLimits())
    assert any("TEMPORARY" in w for w in source.warnings)
    assert "TEMPORARY" in caplog.text
    assert source.describe()["warnings"] == source.warnings


def test_privileged_role_can_be_allowed_with_a_loud_warning(pg: PgServer, caplog: pytest.LogCaptureFixture) -> None:
    """allow_privileged_role=True turns the refusal into a logged UNSAFE warning, visible in describe_source."""
    with caplog.at_level(logging.WARNING, logger="toolkits.database"):
        source = PostgresSource(pg.admin, read_only=True, limits=QueryLimits(), allow_privileged_role=True)
    assert any(w.startswith("UNSAFE: role bridge_admin is a superuser") for w in source.describe()["warnings"])
    assert "UNSAFE" in caplog.text
    source.close()


def test_unreachable_server_is_a_config_error() -> None:
    """A DSN that cannot connect fails at construction, not on the model's first call."""
    with pytest.raises(ConfigError, match="cannot connect"):
        PostgresSource("host=127.0.0.1 port=1 user=x dbname=x connect_timeout=1", read_only=True, limits=QueryLimits())
