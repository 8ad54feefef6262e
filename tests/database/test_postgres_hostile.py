"""Attack classes past the first corpus, against a real PostgreSQL: every way of writing a call, hard deadlines, bytes.

Each class is tried as the least-privileged reader and, where the SQL check is what stands, as a superuser served
with `allow_privileged_role=True`: the allowlist is resolved against the catalog, so no spelling of a call
(field notation, operators, casts, shadowing functions, SQL-syntax forms) reaches a function off the list.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest

pytest.importorskip("psycopg")

import psycopg
from db_answers import answer
from pg import PgServer

from bridge import Toolset
from toolkits.database import QueryLimits, postgres_toolset

pytestmark = pytest.mark.anyio

CALL_FORMS = [
    # field notation: PostgreSQL reads x.f as f(x) when x has no column f; no FuncCall node exists
    "SELECT (0.3::float8).pg_sleep",
    "SELECT (42::bigint).pg_advisory_lock",
    "SELECT (42::bigint).pg_try_advisory_lock",
    "SELECT (pg_backend_pid()).pg_terminate_backend",
    "SELECT (pg_backend_pid()).pg_cancel_backend",
    "SELECT ('SELECT pg_read_file(''secret.txt'')::tsvector'::text).ts_stat",
    "SELECT ('secret.txt'::text).pg_read_file",
    "SELECT ('.'::text).pg_ls_dir",
    "SELECT ('bridge_slot'::name).pg_create_physical_replication_slot",
    "SELECT ('canary_seq'::regclass).nextval",
    "SELECT (0.5::float8).setseed",
    "SELECT s.pg_sleep FROM (SELECT 0.3::float8) AS s(x)",
    "SELECT x.pg_sleep FROM (SELECT 0.3::float8 AS pg_sleep_arg) AS x",
    "SELECT ((ROW(0.3::float8)).f1).pg_sleep",
    "SELECT (('secret.txt'::text).pg_stat_file).size",
    # qualified and quoted spellings, SQL-syntax calls, sample methods
    'SELECT "pg_catalog"."pg_sleep"(0.3)',
    "SELECT pg_catalog.setseed(0.5)",
    "SELECT setseed(0.5)",
    "SELECT current_setting('data_directory')",
    "SELECT xpath('/a', '<a/>'::xml)",
    "SELECT xmlparse(document '<a/>')",
    "SELECT * FROM XMLTABLE('/a' PASSING CAST('<a/>' AS xml) COLUMNS x int)",
    "SELECT * FROM canary TABLESAMPLE system_rows(1)",
    "SELECT pg_create_restore_point('x')",
    "SELECT * FROM pg_logical_slot_get_changes('x', NULL, NULL)",
    "SELECT dblink_exec('dbname=shop', 'DELETE FROM canary')",
    "SELECT lo_from_bytea(0, 'x')",
]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """Module-scoped toolsets hold a pool: run this module on asyncio."""
    return "asyncio"


@pytest.fixture(scope="module")
async def toolsets(pg: PgServer) -> AsyncIterator[dict[str, Toolset]]:
    """The read-only toolset as the reader and as a superuser (allowed on purpose), 2 s deadline."""
    async with (
        postgres_toolset(pg.reader, limits=QueryLimits(timeout=2, lock_timeout=0.3)) as reader,
        postgres_toolset(pg.admin, limits=QueryLimits(timeout=2), allow_privileged_role=True) as superuser,
    ):
        yield {"reader": reader, "superuser": superuser}


def state(pg: PgServer) -> dict[str, Any]:
    """Everything these attacks could change, read as the superuser."""
    return dict(
        pg.scalar(
            """SELECT jsonb_build_object(
                'canary', (SELECT array_agg(value ORDER BY id) FROM canary),
                'sequence', (SELECT last_value FROM canary_seq),
                'advisory_locks', (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'),
                'slots', (SELECT count(*) FROM pg_replication_slots),
                'large_objects', (SELECT count(*) FROM pg_largeobject_metadata))"""
        )
    )


@pytest.fixture
def bystander(pg: PgServer) -> Iterator[psycopg.Connection[Any]]:
    """Another session of the reader role: a call must never be able to signal it."""
    with psycopg.connect(pg.reader, autocommit=True) as conn:
        yield conn
        assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.parametrize("who", ["reader", "superuser"])
@pytest.mark.parametrize("sql", CALL_FORMS)
async def test_every_call_form_is_checked_against_the_allowlist(
    pg: PgServer, toolsets: dict[str, Toolset], bystander: psycopg.Connection[Any], who: str, sql: str
) -> None:
    """Field notation, qualified, quoted and SQL-syntax calls to functions off the allowlist are refused up front."""
    before = state(pg)
    started = time.monotonic()
    result = await toolsets[who].call("db_query", {"sql": sql})
    assert result.is_error, result.text
    assert result.text.startswith("denied_by_policy:"), result.text
    assert time.monotonic() - started < 1.5
    assert pg.secret not in result.text
    assert state(pg) == before


@pytest.fixture(scope="module")
def shadows(pg: PgServer) -> Iterator[None]:
    """User-defined objects that a name could resolve to: a function, an operator, a domain, all harmless-looking."""
    with psycopg.connect(pg.admin, autocommit=True) as conn:
        conn.execute(
            """
            CREATE FUNCTION public.bump(a int, b int) RETURNS int LANGUAGE sql AS 'SELECT nextval(''canary_seq'')::int';
            CREATE OPERATOR public.#=# (FUNCTION = public.bump, LEFTARG = int, RIGHTARG = int);
            CREATE FUNCTION public.upper(x int) RETURNS int LANGUAGE sql AS 'SELECT nextval(''canary_seq'')::int';
            CREATE FUNCTION public.score(c canary) RETURNS int LANGUAGE sql AS 'SELECT nextval(''canary_seq'')::int';
            CREATE FUNCTION public.twice(x int) RETURNS int LANGUAGE sql AS 'SELECT x * 2';
            CREATE DOMAIN public.checked AS int CHECK (public.bump(VALUE, 0) > 0);
            GRANT USAGE ON SEQUENCE canary_seq TO PUBLIC;
            """
        )
    yield
    with psycopg.connect(pg.admin, autocommit=True) as conn:
        conn.execute(
            "DROP DOMAIN public.checked; DROP OPERATOR public.#=# (int, int); DROP FUNCTION public.bump, "
            "public.upper, public.score, public.twice; REVOKE USAGE ON SEQUENCE canary_seq FROM PUBLIC"
        )


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1 #=# 1",
        "SELECT 1 OPERATOR(public.#=#) 1",
        "SELECT public.bump(1, 1)",
        "SELECT upper(1)",
        "SELECT upper('x')",
        "SELECT c.score FROM canary AS c",
        "SELECT (c).score FROM canary AS c",
        "SELECT 1::checked",
        "SELECT CAST(1 AS public.checked)",
        "SELECT * FROM (VALUES (1)) AS v(x) WHERE x = ANY(SELECT 1 #=# 1)",
        "SELECT x FROM (VALUES (1)) AS v(x) ORDER BY x USING #=#",
    ],
)
async def test_names_resolve_against_the_catalog(
    pg: PgServer, toolsets: dict[str, Toolset], shadows: None, sql: str
) -> None:
    """A name that could reach a user-defined function (operator, shadowing overload, field, domain) is refused."""
    before = state(pg)
    result = await toolsets["reader"].call("db_query", {"sql": sql})
    assert result.is_error, result.text
    assert result.text.startswith("denied_by_policy:"), result.text
    assert state(pg) == before


async def test_allowlisted_user_function_runs_when_the_operator_names_it(pg: PgServer, shadows: None) -> None:
    """allow_functions=["public.twice"] lets exactly that function run; built-in calls keep working."""
    async with postgres_toolset(pg.reader, allow_functions=["public.twice"]) as toolset:
        _, body = answer(await toolset.call("db_query", {"sql": "SELECT public.twice(2), twice(3), lower('A')"}))
        assert body["rows"] == [[4, 6, "a"]]
        denied = await toolset.call("db_query", {"sql": "SELECT score(c) FROM canary AS c"})
    assert denied.is_error


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT id, lower(value), length(value) BETWEEN 1 AND 10, value LIKE 'i%', value ILIKE $1 FROM canary",
        "SELECT extract(year FROM now()), trim(both 'x' FROM 'xax'), substring('abc' FROM 2), position('b' IN 'abc')",
        "SELECT count(*) FILTER (WHERE id > 0), row_number() OVER (ORDER BY id) FROM canary GROUP BY id",
        "SELECT jsonb_build_object('a', 1) -> 'a', '{1,2}'::int[] @> ARRAY[1], 'a'::text || 'b', 1 = ANY('{1}')",
        "SELECT c.id, c.value FROM canary AS c WHERE c.value SIMILAR TO 'i%' ORDER BY c.id USING <",
        "SELECT date_trunc('day', now()), now() AT TIME ZONE 'UTC', interval '1 day' * 2, 'x'::varchar(3)",
        "SELECT * FROM generate_series(1, 3) AS g CROSS JOIN LATERAL unnest(ARRAY[g]) AS u",
    ],
)
async def test_ordinary_reads_pass_the_allowlist(toolsets: dict[str, Toolset], sql: str) -> None:
    """Plain expressions, operators, SQL-syntax functions, aggregates, windows and casts to built-in types run."""
    result = await toolsets["reader"].call("db_query", {"sql": sql, "params": ["I%"] if "$1" in sql else None})
    assert not result.is_error, result.text


# --- hard deadlines ---------------------------------------------------------------------------------------------------

LIKE_BOMB = "SELECT repeat('a', 46000) LIKE '%' || repeat('a', 23000) || 'b%'"
"""LIKE on long strings never looks for cancellation: over a second of server CPU whatever the timeout."""


@pytest.fixture
def bombs_done(pg: PgServer) -> Iterator[None]:
    """After the test, wait (by polling the server) until no LIKE bomb still computes, so later tests see idle roles."""
    yield
    deadline = time.monotonic() + 30
    while pg.scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%repeat(''a'', 46000)%' AND pid <> pg_backend_pid()"
    ):
        assert time.monotonic() < deadline


def backend_busy(pg: PgServer) -> int:
    """How many of the reader's server processes are running a statement right now."""
    return int(
        pg.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = 'bridge_reader' AND state = 'active' "
            "AND pid <> pg_backend_pid()"
        )
    )


