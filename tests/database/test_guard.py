"""The pglast SQL check on its own, without a server (`toolkits/database/_guard.py`)."""

from __future__ import annotations

import pytest

pytest.importorskip("pglast")

from bridge import ToolError
from toolkits.database._guard import SqlGuard
from toolkits.database._pg_allowlist import SAFE_FUNCTIONS

GUARD = SqlGuard.default()

READS = [
    "SELECT 1",
    "select * from orders where id = $1",
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3) SELECT * FROM c",
    "VALUES (1), (2)",
    "TABLE orders",
    "SELECT a FROM t UNION SELECT b FROM u",
    "SELECT $$ ; DROP TABLE t; $$",
    "SELECT count(*), now(), extract(year FROM now()), jsonb_build_object('a', 1) FROM generate_series(1, 3)",
    "SELECT 1;",
]


@pytest.mark.parametrize("sql", READS)
def test_plain_reads_pass(sql: str) -> None:
    """Ordinary SELECTs, CTEs, VALUES, set operations and dollar-quoted text are accepted."""
    GUARD.check_read(sql)


DENIED_READS = [
    # V1/P1: stacked statements ending the read-only transaction
    ("BEGIN TRANSACTION READ ONLY; SELECT 1; COMMIT; DROP TABLE canary;", "exactly one SQL statement"),
    ("SELECT 1; COMMIT; DROP TABLE canary", "exactly one SQL statement"),
    ("COMMIT", "transaction control"),
    ("ROLLBACK", "transaction control"),
    ("END", "transaction control"),
    # P5: the read-only GUC is advisory
    ("SET default_transaction_read_only = off", "SET statement"),
    ("SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE", "SET statement"),
    # P6/V4: functions, including in the FROM clause
    ("SELECT pg_read_file('/etc/passwd')", "pg_read_file"),
    ("SELECT * FROM pg_read_file('/etc/passwd')", "pg_read_file"),
    ("SELECT * FROM pg_catalog.pg_read_binary_file('secret.txt') AS f", "pg_read_binary_file"),
    ("SELECT * FROM ROWS FROM (generate_series(1, 2), pg_ls_dir('.')) WITH ORDINALITY", "pg_ls_dir"),
    ("SELECT * FROM orders, LATERAL (SELECT pg_stat_file('x')) AS s", "pg_stat_file"),
    ("SELECT * FROM orders TABLESAMPLE system (10) REPEATABLE (pg_sleep(1))", "pg_sleep"),
    ("SELECT U&\"pg\\005fread_file\"('/etc/passwd')", "pg_read_file"),
    ('SELECT "pg_catalog"."PG_READ_FILE"(\'x\')', "PG_READ_FILE"),
    ("SELECT lo_create(0)", "lo_create"),
    ("SELECT lo_import('/etc/passwd')", "lo_import"),
    ("SELECT pg_advisory_lock(42)", "pg_advisory_lock"),
    ("SELECT pg_try_advisory_xact_lock(42)", "pg_try_advisory_xact_lock"),
    ("SELECT pg_sleep(10)", "pg_sleep"),
    ("SELECT set_config('default_transaction_read_only', 'off', false)", "set_config"),
    ("SELECT nextval('canary_seq')", "nextval"),
    ("SELECT setval('canary_seq', 1)", "setval"),
    ("SELECT txid_current()", "txid_current"),
    ("SELECT pg_terminate_backend(1)", "pg_terminate_backend"),
    ("SELECT query_to_xml('DELETE FROM canary RETURNING *', true, false, '')", "query_to_xml"),
    ("SELECT ts_stat('SELECT pg_read_file(''x'')::tsvector')", "ts_stat"),
    ("SELECT dblink_exec('dbname=shop', 'DROP TABLE canary')", "dblink_exec"),
    ("SELECT (SELECT max(x) FROM (SELECT pg_sleep(1) AS x) AS s)", "pg_sleep"),
    ("SELECT id FROM orders ORDER BY pg_sleep(0.1)", "pg_sleep"),
    # P9: writable CTEs, SELECT INTO, row locks
    ("WITH d AS (DELETE FROM canary RETURNING *) SELECT * FROM d", "DELETE statement inside"),
    ("WITH u AS (UPDATE canary SET value = 'x' RETURNING *) SELECT 1", "UPDATE statement inside"),
    ("WITH i AS (INSERT INTO canary VALUES (9, 'x') RETURNING *) SELECT 1", "INSERT statement inside"),
    ("SELECT * INTO TEMP stolen FROM canary", "SELECT INTO"),
    ("SELECT * FROM canary FOR UPDATE", "FOR UPDATE"),
    ("SELECT * FROM canary FOR SHARE SKIP LOCKED", "FOR UPDATE"),
    # everything that is not a SELECT
    ("INSERT INTO canary VALUES (2, 'x')", "INSERT statement"),
    ("DELETE FROM canary", "DELETE statement"),
    ("DROP TABLE canary", "DROP statement"),
    ("TRUNCATE canary", "TRUNCATE statement"),
    ("COPY canary TO '/tmp/out'", "COPY statement"),
    ("COPY canary TO PROGRAM 'id'", "COPY statement"),
    ("CREATE TEMP TABLE t AS SELECT 1", "CREATE TABLE AS"),
    ("DO $$ BEGIN DELETE FROM canary; END $$", "DO block"),
    ("CALL some_procedure()", "CALL statement"),
    ("PREPARE p AS DELETE FROM canary", "PREPARE statement"),
    ("LISTEN x", "LISTEN statement"),
    ("EXPLAIN ANALYZE DELETE FROM canary", "without EXPLAIN"),
    ("-- SELECT 1\nDELETE FROM canary", "DELETE statement"),
    ("/* SELECT */ DELETE FROM canary", "DELETE statement"),
    ("", "exactly one SQL statement"),
    ("SELECT FROM WHERE", "syntax error"),
]


