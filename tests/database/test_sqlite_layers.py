"""Each SQLite enforcement layer on its own, on real files (`toolkits/database/_sqlite.py`, `_sqlite_policy.py`).

Every test opens a bare connection, applies exactly one layer, and shows that layer alone stops its bypass. The
probes S1-S6 of the reference are reproduced where a single layer is not enough, to pin down why the others exist.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from toolkits.database import QueryLimits
from toolkits.database._sqlite import Deadline, connect, forbid_extensions, limit_connection, set_query_only
from toolkits.database._sqlite_policy import Authorizer, Policy

INFINITE_CTE = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A small database with a canary table."""
    path = tmp_path / "t.db"
    conn = sqlite3.connect(path)
    conn.executescript("CREATE TABLE canary (id INTEGER PRIMARY KEY, value TEXT); INSERT INTO canary VALUES (1, 'ok');")
    conn.commit()
    conn.close()
    return path


def uri(path: Path, mode: str) -> str:
    return f"{path.resolve().as_uri()}?mode={mode}"


@pytest.fixture
def rw(db: Path) -> Iterator[sqlite3.Connection]:
    """A read-write connection with no layer applied: each test adds the one layer it exercises."""
    conn = connect(uri(db, "rw"))
    yield conn
    conn.close()


def canary(db: Path) -> list[tuple[int, str]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT * FROM canary").fetchall()
    finally:
        conn.close()


def test_mode_ro_alone_refuses_writes_to_the_main_file(db: Path) -> None:
    """Layer 1: a mode=ro connection cannot write the database file."""
    conn = connect(uri(db, "ro"))
    with pytest.raises(sqlite3.OperationalError, match="readonly database"):
        conn.execute("INSERT INTO canary VALUES (2, 'x')")
    conn.close()
    assert canary(db) == [(1, "ok")]


def test_probe_s1_mode_ro_alone_still_lets_attach_create_files(db: Path, tmp_path: Path) -> None:
    """S1: mode=ro covers only the main file; ATTACH creates and writes a new one (why layers 2, 3, 5 exist)."""
    conn = connect(uri(db, "ro"))
    conn.execute(f"ATTACH '{tmp_path / 'new.db'}' AS n")
    conn.execute("CREATE TABLE n.z (a)")
    conn.close()
    assert (tmp_path / "new.db").exists()


def test_query_only_alone_refuses_writes_attach_writes_and_vacuum_into(rw: sqlite3.Connection, tmp_path: Path) -> None:
    """Layer 2: query_only refuses every write, on attached files too, and VACUUM INTO's copy (which mode=ro allows).

    VACUUM INTO still leaves an empty file behind under query_only alone: layers 3 and 5 stop it before it starts.
    """
    set_query_only(rw)
    for sql in ["INSERT INTO canary VALUES (2, 'x')", "CREATE TABLE t (a)", f"VACUUM INTO '{tmp_path / 'copy.db'}'"]:
        with pytest.raises(sqlite3.OperationalError, match="readonly database"):
            rw.execute(sql)
    rw.execute(f"ATTACH '{tmp_path / 'other.db'}' AS o")
    with pytest.raises(sqlite3.OperationalError, match="readonly database"):
        rw.execute("CREATE TABLE o.z (a)")
    assert not (tmp_path / "copy.db").exists() or (tmp_path / "copy.db").stat().st_size == 0


def test_probe_s2_query_only_alone_can_be_switched_off(rw: sqlite3.Connection, db: Path) -> None:
    """S2: if PRAGMA reaches the engine, query_only is advisory (why the authorizer refuses every PRAGMA)."""
    set_query_only(rw)
    rw.execute("PRAGMA query_only = OFF")
    rw.execute("INSERT INTO canary VALUES (2, 'x')")
    assert len(canary(db)) == 2


def test_attach_limit_alone_removes_attach_and_vacuum_into(rw: sqlite3.Connection, tmp_path: Path) -> None:
    """Layer 3 (S3): with SQLITE_LIMIT_ATTACHED at 0 neither ATTACH nor VACUUM INTO can open another file."""
    limit_connection(rw, QueryLimits())
    for sql in [f"ATTACH '{tmp_path / 'a.db'}' AS a", f"VACUUM INTO '{tmp_path / 'b.db'}'"]:
        with pytest.raises(sqlite3.OperationalError, match="too many attached databases"):
            rw.execute(sql)
    assert not list(tmp_path.glob("[ab].db"))


def test_length_limits_bound_sql_text(rw: sqlite3.Connection) -> None:
    """Layer 3: SQL text past max_sql_chars is refused by the engine itself."""
    limit_connection(rw, QueryLimits(max_sql_chars=100))
    with pytest.raises(sqlite3.DataError, match="too large"):
        rw.execute("SELECT '" + "x" * 200 + "'")


def test_extension_loading_is_off(rw: sqlite3.Connection) -> None:
    """Layer 4: load_extension() fails because loading is disabled at the connection, before any authorizer."""
    forbid_extensions(rw)
    with pytest.raises(sqlite3.OperationalError, match="not authorized"):
        rw.execute("SELECT load_extension('/tmp/evil.so')")


@pytest.mark.parametrize(
    ("sql", "denied"),
    [
        ("INSERT INTO canary VALUES (2, 'x')", "INSERT canary"),
        ("UPDATE canary SET value = 'x'", "UPDATE canary value"),
        ("DELETE FROM canary", "DELETE canary"),
        ("DROP TABLE canary", "a schema change"),
        ("CREATE TABLE t (a)", "a schema change"),
        ("ALTER TABLE canary ADD COLUMN b", "ALTER TABLE"),
        ("PRAGMA query_only = OFF", "PRAGMA query_only(OFF)"),
        ("PRAGMA writable_schema = ON", "PRAGMA writable_schema(ON)"),
        ("ATTACH 'x.db' AS x", "ATTACH"),
        ("VACUUM INTO 'copy.db'", "ATTACH"),
        ("SELECT load_extension('x')", "function load_extension()"),
        ("SELECT fts3_tokenizer('simple')", "function fts3_tokenizer()"),
        ("SELECT * FROM pragma_table_info('canary')", "PRAGMA table_info(canary)"),
        ("BEGIN", "transaction control (BEGIN)"),
        ("SAVEPOINT s", "SAVEPOINT"),
    ],
)
def test_authorizer_alone_allows_only_reads(rw: sqlite3.Connection, sql: str, denied: str) -> None:
    """Layer 5 (S5): on a writable connection with no other layer, the allowlist refuses all but reads."""
    authorizer = Authorizer(Policy.READ)
    rw.set_authorizer(authorizer)
    with pytest.raises(sqlite3.DatabaseError, match=r"not authorized|authorization denied"):
        rw.execute(sql)
    assert authorizer.denied is not None
    assert authorizer.denied.startswith(denied)


def test_authorizer_allows_selects_functions_ctes_and_json(rw: sqlite3.Connection) -> None:
    """The read allowlist still runs real queries: joins, aggregates, recursive CTEs, JSON functions."""
    rw.set_authorizer(Authorizer(Policy.READ))
    assert rw.execute("SELECT upper(value), count(*) FROM canary GROUP BY 1").fetchall() == [("OK", 1)]
    assert rw.execute("SELECT value FROM json_each('[1, 2]')").fetchall() == [(1,), (2,)]
    cte = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5) SELECT sum(x) FROM c"
    assert rw.execute(cte).fetchone() == (15,)
    assert rw.execute("SELECT '{\"a\": 2}' ->> '$.a'").fetchone() == (2,)


