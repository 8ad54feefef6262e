"""Check model SQL for PostgreSQL with PostgreSQL's own parser before it reaches the server.

Parser choice: **pglast**, which wraps libpg_query, the parser source extracted from PostgreSQL itself. The server
and this check therefore agree on what the text means: dollar quoting, nested comments, `E''` and `U&""` escapes,
and unusual whitespace cannot hide a statement or a function call from us. A keyword or prefix check, the approach
behind most read-only bypasses in the attack corpus (V3, V6, V9), is not considered at all.

What is checked, on the parse tree serialized to JSON and walked generically:

* exactly one statement, of an allowed kind (`SelectStmt` to read; INSERT, UPDATE, DELETE, MERGE to write);
* in a read, no nested data-modifying statement (a `WITH d AS (DELETE ...)` CTE), no `SELECT INTO`, no `FOR UPDATE`;
* every node is of a kind this check knows (`ALLOWED_NODES`): a node kind added by a future parser, or one we chose
  to leave out (XML expressions, `XMLTABLE`), is refused rather than walked past;
* every name through which the statement could run code is collected into `References` (function calls in any
  position, field notation `(x).f`, operators, type names, sample methods) and checked by name here, then resolved
  against the catalog by `_pg_allowlist.Allowlist` inside the call's transaction.

This is one layer of four; the role's privileges, the extended protocol and the READ ONLY transaction each hold on
their own. Functions called inside views, column defaults, policies or a type's own I/O are the database owner's
code: neither check sees them, the role's grants decide what they reach.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from pglast import parser

from bridge import ToolError

from ._pg_allowlist import SAFE_FUNCTIONS, SAFE_IN_WRITES, SAFE_SAMPLE_METHODS, References

__all__ = ["ALLOWED_NODES", "READ_KINDS", "WRITE_KINDS", "SqlGuard", "check_embedded", "statement_text"]

READ_KINDS = frozenset({"SelectStmt"})
WRITE_KINDS = frozenset({"InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"})
_WRITE = """InsertStmt UpdateStmt DeleteStmt MergeStmt OnConflictClause InferClause IndexElem MultiAssignRef
    SetToDefault MergeWhenClause ReturningClause ReturningOption"""
_WRITE_NODES = frozenset(_WRITE.split())
_ALLOWED = """SelectStmt ResTarget ColumnRef String A_Const Integer Float Boolean BitString A_Star RangeVar Alias
    JoinExpr A_Expr BoolExpr FuncCall TypeCast TypeName SortBy WithClause CommonTableExpr
    CTESearchClause CTECycleClause SubLink RangeSubselect RangeFunction RangeTableSample NullTest
    BooleanTest CaseExpr CaseWhen CoalesceExpr MinMaxExpr A_ArrayExpr RowExpr A_Indirection
    A_Indices ParamRef WindowDef SQLValueFunction CollateClause GroupingSet GroupingFunc ColumnDef
    List JsonObjectConstructor JsonArrayConstructor JsonArrayQueryConstructor JsonValueExpr
    JsonOutput JsonFormat JsonKeyValue JsonIsPredicate JsonReturning JsonObjectAgg JsonArrayAgg
    JsonAggConstructor JsonParseExpr JsonScalarExpr JsonSerializeExpr JsonFuncExpr JsonBehavior
    JsonArgument"""
ALLOWED_NODES = frozenset(_ALLOWED.split())
"""Parse-tree node kinds a statement may contain; anything else is refused, so nothing unknown is walked past."""

_BETWEEN_OPERATORS = frozenset({">=", "<=", "<", ">"})
_IMPLIED = {"AEXPR_BETWEEN", "AEXPR_NOT_BETWEEN", "AEXPR_BETWEEN_SYM", "AEXPR_NOT_BETWEEN_SYM"}
_STRUCTURAL_FIELDS = {"intoClause", "lockingClause"}


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


def _is_node(key: str) -> bool:
    """Node types are CamelCase (`DeleteStmt`, `A_Expr`); fields are camelCase (`selectStmt`)."""
    return key[:1].isupper()


def _names(items: list[Any]) -> list[str]:
    return [p.get("String", {}).get("sval", "") for p in items if isinstance(p, dict)]


def _split(parts: list[str]) -> tuple[str | None, str]:
    """`[schema, name]` or `[name]` (or `[db, schema, name]`, which the server refuses anyway)."""
    return (parts[-2] if len(parts) >= 2 else None), parts[-1] if parts else ""


@dataclass(frozen=True)
class SqlGuard:
    """The parse-tree check, configured with the functions the operator allows beyond `SAFE_FUNCTIONS`.

    Attributes:
        allowed: Extra function names: `"name"` (a built-in `pg_catalog` function) or `"schema.name"`.
    """

    allowed: frozenset[str] = frozenset()

    @classmethod
    def default(cls, allow_functions: Iterable[str] = ()) -> SqlGuard:
        """The default allowlist plus the names the operator explicitly allows."""
        return cls(frozenset(name.lower() if "." not in name else name for name in allow_functions))

    def parse(self, sql: str) -> tuple[str, dict[str, Any]]:
        """Parse exactly one statement; return its node kind and body.

        Raises:
            ToolError: a syntax error, no statement, more than one, or nesting too deep to check.
        """
        try:
            tree = json.loads(parser.parse_sql_json(sql))
        except parser.ParseError as exc:
            hint = " (placeholders are $1, $2, ..., not %s or ?)" if "%s" in sql or "?" in sql else ""
            raise ToolError(f"invalid_input: SQL syntax error: {exc}{hint}") from exc
        except (RecursionError, ValueError) as exc:
            raise ToolError("invalid_input: the statement is nested too deeply to check; simplify it") from exc
        statements = tree.get("stmts", [])
        if len(statements) != 1:
            found = "no statement" if not statements else f"{len(statements)} statements"
            raise ToolError(f"invalid_input: send exactly one SQL statement; found {found}")
        ((kind, body),) = statements[0]["stmt"].items()
        return kind, body

    def check_read(self, sql: str) -> References:
        """Accept one SELECT (VALUES, TABLE, set operations and CTEs included) that cannot write or lock.

        Returns:
            The names to resolve against the catalog before the statement runs.

        Raises:
            ToolError: the statement is not a plain read, or names something outside the allowlist.
        """
        kind, body = self.parse(sql)
        if kind == "ExplainStmt":
            raise ToolError("invalid_input: send the query without EXPLAIN; the explain tool adds it")
        if kind not in READ_KINDS:
            raise ToolError(
                f"denied_by_policy: {_label(kind)} is not allowed here; this tool runs one SELECT (WITH, VALUES and "
                "set operations included)"
            )
        return self._walk(body, writing=False)

    def check_write(self, sql: str) -> References:
        """Accept one INSERT, UPDATE, DELETE or MERGE with no nested write and nothing outside the allowlist.

        Raises:
            ToolError: any other statement, a second write inside it, or a name outside the allowlist.
        """
        kind, body = self.parse(sql)
        if kind not in WRITE_KINDS:
            hint = "; use the query tool to read" if kind in READ_KINDS else ""
            raise ToolError(
                f"denied_by_policy: {_label(kind)} is not allowed here; this tool runs one INSERT, UPDATE, DELETE or "
                f"MERGE{hint}"
            )
        refs = self._walk(body, writing=True)
        refs.returning = bool(body.get("returningList") or body.get("returningClause"))  # before / since PG 18
        return refs

    def write_kind(self, sql: str) -> str:
        """The statement's node kind (for choosing which check applies)."""
        return self.parse(sql)[0]

    def check_explain(self, sql: str, *, inner: frozenset[str]) -> None:
        """Re-check the EXPLAIN text we composed: one ExplainStmt wrapping a statement of an `inner` kind."""
        kind, body = self.parse(sql)
        query_kind = next(iter(body.get("query", {})), "")
        if kind != "ExplainStmt" or query_kind not in inner:
            raise ToolError("invalid_input: the statement cannot be explained; send one SELECT")

    def _walk(self, body: dict[str, Any], *, writing: bool) -> References:
        refs = References(writing=writing)
        for key, value in _nodes(body):
            if key in _STRUCTURAL_FIELDS and not writing:
                raise ToolError(
                    "denied_by_policy: SELECT INTO creates a table; it is not allowed here"
                    if key == "intoClause"
                    else "denied_by_policy: FOR UPDATE/SHARE locks rows; it is not allowed here"
                )
            if key == "typeName" and isinstance(value, dict):  # a TypeName, serialized without its node key
                refs.types.add(_split(_names(value.get("names", []))))
            if not _is_node(key):
                continue
            if key.endswith("Stmt") and key != "SelectStmt":
                if not writing:
                    raise ToolError(
                        f"denied_by_policy: a {_label(key)} inside the query is not allowed; it would write"
                    )
                raise ToolError(f"denied_by_policy: a nested {_label(key)} is not allowed; send one write at a time")
            if key not in ALLOWED_NODES and not (writing and key in _WRITE_NODES):
                raise ToolError(
                    f"denied_by_policy: {_node_label(key)} is not allowed here; the SQL check accepts plain "
                    "expressions, joins, subqueries, CTEs, aggregates and window functions"
                )
            self._collect(key, value, refs)
        return refs

    def _collect(self, key: str, value: Any, refs: References) -> None:
        if not isinstance(value, dict):
            return
        if key == "FuncCall":
            schema, name = _split(_names(value.get("funcname", [])))
            self._check_function_name(schema, name, writing=refs.writing)
            refs.functions.add((schema, name))
        elif key == "ColumnRef":
            fields = _names(value.get("fields", []))
            refs.fields.update(f for f in fields[1:] if f)
        elif key == "A_Indirection":
            refs.fields.update(n for n in _names(value.get("indirection", [])) if n)
        elif key == "A_Expr":
            if value.get("kind") in _IMPLIED:
                refs.operators.update((None, op) for op in _BETWEEN_OPERATORS)
            else:
                refs.operators.add(_split(_names(value.get("name", []))))
        elif key == "CaseExpr" and value.get("arg"):
            refs.operators.add((None, "="))  # CASE x WHEN y compares with the = operator
        elif key == "SubLink" and value.get("operName"):
            refs.operators.add(_split(_names(value["operName"])))
        elif key == "SortBy" and value.get("useOp"):
            refs.operators.add(_split(_names(value["useOp"])))
        elif key == "TypeName":
            refs.types.add(_split(_names(value.get("names", []))))
        elif key == "RangeTableSample":
            method = _split(_names(value.get("method", [])))
            if method[1] not in SAFE_SAMPLE_METHODS:
                raise ToolError(f"denied_by_policy: TABLESAMPLE {method[1]} is not allowed; use BERNOULLI or SYSTEM")

    def _check_function_name(self, schema: str | None, name: str, *, writing: bool) -> None:
        """The name-level half of the allowlist (the catalog resolves the rest when the call runs)."""
        if writing and schema in (None, "pg_catalog") and name in SAFE_IN_WRITES:
            return
        if f"{schema}.{name}" in self.allowed or (schema in (None, "pg_catalog") and name in self.allowed):
            return
        if schema in (None, "pg_catalog") and name in SAFE_FUNCTIONS:
            return
        if schema is None and any(a.rpartition(".")[2] == name for a in self.allowed):
            return
        shown = f"{schema}.{name}" if schema else name
        raise ToolError(
            f"denied_by_policy: function {shown}() is not on this source's allowlist; allowed are built-in "
            "functions that compute on values, aggregates, window, JSON, text search and catalog lookups"
        )


