"""Rows from PostgreSQL with their bytes bounded while they are fetched, for queries and for writes with RETURNING.

A single cell can be a gigabyte (`repeat('x', 300000000)`), and the client library holds every fetched row in memory,
so truncating after the fetch is too late. The model's statement is embedded in one of ours that sends back, for
each column, the value when it is small, or its first characters and its size when it is not; rows come in small
batches and fetching stops once the output budget is full. `_guard.check_embedded` proves by parsing that the
composed text is exactly our wrapper around the model's statement.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import errors

from ._format import Clipped, Rows
from ._guard import check_embedded
from ._limits import QueryLimits
from ._source import Param

__all__ = ["fetch_rows", "run_prepared", "write_returning"]

Connection = psycopg.Connection[tuple[Any, ...]]


def run_prepared(conn: Connection, query: str, params: Sequence[Param]) -> psycopg.RawCursor[tuple[Any, ...]]:
    """Run one statement as a named prepared statement (extended protocol only, layer 2), even without params."""
    cursor = psycopg.RawCursor(conn)
    cursor.execute(query, list(params), prepare=True)
    return cursor


_BATCH = 16  # rows per FETCH: a batch is at most _BATCH x columns x the per-cell byte bound


def _bounded_select(query: str, width: int, cell_bytes: int, head_chars: int) -> str:
    """Wrap a checked SELECT so no cell larger than `cell_bytes` (as text) ever leaves the server.

    Each column comes back as three: the value when it is small enough, else NULL; the first `head_chars`
    characters of its text when it is too big; and its size in bytes. The inner query sits behind `OFFSET 0`, so
    the planner evaluates each of its expressions once. The model's text is embedded between newlines, so a
    trailing `--` comment cannot swallow our closing parenthesis; the caller re-checks the composed statement.
    """
    inner = ", ".join(f"c{i}" for i in range(width))
    sizes = ", ".join(f"octet_length(i.c{i}::text) AS n{i}" for i in range(width))
    cells = ", ".join(
        f"CASE WHEN q.n{i} IS NULL OR q.n{i} <= {cell_bytes} THEN q.c{i} END, "
        f"CASE WHEN q.n{i} > {cell_bytes} THEN left(q.c{i}::text, {head_chars}) END, q.n{i}"
        for i in range(width)
    )
    return f"SELECT {cells} FROM (SELECT i.*, {sizes} FROM (\n{query}\n) AS i({inner}) OFFSET 0) AS q"


def fetch_rows(
    conn: Connection, query: str, params: Sequence[Param], cap: int, limits: QueryLimits | None = None
) -> Rows:
    """Run one SELECT as a server-side cursor (extended protocol only, layer 2) and fetch at most `cap` rows.

    With `limits`, bytes are bounded while rows are fetched: cells past a few times `max_cell_chars` are cut on
    the server (see `_bounded_select`), rows come in small batches, and fetching stops once `max_output_bytes`
    of rows are in hand. The statement is first declared as written, which plans it without running it, to learn
    its columns.
    """
    started = time.monotonic()
    limits = limits or QueryLimits()
    with psycopg.RawServerCursor(conn, "bridge_describe") as probe:
        probe.execute(query, list(params))
        columns = [column.name for column in probe.description or ()]
    cell_bytes = max(4 * limits.max_cell_chars, 2 * limits.max_blob_bytes + 2)
    width = len(columns)
    text = _bounded_select(query, width, cell_bytes, limits.max_cell_chars) if width else query
    if width:
        check_embedded(text, query, _bounded_select("SELECT 1", width, cell_bytes, limits.max_cell_chars))
    kept: list[tuple[Any, ...]] = []
    size, capped = 0, False
    with psycopg.RawServerCursor(conn, "bridge_query") as cursor:
        cursor.execute(text, list(params))
        while len(kept) <= cap:
            want = min(_BATCH, cap + 1 - len(kept))
            batch = cursor.fetchmany(want)
            for raw in batch:
                kept.append(
                    tuple(
                        raw[3 * i] if raw[3 * i + 1] is None else Clipped(raw[3 * i + 1], raw[3 * i + 2])
                        for i in range(width)
                    )
                )
                size += sum(min(raw[3 * i + 2] or 4, cell_bytes) for i in range(width)) + 2
            if len(batch) < want:
                break
            if size > limits.max_output_bytes:
                capped = len(kept) <= cap
                break
    more = len(kept) > cap
    return Rows(columns, kept[:cap], more, (time.monotonic() - started) * 1000, bytes_capped=capped)


def _returning_select(statement: str, width: int, cell_bytes: int, head_chars: int, sample: int) -> str:
    """Wrap a write with RETURNING so only `sample + 1` rows, with cells cut like a query's, come back, plus the count.

    A data-modifying CTE always runs to completion, so the write does exactly what it would alone; `count(*) OVER ()`
    counts every returned row, which is the number of rows the write affected.
    """
    inner = ", ".join(f"c{i}" for i in range(width))
    sizes = ", ".join(f"octet_length(i.c{i}::text) AS n{i}" for i in range(width))
    cells = ", ".join(
        f"CASE WHEN q.n{i} IS NULL OR q.n{i} <= {cell_bytes} THEN q.c{i} END AS v{i}, "
        f"CASE WHEN q.n{i} > {cell_bytes} THEN left(q.c{i}::text, {head_chars}) END AS h{i}, q.n{i} AS n{i}"
        for i in range(width)
    )
    return (
        f"WITH w AS (\n{statement}\n) SELECT r.*, count(*) OVER () FROM (SELECT {cells} FROM (SELECT i.*, {sizes} "
        f"FROM w AS i({inner})) AS q) AS r LIMIT {sample + 1}"
    )


def write_returning(
    conn: Connection, statement: str, params: Sequence[Param], sample: int, limits: QueryLimits
) -> tuple[int, Rows]:
    """Run a write that has RETURNING with its returned rows bounded like a query's; return its row count and sample.

    The statement is first described (parsed, not run) to learn its columns.
    """
    described = conn.pgconn.prepare(b"", statement.encode(), None)
    if described.status != psycopg.pq.ExecStatus.COMMAND_OK:
        raise errors.error_from_result(described, encoding=conn.info.encoding)
    shape = conn.pgconn.describe_prepared(b"")
    width = shape.nfields
    columns = [(shape.fname(i) or b"?").decode(conn.info.encoding, "replace") for i in range(width)]
    cell_bytes = max(4 * limits.max_cell_chars, 2 * limits.max_blob_bytes + 2)
    text = _returning_select(statement, width, cell_bytes, limits.max_cell_chars, sample)
    check_embedded(text, statement, _returning_select("SELECT 1", width, cell_bytes, limits.max_cell_chars, sample))
    raw = run_prepared(conn, text, params).fetchall()
    rows = [
        tuple(r[3 * i] if r[3 * i + 1] is None else Clipped(r[3 * i + 1], r[3 * i + 2]) for i in range(width))
        for r in raw
    ]
    rowcount = int(raw[0][-1]) if raw else 0
    return rowcount, Rows(columns, rows[:sample], len(rows) > sample)