@pytest.mark.parametrize(("sql", "reason"), DENIED_READS)
def test_reads_that_could_write_or_escape_are_denied(sql: str, reason: str) -> None:
    """Every read-only bypass in the corpus that a parser can see is refused, with a message naming it."""
    with pytest.raises(ToolError, match=reason) as caught:
        GUARD.check_read(sql)
    assert str(caught.value).startswith(("denied_by_policy:", "invalid_input:"))


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO canary VALUES ($1, $2)",
        "UPDATE canary SET value = $1 WHERE id = $2 RETURNING *",
        "DELETE FROM canary WHERE id IN (SELECT id FROM canary WHERE value = 'x')",
        "INSERT INTO canary SELECT nextval('canary_seq'), 'x'",
        "MERGE INTO canary AS c USING (VALUES (1)) AS v(id) ON c.id = v.id WHEN MATCHED THEN DELETE",
    ],
)
def test_single_writes_pass_the_write_check(sql: str) -> None:
    """One INSERT, UPDATE, DELETE or MERGE passes the write check; nextval is fine inside a write."""
    GUARD.check_write(sql)


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("SELECT 1", "use the query tool"),
        ("DROP TABLE canary", "DROP statement"),
        ("WITH d AS (DELETE FROM canary RETURNING *) INSERT INTO canary SELECT * FROM d", "nested DELETE"),
        ("UPDATE canary SET value = pg_read_file('secret.txt')", "pg_read_file"),
        ("INSERT INTO canary VALUES (1, 'x'); DROP TABLE canary", "exactly one"),
    ],
)
def test_write_check_refuses_everything_else(sql: str, reason: str) -> None:
    """The execute tool runs exactly one write, without nested writes or denied functions."""
    with pytest.raises(ToolError, match=reason):
        GUARD.check_write(sql)


def test_wrong_placeholder_style_gets_a_hint() -> None:
    """A query written with %s or ? placeholders is told PostgreSQL's style."""
    with pytest.raises(ToolError, match=r"placeholders are \$1"):
        GUARD.check_read("SELECT * FROM orders WHERE id = %s")


def test_allowed_functions_are_added_to_the_allowlist() -> None:
    """An operator may allow a further function by name; everything else off the list stays refused."""
    guard = SqlGuard.default(allow_functions=["PG_SLEEP"])
    guard.check_read("SELECT pg_sleep(1)")
    with pytest.raises(ToolError, match="pg_sleep_for"):
        guard.check_read("SELECT pg_sleep_for('1 second')")


def test_explain_recheck_accepts_only_what_we_composed() -> None:
    """The EXPLAIN text we build is re-parsed: one ExplainStmt around an allowed statement."""
    from toolkits.database._guard import READ_KINDS

    GUARD.check_explain("EXPLAIN (FORMAT JSON) SELECT 1", inner=READ_KINDS)
    with pytest.raises(ToolError):
        GUARD.check_explain("EXPLAIN (FORMAT JSON) DELETE FROM canary", inner=READ_KINDS)


def test_allowlist_leaves_out_the_reference_list() -> None:
    """No family the reference pack names is allowlisted (pg_read_*, pg_ls_*, lo_*, dblink*, pg_sleep*, ...)."""
    for name in [
        "pg_read_file",
        "pg_ls_dir",
        "lo_export",
        "dblink",
        "pg_sleep_until",
        "set_config",
        "setseed",
        "pg_terminate_backend",
        "pg_cancel_backend",
        "pg_advisory_xact_lock",
        "nextval",
        "setval",
        "pg_import_system_collations",
        "query_to_xml_and_xmlschema",
        "ts_stat",
        "xpath",
        "current_setting",
        "pg_create_logical_replication_slot",
    ]:
        assert name not in SAFE_FUNCTIONS, name
