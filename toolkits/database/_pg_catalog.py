"""PostgreSQL catalog queries: search objects and describe a table, with every name bound as a parameter.

The queries read `pg_catalog` directly (faster and more complete than `information_schema`) inside the same READ ONLY,
deadline-bound transaction as a model's query. Only schemas the role may use and tables it may read are listed:
anything else would only produce permission errors later.
"""

from __future__ import annotations

import difflib
from typing import Any

import psycopg

from bridge import ToolError

from ._format import fenced
from ._source import Detail, ObjectType

__all__ = ["describe", "resolve", "search"]

Connection = psycopg.Connection[tuple[Any, ...]]

_USER_SCHEMAS = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'"
_SCHEMA_FILTER = f"(CASE WHEN $2::text IS NULL THEN {_USER_SCHEMAS} ELSE n.nspname = $2 END)"
_KINDS = {"table": ["r", "p", "f"], "view": ["v", "m"]}
_RELATIONS = ["r", "p", "f", "v", "m"]


def _dicts(conn: Connection, query: str, params: list[Any]) -> list[dict[str, Any]]:
    cursor = psycopg.RawCursor(conn)
    cursor.execute(query, params)
    columns = [c.name for c in cursor.description or ()]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def resolve(conn: Connection, table: str, schema: str | None) -> dict[str, Any]:
    """Find a table or view by name (exact, then case-insensitive), preferring schemas on the search path.

    Raises:
        ToolError: no such relation (with close names), or the name is ambiguous across schemas.
    """
    found = _dicts(
        conn,
        "SELECT c.oid, n.nspname AS schema, c.relname AS name, c.relkind::text AS kind FROM pg_class AS c "
        'JOIN pg_namespace AS n ON n.oid = c.relnamespace WHERE c.relkind = ANY($3::text[]::"char"[]) '
        f"AND {_SCHEMA_FILTER} AND (c.relname = $1 OR lower(c.relname) = lower($1)) "
        "ORDER BY c.relname = $1 DESC, n.nspname = ANY(current_schemas(false)) DESC, n.nspname",
        [table, schema, _RELATIONS],
    )
    exact = [f for f in found if f["name"] == table] or found
    if not exact:
        names = [
            r["name"]
            for r in _dicts(
                conn,
                "SELECT DISTINCT c.relname AS name FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace "
                f'WHERE c.relkind = ANY($1::text[]::"char"[]) AND {_USER_SCHEMAS}',
                [_RELATIONS],
            )
        ]
        close = difflib.get_close_matches(table, names, n=5)
        if close:
            raise ToolError(
                fenced(
                    f"invalid_input: no table or view named {table!r}; did you mean one of these?",
                    ", ".join(close),
                )
            )
        raise ToolError(f"invalid_input: no table or view named {table!r}; search_objects lists the tables")
    on_path = [f for f in exact if f["schema"] == exact[0]["schema"]]
    if schema is None and len({f["schema"] for f in exact}) > 1 and len(on_path) == len(exact):
        schemas = ", ".join(sorted({f["schema"] for f in exact}))
        raise ToolError(
            fenced(f"invalid_input: {table!r} exists in several schemas; pass schema. The schemas:", schemas)
        )
    return exact[0]


def _columns(conn: Connection, oid: int) -> list[dict[str, Any]]:
    return _dicts(
        conn,
        "SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, NOT a.attnotnull AS nullable, "
        "pg_get_expr(d.adbin, d.adrelid) AS default, col_description(a.attrelid, a.attnum) AS comment "
        "FROM pg_attribute AS a LEFT JOIN pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
        "WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        [oid],
    )


def describe(conn: Connection, found: dict[str, Any]) -> dict[str, Any]:
    """Columns, keys and constraints, indexes, a row estimate, the comment, and a view's definition."""
    oid = found["oid"]
    columns = _columns(conn, oid)
    constraints = _dicts(
        conn,
        "SELECT conname AS name, CASE contype WHEN 'p' THEN 'primary key' WHEN 'f' THEN 'foreign key' "
        "WHEN 'u' THEN 'unique' WHEN 'c' THEN 'check' ELSE contype::text END AS type, "
        "pg_get_constraintdef(oid) AS definition FROM pg_constraint WHERE conrelid = $1::oid ORDER BY contype, conname",
        [oid],
    )
    primary = _dicts(
        conn,
        "SELECT a.attname AS name FROM pg_index AS i JOIN pg_attribute AS a ON a.attrelid = i.indrelid "
        "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = $1::oid AND i.indisprimary "
        "ORDER BY array_position(i.indkey::int2[], a.attnum)",
        [oid],
    )
    indexes = _dicts(
        conn,
        "SELECT c.relname AS name, pg_get_indexdef(i.indexrelid) AS definition, i.indisunique AS unique "
        "FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid WHERE i.indrelid = $1::oid ORDER BY 1",
        [oid],
    )
    (info,) = _dicts(
        conn,
        "SELECT c.reltuples::bigint AS estimate, obj_description(c.oid, 'pg_class') AS comment, "
        "CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END AS definition "
        "FROM pg_class AS c WHERE c.oid = $1::oid",
        [oid],
    )
    kind = {"r": "table", "p": "partitioned table", "f": "foreign table", "v": "view", "m": "materialized view"}
    return {
        "name": found["name"],
        "schema": found["schema"],
        "type": kind.get(found["kind"], found["kind"]),
        "columns": [{k: v for k, v in c.items() if v is not None or k == "default"} for c in columns],
        "primary_key": [p["name"] for p in primary],
        "constraints": constraints,
        "indexes": indexes,
        "row_estimate": info["estimate"] if info["estimate"] >= 0 else "unknown (table never analyzed)",
        **({"comment": info["comment"]} if info["comment"] else {}),
        **({"definition": info["definition"]} if info["definition"] else {}),
    }


