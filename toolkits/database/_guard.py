"""Check model SQL for PostgreSQL with PostgreSQL's own parser before it reaches the server.

Parser choice: **pglast**, which wraps libpg_query, the parser source extracted from PostgreSQL itself. The server
and this check therefore agree on what the text means: dollar quoting, nested comments, `E''` and `U&""` escapes,
and unusual whitespace cannot hide a statement or a function call from us. The alternatives read SQL their own way:
`sqlparse` only tokenizes (it cannot tell a function call in a FROM clause from a table), and `sqlglot` is a
multi-dialect transpiler whose grammar approximates PostgreSQL's and can disagree on edge syntax. A keyword or prefix
check, the approach behind most read-only bypasses in the attack corpus (V3, V6, V9), is not considered at all.

What is checked, on the parse tree serialized to JSON and walked generically (every node, whatever its type, so a
new node kind cannot skip the walk the way `RangeFunction` skipped Postgres MCP Pro's function check, V4):

* exactly one statement, of an allowed kind (`SelectStmt` to read; INSERT, UPDATE, DELETE, MERGE to write);
* in a read, no nested data-modifying statement (a `WITH d AS (DELETE ...)` CTE), no `SELECT INTO`, no `FOR UPDATE`;
* no call to a denied function, in any position: select list, WHERE, FROM (`RangeFunction`, `ROWS FROM`), LATERAL,
  TABLESAMPLE, defaults. Names are compared without their schema and lowercased.

This is one layer of four; the role's privileges, the extended protocol and the READ ONLY transaction each hold on
their own. The denylist cannot see a function called inside a view or another function; the role check is what
covers those.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from pglast import parser

from bridge import ToolError

__all__ = ["DENIED_FUNCTIONS", "READ_KINDS", "WRITE_KINDS", "SqlGuard"]

_FILES = "reads or lists files on the database server"
_DYNAMIC = "runs SQL text of its own, beyond this check"
_SERVER = "acts on the server or other sessions"
_STATE = "changes state even in a read-only transaction"

DENIED_FUNCTIONS: dict[str, str] = {
    **dict.fromkeys(
        ["pg_read_*", "pg_ls_*", "pg_stat_file", "pg_file_*", "pg_current_logfile", "pg_show_all_file_settings"],
        _FILES,
    ),
    "lo_*": "reads or writes large objects and, through lo_import/lo_export, server files",
    **dict.fromkeys(
        [
            "dblink*",
            "query_to_xml*",
            "cursor_to_xml*",
            "table_to_xml*",
            "schema_to_xml*",
            "database_to_xml*",
            "ts_stat",
            "ts_rewrite",
        ],
        _DYNAMIC,
    ),
    **dict.fromkeys(
        [
            "pg_sleep*",
            "pg_advisory*",
            "pg_try_advisory*",
            "set_config",
            "pg_terminate_backend",
            "pg_cancel_backend",
            "pg_signal_backend",
            "pg_reload_conf",
            "pg_rotate_logfile*",
            "pg_promote",
            "pg_create_*",
            "pg_drop_replication_slot",
            "pg_copy_*_replication_slot",
            "pg_replication_*",
            "pg_logical_*",
            "pg_switch_wal",
            "pg_backup_*",
            "pg_start_backup",
            "pg_stop_backup",
            "pg_wal_replay_*",
            "pg_stat_reset*",
            "pg_log_backend_memory_contexts",
            "pg_notify",
            "binary_upgrade_*",
            "pg_import_system_collations",
        ],
        _SERVER,
    ),
    **dict.fromkeys(["nextval", "setval", "txid_current", "pg_current_xact_id", "pg_export_snapshot"], _STATE),
}
"""Denied function name patterns (fnmatch, lowercase, schema ignored) and why each is denied."""

_FINE_IN_WRITES = frozenset({"nextval", "txid_current", "pg_current_xact_id"})  # a write assigns an xid anyway
READ_KINDS = frozenset({"SelectStmt"})
WRITE_KINDS = frozenset({"InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"})


def _nodes(tree: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair in the JSON parse tree, depth first."""
    stack = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                yield key, value
                stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)


def _is_statement(key: str) -> bool:
    """Node types are CamelCase (`DeleteStmt`); fields are camelCase (`selectStmt`), so only the former count."""
    return key[:1].isupper() and key.endswith("Stmt")


def _function_name(call: dict[str, Any]) -> str:
    parts = [p.get("String", {}).get("sval", "") for p in call.get("funcname", [])]
    return parts[-1] if parts else ""