def _tree(sql: str) -> Any:
    """The parse tree of `sql` without source positions, for comparing two texts' meaning."""
    try:
        tree = json.loads(parser.parse_sql_json(sql))
    except (parser.ParseError, RecursionError, ValueError) as exc:
        raise ToolError("invalid_input: the statement cannot be run inside the row bound; send one SELECT") from exc
    return _strip(tree.get("stmts", []))


_POSITIONS = ("location", "stmt_len", "list_start", "list_end")
"""Parse-tree fields that hold offsets into the text (differ when the same statement is embedded elsewhere)."""


def _strip(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {k: _strip(v) for k, v in tree.items() if not k.endswith(_POSITIONS)}
    if isinstance(tree, list):
        return [_strip(v) for v in tree]
    return tree


def _replace(tree: Any, target: Any, marker: str) -> tuple[Any, int]:
    """`tree` with every subtree equal to `target` replaced by `marker`, and how many were replaced."""
    if tree == target:
        return marker, 1
    if isinstance(tree, dict):
        pairs = [(k, _replace(v, target, marker)) for k, v in tree.items()]
        return {k: v for k, (v, _) in pairs}, sum(n for _, (_, n) in pairs)
    if isinstance(tree, list):
        items = [_replace(v, target, marker) for v in tree]
        return [v for v, _ in items], sum(n for _, n in items)
    return tree, 0


def check_embedded(composed: str, sql: str, template: str) -> None:
    """Check that `composed` is `template` with its `SELECT 1` replaced by exactly the statement `sql`, nothing more.

    We embed checked model SQL inside statements of our own (the row bound); this proves by parsing that the model's
    text stayed one subquery and did not reshape ours.

    Raises:
        ToolError: the composed text means anything else.
    """
    (inner,) = _tree(sql)
    (placeholder,) = _tree("SELECT 1")
    ours, n_ours = _replace(_tree(template), placeholder["stmt"], "<query>")
    theirs, n_theirs = _replace(_tree(composed), inner["stmt"], "<query>")
    if n_ours != 1 or n_theirs != 1 or ours != theirs:
        raise ToolError("invalid_input: the statement cannot be run inside the row bound; send one plain SELECT")


def statement_text(sql: str) -> str:
    """The text of the one statement in `sql`, without a trailing semicolon or comment after it."""
    tree = json.loads(parser.parse_sql_json(sql))
    (first,) = tree["stmts"]
    raw = sql.encode()
    start = first.get("stmt_location", 0)
    length = first.get("stmt_len", 0) or len(raw) - start
    return raw[start : start + length].decode()


def _node_label(kind: str) -> str:
    if kind.startswith("Xml") or kind == "RangeTableFunc":
        return "XML (XMLTABLE, XMLELEMENT, IS DOCUMENT, ...)"
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", kind).replace("_", " ")


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
