"""The SQLite authorizer: an allowlist checked by SQLite's own parser while it compiles each statement.

`sqlite3.Connection.set_authorizer` calls back for every action a statement would take (read a column, call a
function, attach a file, set a pragma, write a table) during `sqlite3_prepare`, before anything runs. Because the
engine's parser produces these actions, there is no second parser that could read the SQL differently from the engine
(the weakness of prefix and keyword checks, V3 and V9 in the attack corpus). Anything not on the list is denied, so an
action code added by a future SQLite is refused until someone reads what it does.

The authorizer records the first denied action so the tool can tell the model exactly what was refused.
"""

from __future__ import annotations

import sqlite3
from enum import Enum

__all__ = ["ALLOWED_FUNCTIONS", "Authorizer", "Policy"]

# Deterministic, side-effect-free built-ins (core, date/time, math, JSON, window, FTS auxiliaries). Left out on
# purpose: load_extension (code execution), fts3_tokenizer (raw pointers), sqlite_log (writes the error log),
# optimize / rtreecheck / rtreenode (maintenance), sqlite_compileoption_* (fingerprinting).
_ALLOWED = """
    -> ->> abs avg changes char coalesce concat concat_ws count cume_dist current_date current_time current_timestamp
    date datetime dense_rank first_value format glob group_concat hex ifnull iif instr julianday lag last_insert_rowid
    last_value lead length like likelihood likely lower ltrim max min nth_value ntile nullif octet_length percent_rank
    printf quote random randomblob rank replace round row_number rtrim sign soundex sqlite_source_id sqlite_version
    strftime string_agg substr substring subtype sum timediff time total total_changes trim typeof unhex unicode
    unixepoch unlikely upper zeroblob
    acos acosh asin asinh atan atan2 atanh ceil ceiling cos cosh degrees exp floor ln log log10 log2 mod pi pow power
    radians sin sinh sqrt tan tanh trunc
    json json_array json_array_length json_error_position json_extract json_group_array json_group_object json_insert
    json_object json_patch json_pretty json_quote json_remove json_replace json_set json_type json_valid
    jsonb jsonb_array jsonb_extract jsonb_group_array jsonb_group_object jsonb_insert jsonb_object jsonb_patch
    jsonb_remove jsonb_replace jsonb_set
    match bm25 highlight snippet offsets matchinfo
"""
ALLOWED_FUNCTIONS = frozenset(_ALLOWED.split())

# Read-only pragmas our own catalog queries use as table-valued functions (`pragma_table_info(?)`); the argument is
# a table or index name, never a new value.
_CATALOG_PRAGMAS = frozenset(
    {"table_info", "table_xinfo", "index_list", "index_info", "index_xinfo", "foreign_key_list"}
)

_NAMES = {
    value: name
    for name, value in vars(sqlite3).items()
    if name.startswith("SQLITE_")
    and isinstance(value, int)
    and not name.startswith("SQLITE_LIMIT_")
    and name not in {"SQLITE_OK", "SQLITE_DENY", "SQLITE_IGNORE"}
}


class Policy(Enum):
    """What a statement may do.

    READ: a model's query: SELECT, reading tables, allowlisted functions, recursive CTEs.
    CATALOG: our own introspection: READ plus the read-only catalog pragmas.
    WRITE: a model's DML on a read-write source: READ plus INSERT, UPDATE, DELETE on user tables.
    """

    READ = "read"
    CATALOG = "catalog"
    WRITE = "write"


class Authorizer:
    """A `set_authorizer` callback enforcing one `Policy`; remembers what it refused for the error message."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._denials: list[str] = []

    @property
    def denied(self) -> str | None:
        """What was refused first, in words (None while nothing was)."""
        return self._denials[0] if self._denials else None

    def __call__(self, action: int, arg1: str | None, arg2: str | None, db: str | None, source: str | None) -> int:
        reason = self._check(action, arg1, arg2, db)
        if reason is None:
            return sqlite3.SQLITE_OK
        self._denials.append(reason)
        return sqlite3.SQLITE_DENY

    def _check(self, action: int, arg1: str | None, arg2: str | None, db: str | None) -> str | None:
        if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE):
            return None
        if action == sqlite3.SQLITE_FUNCTION:
            name = (arg2 or "").lower()
            return None if name in ALLOWED_FUNCTIONS else f"function {arg2}()"
        if action == sqlite3.SQLITE_UPDATE and arg1 == "sqlite_master" and db == "main":
            # Constructing an eponymous virtual table (json_each, pragma_table_info) authorizes an internal update of
            # sqlite_master. SQL can never write sqlite_master itself without PRAGMA writable_schema, which is denied
            # here, and mode=ro plus query_only stop any write underneath.
            return None
        if action == sqlite3.SQLITE_PRAGMA and self.policy is Policy.CATALOG and arg1 in _CATALOG_PRAGMAS:
            return None
        if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() == "data_version" and arg2 is None:
            # FTS5 reads it internally on every query of its tables; it only reports a change counter.
            return None
        if (
            self.policy is Policy.WRITE
            and action in (sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE)
            and db == "main"
            and not (arg1 or "").lower().startswith("sqlite_")
        ):
            return None
        return _describe(action, arg1, arg2)


def _describe(action: int, arg1: str | None, arg2: str | None) -> str:
    name = _NAMES.get(action, f"action {action}").removeprefix("SQLITE_").replace("_", " ")
    if action == sqlite3.SQLITE_PRAGMA:
        return f"PRAGMA {arg1}" + (f"({arg2})" if arg2 is not None else "")
    if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
        return f"{name} (attaching database files, including VACUUM INTO)"
    if arg1 in ("sqlite_master", "sqlite_temp_master") and action in (
        sqlite3.SQLITE_INSERT,
        sqlite3.SQLITE_UPDATE,
        sqlite3.SQLITE_DELETE,
    ):
        return "a schema change (CREATE, DROP or ALTER)"  # SQLite checks the catalog write before the statement
    if action == sqlite3.SQLITE_TRANSACTION:
        return f"transaction control ({arg1})"
    target = " ".join(a for a in (arg1, arg2) if a)
    return f"{name} {target}".strip()