@dataclass(frozen=True)
class SqlGuard:
    """The parse-tree check, configured with the function denylist.

    Attributes:
        denied: Function name patterns to refuse, with the reason shown to the model.
        allowed: Exact function names exempted from `denied` (an operator's deliberate choice).
    """

    denied: dict[str, str]
    allowed: frozenset[str] = frozenset()

    @classmethod
    def default(cls, allow_functions: Iterable[str] = ()) -> SqlGuard:
        """The default denylist, minus the names the operator explicitly allows."""
        return cls(dict(DENIED_FUNCTIONS), frozenset(name.lower() for name in allow_functions))

    def parse(self, sql: str) -> tuple[str, dict[str, Any]]:
        """Parse exactly one statement; return its node kind and body.

        Raises:
            ToolError: a syntax error, no statement, or more than one.
        """
        try:
            tree = json.loads(parser.parse_sql_json(sql))
        except parser.ParseError as exc:
            hint = " (placeholders are $1, $2, ..., not %s or ?)" if "%s" in sql or "?" in sql else ""
            raise ToolError(f"invalid_input: SQL syntax error: {exc}{hint}") from exc
        statements = tree.get("stmts", [])
        if len(statements) != 1:
            found = "no statement" if not statements else f"{len(statements)} statements"
            raise ToolError(f"invalid_input: send exactly one SQL statement; found {found}")
        ((kind, body),) = statements[0]["stmt"].items()
        return kind, body

    def check_read(self, sql: str) -> None:
        """Accept one SELECT (VALUES, TABLE, set operations and CTEs included) that cannot write or lock.

        Raises:
            ToolError: the statement is not a plain read, or calls a denied function.
        """
        kind, body = self.parse(sql)
        if kind == "ExplainStmt":
            raise ToolError("invalid_input: send the query without EXPLAIN; the explain tool adds it")
        if kind not in READ_KINDS:
            raise ToolError(
                f"denied_by_policy: {_label(kind)} is not allowed here; this tool runs one SELECT (WITH, VALUES and "
                "set operations included)"
            )
        for key, value in _nodes(body):
            if _is_statement(key) and key != "SelectStmt":
                raise ToolError(f"denied_by_policy: a {_label(key)} inside the query is not allowed; it would write")
            if key == "intoClause":
                raise ToolError("denied_by_policy: SELECT INTO creates a table; it is not allowed here")
            if key == "lockingClause":
                raise ToolError("denied_by_policy: FOR UPDATE/SHARE locks rows; it is not allowed here")
            if key == "FuncCall":
                self._check_function(value)

    def check_write(self, sql: str) -> str:
        """Accept one INSERT, UPDATE, DELETE or MERGE with no nested write and no denied function; return its kind.

        Raises:
            ToolError: any other statement, a second write inside it, or a denied function.
        """
        kind, body = self.parse(sql)
        if kind not in WRITE_KINDS:
            hint = "; use the query tool to read" if kind in READ_KINDS else ""
            raise ToolError(
                f"denied_by_policy: {_label(kind)} is not allowed here; this tool runs one INSERT, UPDATE, DELETE or "
                f"MERGE{hint}"
            )
        for key, value in _nodes(body):
            if _is_statement(key) and key != "SelectStmt":
                raise ToolError(f"denied_by_policy: a nested {_label(key)} is not allowed; send one write at a time")
            if key == "FuncCall":
                self._check_function(value, writing=True)
        return kind

    def check_explain(self, sql: str, *, inner: frozenset[str]) -> None:
        """Re-check the EXPLAIN text we composed: one ExplainStmt wrapping a statement of an `inner` kind."""
        kind, body = self.parse(sql)
        query_kind = next(iter(body.get("query", {})), "")
        if kind != "ExplainStmt" or query_kind not in inner:
            raise ToolError("invalid_input: the statement cannot be explained; send one SELECT")

    def _check_function(self, call: dict[str, Any], *, writing: bool = False) -> None:
        name = _function_name(call).lower()
        if name in self.allowed or (writing and name in _FINE_IN_WRITES):
            return
        for pattern, reason in self.denied.items():
            if fnmatch.fnmatchcase(name, pattern):
                raise ToolError(f"denied_by_policy: function {name}() is not allowed: it {reason}")


def _label(kind: str) -> str:
    """`DeleteStmt` -> `DELETE statement`, for messages."""
    words = {
        "SelectStmt": "SELECT",
        "InsertStmt": "INSERT",
        "UpdateStmt": "UPDATE",
        "DeleteStmt": "DELETE",
        "MergeStmt": "MERGE",
        "TransactionStmt": "transaction control (BEGIN/COMMIT/ROLLBACK)",
        "VariableSetStmt": "SET",
        "VariableShowStmt": "SHOW",
        "CopyStmt": "COPY",
        "CreateStmt": "CREATE TABLE",
        "CreateTableAsStmt": "CREATE TABLE AS / SELECT INTO",
        "DropStmt": "DROP",
        "TruncateStmt": "TRUNCATE",
        "DoStmt": "DO block",
        "CallStmt": "CALL",
        "GrantStmt": "GRANT",
        "AlterTableStmt": "ALTER TABLE",
    }
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", kind.removesuffix("Stmt")).upper()
    return f"{words.get(kind, spaced)} statement"