def search(
    conn: Connection,
    object_type: ObjectType,
    pattern: str,
    schema: str | None,
    table: str | None,
    detail: Detail,
    limit: int,
) -> list[dict[str, Any]]:
    """Catalog entries whose name matches `pattern` (SQL ILIKE), limited to what the role can use."""
    if object_type == "schema":
        rows = _dicts(
            conn,
            "SELECT n.nspname AS name, obj_description(n.oid, 'pg_namespace') AS comment, "
            "(SELECT count(*) FROM pg_class AS c WHERE c.relnamespace = n.oid "
            "AND c.relkind IN ('r', 'p', 'v', 'm', 'f')) "
            f"AS relations FROM pg_namespace AS n WHERE {_SCHEMA_FILTER} AND n.nspname ILIKE $1 "
            "AND has_schema_privilege(n.oid, 'USAGE') ORDER BY 1 LIMIT $3",
            [pattern, schema, limit],
        )
        return [{"name": r["name"]} if detail == "names" else _compact(r) for r in rows]
    if object_type in ("table", "view"):
        rows = _dicts(
            conn,
            "SELECT c.oid, n.nspname AS schema, c.relname AS name, c.relkind::text AS kind, "
            "c.reltuples::bigint AS estimate FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace "
            f'WHERE c.relkind = ANY($3::text[]::"char"[]) AND {_SCHEMA_FILTER} AND c.relname ILIKE $1 '
            "AND ($4::text IS NULL OR c.relname = $4) AND has_table_privilege(c.oid, 'SELECT') ORDER BY 2, 3 LIMIT $5",
            [pattern, schema, _KINDS[object_type], table, limit],
        )
        if detail == "names":
            return [{"schema": r["schema"], "name": r["name"]} for r in rows]
        if detail == "summary":
            return [
                {"schema": r["schema"], "name": r["name"], "columns": [c["name"] for c in _columns(conn, r["oid"])]}
                | ({"row_estimate": r["estimate"]} if r["estimate"] >= 0 else {})
                for r in rows
            ]
        return [describe(conn, r) for r in rows]
    if object_type == "column":
        rows = _dicts(
            conn,
            "SELECT n.nspname AS schema, c.relname AS table, a.attname AS name, "
            "format_type(a.atttypid, a.atttypmod) AS type, NOT a.attnotnull AS nullable, "
            "col_description(a.attrelid, a.attnum) AS comment FROM pg_attribute AS a "
            "JOIN pg_class AS c ON c.oid = a.attrelid JOIN pg_namespace AS n ON n.oid = c.relnamespace "
            f'WHERE c.relkind = ANY($3::text[]::"char"[]) AND {_SCHEMA_FILTER} AND a.attnum > 0 '
            "AND NOT a.attisdropped AND a.attname ILIKE $1 AND ($4::text IS NULL OR c.relname = $4) "
            "AND has_table_privilege(c.oid, 'SELECT') ORDER BY 1, 2, a.attnum LIMIT $5",
            [pattern, schema, _RELATIONS, table, limit],
        )
        keep = {"names": ("schema", "table", "name"), "summary": ("schema", "table", "name", "type", "nullable")}
        return [_compact({k: r[k] for k in keep.get(detail, tuple(r))}) for r in rows]
    rows = _dicts(
        conn,
        "SELECT n.nspname AS schema, t.relname AS table, c.relname AS name, i.indisunique AS unique, "
        "i.indisprimary AS primary, pg_get_indexdef(i.indexrelid) AS definition FROM pg_index AS i "
        "JOIN pg_class AS c ON c.oid = i.indexrelid JOIN pg_class AS t ON t.oid = i.indrelid "
        f"JOIN pg_namespace AS n ON n.oid = t.relnamespace WHERE {_SCHEMA_FILTER} AND c.relname ILIKE $1 "
        "AND ($3::text IS NULL OR t.relname = $3) ORDER BY 1, 2, 3 LIMIT $4",
        [pattern, schema, table, limit],
    )
    keep = {"names": ("schema", "table", "name"), "summary": ("schema", "table", "name", "unique", "primary")}
    return [{k: r[k] for k in keep.get(detail, tuple(r))} for r in rows]


def _compact(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if v is not None}
