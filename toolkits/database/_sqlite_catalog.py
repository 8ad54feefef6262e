"""SQLite catalog queries: search objects and describe a table, always with bound names.

Table names reach SQL only as bound parameters (`pragma_table_info(?)`), or quoted after they were matched exactly
against `sqlite_schema`; the archived reference server's f-string `PRAGMA table_info({name})` (V3) has no equivalent.
"""

from __future__ import annotations

import difflib
import sqlite3
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._source import Detail, ObjectType

__all__ = ["NotFound", "describe", "quote", "resolve", "search"]


class NotFound(Exception):
    """No table or view has this name; `close` lists similar names (database text, fenced by the parent)."""

    def __init__(self, table: str, close: list[str]) -> None:
        super().__init__(table)
        self.table, self.close = table, close


_COUNT_CAP = 100_000
_USER_OBJECTS = "name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"


def quote(name: str) -> str:
    """Quote an identifier for SQLite (double quotes, embedded quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


def _dicts(cursor: sqlite3.Cursor) -> list[dict[str, Any]]:
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor]


def resolve(conn: sqlite3.Connection, table: str) -> dict[str, Any]:
    """Find a table or view by exact name (then case-insensitively); suggest close names when it does not exist."""
    rows = _dicts(
        conn.execute(
            f"SELECT name, type, sql FROM sqlite_schema WHERE type IN ('table', 'view') AND {_USER_OBJECTS} "
            "AND (name = ?1 OR lower(name) = lower(?1)) ORDER BY name = ?1 DESC LIMIT 1",
            [table],
        )
    )
    if rows:
        return rows[0]
    names = [
        r[0]
        for r in conn.execute(f"SELECT name FROM sqlite_schema WHERE type IN ('table', 'view') AND {_USER_OBJECTS}")
    ]
    raise NotFound(table, difflib.get_close_matches(table, names, n=5))


def _columns(conn: sqlite3.Connection, table: str) -> list[dict[str, Any]]:
    return [
        {
            "name": c["name"],
            "type": c["type"] or None,
            "nullable": not c["notnull"] and not c["pk"],
            "default": c["dflt_value"],
            "primary_key": bool(c["pk"]),
            **({"generated": True} if c["hidden"] in (2, 3) else {}),
        }
        for c in _dicts(conn.execute("SELECT * FROM pragma_table_xinfo(?) WHERE hidden != 1 ORDER BY cid", [table]))
    ]


def _indexes(conn: sqlite3.Connection, table: str) -> list[dict[str, Any]]:
    indexes = []
    for index in _dicts(conn.execute('SELECT name, "unique", origin FROM pragma_index_list(?)', [table])):
        columns = [r[0] for r in conn.execute("SELECT name FROM pragma_index_info(?) ORDER BY seqno", [index["name"]])]
        indexes.append(
            {"name": index["name"], "columns": columns, "unique": bool(index["unique"]), "origin": index["origin"]}
        )
    return indexes


def _foreign_keys(conn: sqlite3.Connection, table: str) -> list[dict[str, Any]]:
    keys: dict[int, dict[str, Any]] = {}
    for fk in _dicts(conn.execute("SELECT * FROM pragma_foreign_key_list(?) ORDER BY id, seq", [table])):
        key = keys.setdefault(fk["id"], {"columns": [], "references": fk["table"], "referenced_columns": []})
        key["columns"].append(fk["from"])
        key["referenced_columns"].append(fk["to"])
    return list(keys.values())


def describe(conn: sqlite3.Connection, found: dict[str, Any]) -> dict[str, Any]:
    """Columns, primary key, foreign keys, indexes, a bounded row count and the DDL of one table or view."""
    name = found["name"]
    columns = _columns(conn, name)
    count = conn.execute(f"SELECT count(*) FROM (SELECT 1 FROM {quote(name)} LIMIT {_COUNT_CAP + 1})").fetchone()[0]
    return {
        "name": name,
        "schema": "main",
        "type": found["type"],
        "columns": columns,
        "primary_key": [c["name"] for c in columns if c["primary_key"]],
        "foreign_keys": _foreign_keys(conn, name),
        "indexes": _indexes(conn, name),
        "row_count": count if count <= _COUNT_CAP else f"more than {_COUNT_CAP}",
        "ddl": found["sql"],
    }


def search(
    conn: sqlite3.Connection, object_type: ObjectType, pattern: str, table: str | None, detail: Detail, limit: int
) -> list[dict[str, Any]]:
    """Catalog entries whose name matches `pattern` (SQL LIKE, case-insensitive), `limit` at most."""
    if object_type == "schema":
        return [{"name": "main"}] if _like(conn, "main", pattern) else []
    if object_type in ("table", "view"):
        found = _dicts(
            conn.execute(
                f"SELECT name, type, sql FROM sqlite_schema WHERE type = ? AND {_USER_OBJECTS} AND name LIKE ? "
                "AND (?3 IS NULL OR name = ?3) ORDER BY name LIMIT ?",
                [object_type, pattern, table, limit],
            )
        )
        if detail == "names":
            return [{"name": f["name"]} for f in found]
        if detail == "summary":
            return [{"name": f["name"], "columns": [c["name"] for c in _columns(conn, f["name"])]} for f in found]
        return [describe(conn, f) for f in found]
    if object_type == "column":
        found = _dicts(
            conn.execute(
                'SELECT m.name AS tbl, p.name, p.type, p."notnull", p.pk FROM sqlite_schema AS m '
                "JOIN pragma_table_info(m.name) AS p WHERE m.type IN ('table', 'view') "
                f"AND m.{_USER_OBJECTS} AND p.name LIKE ? AND (?2 IS NULL OR m.name = ?2) "
                "ORDER BY m.name, p.cid LIMIT ?",
                [pattern, table, limit],
            )
        )
        if detail == "names":
            return [{"table": f["tbl"], "name": f["name"]} for f in found]
        return [
            {"table": f["tbl"], "name": f["name"], "type": f["type"] or None, "nullable": not (f["notnull"] or f["pk"])}
            | ({"primary_key": bool(f["pk"])} if detail == "full" else {})
            for f in found
        ]
    found = _dicts(
        conn.execute(
            f"SELECT name, tbl_name, sql FROM sqlite_schema WHERE type = 'index' AND {_USER_OBJECTS} AND name LIKE ? "
            "AND (?2 IS NULL OR tbl_name = ?2) ORDER BY name LIMIT ?",
            [pattern, table, limit],
        )
    )
    if detail == "names":
        return [{"name": f["name"], "table": f["tbl_name"]} for f in found]
    out = []
    for f in found:
        columns = [r[0] for r in conn.execute("SELECT name FROM pragma_index_info(?) ORDER BY seqno", [f["name"]])]
        out.append(
            {"name": f["name"], "table": f["tbl_name"], "columns": columns}
            | ({"ddl": f["sql"]} if detail == "full" else {})
        )
    return out


def _like(conn: sqlite3.Connection, value: str, pattern: str) -> bool:
    return bool(conn.execute("SELECT ? LIKE ?", [value, pattern]).fetchone()[0])