async def test_statement_ignoring_cancel_is_terminated(pg: PgServer, bombs_done: None) -> None:
    """Two calls that ignore cancellation are answered near their 0.2 s deadline and the pool recovers at once."""
    limits = QueryLimits(timeout=0.2)
    async with postgres_toolset(pg.reader, limits=limits, pool_size=2) as toolset:
        results = []
        started = time.monotonic()

        async def hostile() -> None:
            results.append(await toolset.call("db_query", {"sql": LIKE_BOMB}))

        async with anyio.create_task_group() as tg:
            tg.start_soon(hostile)
            tg.start_soon(hostile)
        elapsed = time.monotonic() - started
        assert elapsed < 1.5
        for result in results:
            assert result.is_error
            assert result.text.startswith("timeout:"), result.text
            assert "terminated" in result.text
        # the pool repaired itself: both connections are usable at once
        results.clear()

        async def read() -> None:
            results.append(await toolset.call("db_query", {"sql": "SELECT value FROM canary"}))

        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            tg.start_soon(read)
        assert [answer(r)[1]["rows"] for r in results] == [[["intact"]], [["intact"]]]


async def test_explain_is_bounded_like_a_query(pg: PgServer, bombs_done: None) -> None:
    """The planner folds constant expressions, so explain runs them: the same allowlist and hard deadline apply."""
    async with postgres_toolset(pg.reader, limits=QueryLimits(timeout=0.2)) as toolset:
        started = time.monotonic()
        result = await toolset.call("db_explain", {"sql": LIKE_BOMB})
        assert time.monotonic() - started < 1.5
        assert result.is_error
        assert result.text.startswith("timeout:")
        denied = await toolset.call("db_explain", {"sql": "SELECT (0.3::float8).pg_sleep"})
        assert denied.text.startswith("denied_by_policy:")
        assert "without running it" not in toolset.get("db_explain").description