def test_write_policy_allows_dml_but_not_ddl_or_internal_tables(rw: sqlite3.Connection) -> None:
    """The write policy allows INSERT/UPDATE/DELETE on user tables only."""
    rw.set_authorizer(Authorizer(Policy.WRITE))
    rw.execute("UPDATE canary SET value = 'changed'")
    for sql in ["DROP TABLE canary", "PRAGMA query_only = OFF", "DELETE FROM sqlite_stat1"]:
        with pytest.raises(sqlite3.DatabaseError):
            rw.execute(sql)


def test_deadline_alone_stops_an_infinite_recursive_cte(rw: sqlite3.Connection) -> None:
    """Layer 6 (S6): the progress handler interrupts an endless statement at its deadline."""
    deadline = Deadline(0.3)
    deadline.install(rw)
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="interrupted"):
        rw.execute(INFINITE_CTE).fetchone()
    elapsed = time.monotonic() - started
    assert deadline.reason == "timeout"
    assert elapsed >= 0.3  # stopped by the deadline, not before it (an endless statement never ends alone)


def test_deadline_stops_at_cancellation(rw: sqlite3.Connection) -> None:
    """The same handler stops the statement as soon as the call is cancelled (an interrupt, a runtime timeout)."""
    cancelled = threading.Event()
    deadline = Deadline(60, cancelled.is_set)
    deadline.install(rw)
    timer = threading.Timer(0.1, cancelled.set)
    timer.start()
    with pytest.raises(sqlite3.OperationalError, match="interrupted"):
        rw.execute(INFINITE_CTE).fetchone()
    timer.join()
    assert deadline.reason == "cancelled"


def test_probe_s4_one_statement_per_execute(rw: sqlite3.Connection, db: Path) -> None:
    """S4: Connection.execute compiles exactly one statement, so stacked statements never run."""
    for sql in ["SELECT 1; DROP TABLE canary", "PRAGMA table_info(canary); DROP TABLE canary; --"]:
        with pytest.raises(sqlite3.ProgrammingError, match="one statement at a time"):
            rw.execute(sql)
    assert canary(db) == [(1, "ok")]