# --- bytes ------------------------------------------------------------------------------------------------------------


async def test_huge_cells_are_cut_on_the_server(toolsets: dict[str, Toolset]) -> None:
    """Ten 10 MB cells never reach the tool process: Python allocates well under 10 MB for a 64 kB answer."""
    tracemalloc.start()
    try:
        result = await toolsets["reader"].call(
            "db_query", {"sql": "SELECT g, repeat('x', 10000000) AS big FROM generate_series(1, 10) AS g"}
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    header, body = answer(result)
    assert peak < 10_000_000, peak
    assert header["row_count"] == 10
    assert header["cells_truncated"] == 10
    assert body["rows"][0][1].endswith("…[10000000 bytes in total]")
    assert body["rows"][0][1].startswith("x" * 500)


async def test_rows_stop_at_the_output_budget(pg: PgServer) -> None:
    """Rows past max_output_bytes are not fetched at all; the header says the byte budget cut them."""
    async with postgres_toolset(pg.reader, limits=QueryLimits(max_output_bytes=4000)) as toolset:
        header, body = answer(
            await toolset.call(
                "db_query", {"sql": "SELECT repeat('y', 1000) FROM generate_series(1, 1000)", "max_rows": 1000}
            )
        )
    assert header["truncated"] is True
    assert header["truncated_by"] == "max_output_bytes"
    assert len(body["rows"]) < 10


async def test_statement_text_cannot_reshape_the_row_bound(toolsets: dict[str, Toolset]) -> None:
    """A trailing comment or semicolon stays inside the model's statement; the bound still applies to it."""
    for sql in ["SELECT repeat('z', 100000) -- ) AS q", "SELECT repeat('z', 100000);", "SELECT repeat('z', 100000);\n"]:
        header, body = answer(await toolsets["reader"].call("db_query", {"sql": sql}))
        assert header["cells_truncated"] == 1, sql
        assert body["rows"][0][0].endswith("…[100000 bytes in total]")


# --- state, fencing, clear errors ---------------------------------------------------------------------------------


async def test_setseed_cannot_leak_into_the_next_call(toolsets: dict[str, Toolset]) -> None:
    """setseed would survive ROLLBACK and DISCARD ALL in a pooled session; it is refused in every spelling."""
    for sql in ["SELECT setseed(0.5)", "SELECT (0.5::float8).setseed", "SELECT * FROM setseed(0.5)"]:
        result = await toolsets["reader"].call("db_query", {"sql": sql})
        assert result.text.startswith("denied_by_policy:"), sql


async def test_preview_says_what_it_may_change(pg: PgServer) -> None:
    """A write preview says sequences it drew from stay advanced, and never claims that nothing changed."""
    with psycopg.connect(pg.admin, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS notes (id serial PRIMARY KEY, body text); "
            "GRANT SELECT, INSERT ON notes TO bridge_writer; GRANT USAGE ON SEQUENCE notes_id_seq TO bridge_writer"
        )
    try:
        before = pg.scalar("SELECT last_value FROM notes_id_seq")
        async with postgres_toolset(pg.writer, read_only=False) as toolset:
            result = await toolset.call("db_execute", {"sql": "INSERT INTO notes (body) VALUES ($1)", "params": ["x"]})
        assert not result.is_error, result.text
        assert "nothing was changed" not in result.text
        assert "sequence" in result.text
        assert pg.scalar("SELECT count(*) FROM notes") == 0
        assert pg.scalar("SELECT last_value FROM notes_id_seq") != before or before == 1
    finally:
        with psycopg.connect(pg.admin, autocommit=True) as conn:
            conn.execute("DROP TABLE notes")


async def test_returning_rows_are_bounded_like_a_query(pg: PgServer) -> None:
    """A write's RETURNING sends back a few clipped rows and the exact count, not all 6 MB of returned rows."""
    with psycopg.connect(pg.admin, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS blobs (id int, body text); GRANT SELECT, INSERT ON blobs TO bridge_writer"
        )
    try:
        async with postgres_toolset(pg.writer, read_only=False) as toolset:
            tracemalloc.start()
            try:
                result = await toolset.call(
                    "db_execute",
                    {
                        "sql": "INSERT INTO blobs SELECT g, 'x' FROM generate_series(1, 30) AS g "
                        "RETURNING id, repeat(body, 200000) AS big"
                    },
                )
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
        header, body = answer(result)
        assert header["rows_affected"] == 30
        assert peak < 2_000_000, peak
        assert body["more"] is True
        assert body["rows"][0][1].endswith("…[200000 bytes in total]")
        assert pg.scalar("SELECT count(*) FROM blobs") == 0
    finally:
        with psycopg.connect(pg.admin, autocommit=True) as conn:
            conn.execute("DROP TABLE blobs")


async def test_database_text_in_errors_is_fenced(pg: PgServer, toolsets: dict[str, Toolset]) -> None:
    """A value quoted back in a server error message arrives inside the untrusted-data boundary."""
    result = await toolsets["reader"].call("db_query", {"sql": "SELECT note::int FROM customers WHERE id = 13"})
    assert result.is_error
    assert result.text.startswith("invalid_input:")
    assert result.text.index("<untrusted-data-") < result.text.index("Ignore previous instructions")


@pytest.mark.parametrize(
    ("arguments", "needle"),
    [
        ({"sql": "SELECT $1::text", "params": ["\ud800"]}, "lone surrogate"),
        ({"sql": "SELECT '\udc00'"}, "lone surrogate"),
        ({"sql": "SELECT $1::numeric", "params": [2**70]}, "beyond 64 bits"),
        ({"sql": "SELECT 1" + " + 1" * 3000}, "nested too deeply"),
        ({"sql": "SELECT " + "(" * 20000 + "1" + ")" * 20000}, "invalid_input"),
        ({"sql": "SELECT " + " + ".join(["1"] * 20000)}, "invalid_input"),
    ],
)
async def test_hostile_inputs_get_clear_errors(
    toolsets: dict[str, Toolset], arguments: dict[str, Any], needle: str
) -> None:
    """Lone surrogates, integers past 64 bits and deep nesting end as a clear invalid_input, not a masked crash."""
    result = await toolsets["reader"].call("db_query", arguments)
    assert result.is_error
    assert result.text.startswith("invalid_input:"), result.text
    assert needle in result.text


async def test_temp_files_are_bounded_by_the_role_setting(toolsets: dict[str, Toolset]) -> None:
    """describe_source warns when a role may spill unlimited temp files; with the setting, a big sort stops cleanly."""
    assert "temp_file_limit is unlimited" in (await toolsets["superuser"].call("db_describe_source", {})).text
    assert "temp_file_limit is unlimited" not in (await toolsets["reader"].call("db_describe_source", {})).text
    result = await toolsets["reader"].call(
        "db_query", {"sql": "SELECT a.h FROM big AS a ORDER BY a.h DESC OFFSET 999999", "timeout_ms": 10000}
    )
    assert result.is_error
    assert result.text.startswith("denied_by_policy: the statement hit a server resource limit"), result.text
