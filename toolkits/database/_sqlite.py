"""SQLite through the standard library, with six independent enforcement layers, each call in a worker process.

The layers live in `_sqlite_engine.py` (standard library only, so the worker starts fast); each one alone stops a
known bypass:

1. `connect`: the file is opened through a `mode=ro` URI, so the engine refuses to write the main database.
2. `set_query_only`: `PRAGMA query_only=ON` refuses every write, including to files attached later (S1) and
   `VACUUM INTO` (which `mode=ro` allows).
3. `limit_connection`: `setlimit(SQLITE_LIMIT_ATTACHED, 0)` removes ATTACH and VACUUM INTO outright (S3); length
   limits bound the SQL text and any value built at run time; `hard_heap_limit` bounds memory, and temp storage
   (sorts, temp b-trees) is kept in that bounded heap instead of temp files.
4. `forbid_extensions`: extension loading stays disabled.
5. `Authorizer` (`_sqlite_policy.py`): an allowlist checked by SQLite's own parser at prepare time (S5): SELECT,
   reads, allowlisted functions; PRAGMA, ATTACH, transaction control and writes are refused.
6. `Deadline`: a progress handler stops a statement past its deadline (S6); and because work inside one function
   call or during prepare never reaches it, the worker process running the call is killed at the deadline plus
   `GRACE` or as soon as the call is cancelled (`_sqlite_pool.py`).

On top of those, `Connection.execute` compiles exactly one statement (S4), every connection lives for one call and is
always rolled back, values are bound, never formatted into SQL, and rows are clipped in the worker, so the tool
process never holds more than the answer.
"""

from __future__ import annotations

import base64
import os
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bridge import ConfigError, ToolError

from ._format import Clipped, Rows, fenced
from ._limits import QueryLimits
from ._source import Cancelled, Detail, ObjectType, Param, WriteOutcome, check_params
from ._sqlite_engine import Caps, Deadline, connect, forbid_extensions, limit_connection, set_query_only
from ._sqlite_policy import Policy
from ._sqlite_pool import Overrun, WorkerDied, pool

__all__ = [
    "Deadline",
    "SqliteSource",
    "connect",
    "forbid_extensions",
    "limit_connection",
    "set_query_only",
]

_URI_OPTIONS = frozenset({"immutable", "nolock"})
_MIB = 1024 * 1024


def _tool_error(error: dict[str, Any], timeout: float, limits: QueryLimits) -> ToolError:
    """The message for an engine failure, with anything SQLite or the database said inside a boundary."""
    kind, detail = error.get("kind", "upstream"), str(error.get("detail", ""))
    if kind == "timeout":
        return ToolError(
            f"timeout: the statement ran past its {timeout:g} s deadline and was stopped. Make it cheaper "
            f"(filter, aggregate, use an index) or pass a longer timeout_ms (up to {int(limits.max_timeout * 1000)})."
        )
    if kind == "cancelled":
        return ToolError("cancelled: the call was cancelled and the statement stopped")
    if kind == "memory":
        return ToolError(
            f"denied_by_policy: the statement needed more than {limits.max_memory_bytes // _MIB} MiB of memory "
            "(sorting, grouping or building large values) and was stopped; make it cheaper"
        )
    if kind == "denied":
        allowed = (
            "one INSERT, UPDATE or DELETE on this database's tables"
            if error.get("policy") == Policy.WRITE.value
            else "one SELECT (WITH and recursive CTEs included) over this database's tables"
        )
        return ToolError(fenced(f"denied_by_policy: this tool runs {allowed}; SQLite's authorizer refused:", detail))
    fixed = {
        "multiple": "invalid_input: send exactly one SQL statement; this one contains more than one",
        "vacuum": "denied_by_policy: VACUUM is not allowed here; this tool runs one SELECT",
        "attach": "denied_by_policy: ATTACH (and VACUUM INTO) are disabled on this source",
        "readonly": "denied_by_policy: this source is read-only; the engine refused a write",
        "locked": "upstream_error: the database is locked by another writer; try again shortly",
        "no_rows": "invalid_input: the statement returns no rows; this tool runs one SELECT",
        "overflow": "invalid_input: a value is outside SQLite's 64-bit integer range; pass it as a string",
        "too_big": f"invalid_input: a value grew past {limits.max_value_bytes} bytes (string or blob too big)",
    }
    if kind in fixed:
        return ToolError(fixed[kind])
    if kind == "not_found":
        close = [str(n) for n in error.get("close", [])]
        if close:
            return ToolError(
                fenced(
                    f"invalid_input: no table or view named {detail!r}; did you mean one of these?", ", ".join(close)
                )
            )
        return ToolError(f"invalid_input: no table or view named {detail!r}; search_objects lists the tables")
    if kind == "invalid":
        return ToolError(fenced("invalid_input: SQLite refused the statement; its message:", detail))
    return ToolError(fenced("upstream_error: SQLite failed:", detail))


def _rows(data: dict[str, Any], limits: QueryLimits) -> Rows:
    """Rows as the worker sent them, clipped cells turned back into `Clipped` values."""

    def cell(value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        if "$t" in value:
            return Clipped(value["$t"], int(value["n"]), "chars")
        head = base64.b64decode(value["$b"])
        return head if int(value["n"]) <= len(head) else Clipped(head, int(value["n"]))

    return Rows(
        list(data["columns"]),
        [[cell(v) for v in row] for row in data["rows"]],
        bool(data["more"]),
        float(data.get("elapsed_ms", 0.0)),
        bytes_capped=bool(data.get("bytes_capped", False)),
    )


# --- the source -------------------------------------------------------------------------------------------------------


def _file_uri(path_or_uri: str | os.PathLike[str], *, read_only: bool) -> tuple[Path, str]:
    """Validate the target and build the URI we open, forcing `mode=ro` (or `rw`, never `rwc`)."""
    text = os.fspath(path_or_uri)
    options: dict[str, str] = {}
    if text.startswith("file:"):
        parts = urllib.parse.urlsplit(text)
        path = Path(urllib.parse.unquote(parts.path))
        options = dict(urllib.parse.parse_qsl(parts.query))
        unknown = sorted(set(options) - _URI_OPTIONS - {"mode"})
        if unknown:
            raise ConfigError(f"unsupported SQLite URI options {unknown}; allowed: {sorted(_URI_OPTIONS)}")
        mode = options.pop("mode", None)
        if mode is not None and mode != ("ro" if read_only else "rw"):
            raise ConfigError(f"the URI asks for mode={mode}; pass read_only=... to sqlite_toolset instead")
    else:
        path = Path(text)
    if text in (":memory:", "") or not path.is_file():
        raise ConfigError(f"no SQLite database file at {text!r}; sqlite_toolset serves an existing file")
    query = urllib.parse.urlencode({"mode": "ro" if read_only else "rw", **options})
    return path.resolve(), f"{path.resolve().as_uri()}?{query}"


class SqliteSource:
    """A SQLite file served to the model; every call runs in a pooled worker process that is killed if it overruns."""

    engine = "sqlite"
    placeholder_help = "Bind values with ? placeholders (or ?1, ?2) and pass them in params, in order."
    preview_effects = "nothing: the preview was rolled back (AUTOINCREMENT counters included)"

    def __init__(self, path_or_uri: str | os.PathLike[str], *, read_only: bool, limits: QueryLimits) -> None:
        self.read_only = read_only
        self.limits = limits
        self.path, self._uri = _file_uri(path_or_uri, read_only=True)
        self._write_uri = None if read_only else _file_uri(path_or_uri, read_only=False)[1]
        self._caps = asdict(
            Caps(
                max_sql_chars=limits.max_sql_chars,
                max_cell_chars=limits.max_cell_chars,
                max_blob_bytes=limits.max_blob_bytes,
                max_output_bytes=limits.max_output_bytes,
                lock_timeout=limits.lock_timeout,
                max_memory_bytes=limits.max_memory_bytes,
                max_value_bytes=limits.max_value_bytes,
            )
        )
        try:
            found = self._run({"op": "probe", "policy": Policy.CATALOG.value}, limits.timeout, None)
        except ToolError as exc:
            raise ConfigError(f"cannot open {self.path} as a SQLite database: {exc}") from exc
        self.version = str(found["version"])

    def _run(
        self,
        request: dict[str, Any],
        timeout: float,
        cancelled: Cancelled | None,
        *,
        write: bool = False,
        decide: Callable[[dict[str, Any]], bool] | None = None,
    ) -> Any:
        """Run one request in a worker; translate its failure, an overrun or a dead worker into a `ToolError`."""
        uri = self._write_uri if write else self._uri
        if uri is None:
            raise ToolError("denied_by_policy: this source is read-only")
        message = {**request, "uri": uri, "timeout": timeout, "caps": self._caps}
        try:
            answer = pool.call(message, timeout=timeout, cancelled=cancelled, decide=decide)
        except Overrun as exc:
            if exc.cancelled:
                raise ToolError("cancelled: the call was cancelled and the statement stopped") from None
            raise ToolError(
                f"timeout: the statement ran past its {timeout:g} s deadline and was stopped (its worker process was "
                f"killed). Make it cheaper or pass a longer timeout_ms (up to {int(self.limits.max_timeout * 1000)})."
            ) from None
        except WorkerDied:
            raise ToolError(
                f"denied_by_policy: the statement exceeded the memory ceiling ({self.limits.max_memory_bytes // _MIB} "
                "MiB plus overhead) and its worker process ended; make it cheaper"
            ) from None
        if "error" in answer:
            raise _tool_error(answer["error"], timeout, self.limits)
        return answer["result"]

    def describe(self) -> dict[str, Any]:
        return {
            "engine": "sqlite",
            "version": self.version,
            "database": self.path.name,
            "mode": "read-only" if self.read_only else "read-write",
            "placeholders": self.placeholder_help,
        }

    def search_objects(
        self,
        object_type: ObjectType,
        pattern: str,
        schema: str | None,
        table: str | None,
        detail: Detail,
        limit: int,
        cancelled: Cancelled,
    ) -> list[dict[str, Any]]:
        _main_only(schema)
        check_params([pattern, table])
        request = {
            "op": "search",
            "policy": Policy.CATALOG.value,
            "object_type": object_type,
            "pattern": pattern,
            "table": table,
            "detail": detail,
            "limit": limit,
        }
        found: list[dict[str, Any]] = self._run(request, self.limits.timeout, cancelled)["found"]
        return found

    def describe_table(self, table: str, schema: str | None, cancelled: Cancelled) -> dict[str, Any]:
        _main_only(schema)
        check_params([table])
        described: dict[str, Any] = self._run(
            {"op": "describe", "policy": Policy.CATALOG.value, "table": table}, self.limits.timeout, cancelled
        )
        return described

    def sample_rows(self, table: str, schema: str | None, count: int, cancelled: Cancelled) -> Rows:
        _main_only(schema)
        check_params([table])
        request = {"op": "sample", "policy": Policy.READ.value, "table": table, "cap": count}
        return _rows(self._run(request, self.limits.timeout, cancelled), self.limits)

    def query(self, sql: str, params: Sequence[Param], cap: int, timeout: float, cancelled: Cancelled) -> Rows:
        self.limits.check_sql(sql)
        check_params(params)
        request = {"op": "query", "policy": Policy.READ.value, "sql": sql, "params": list(params), "cap": cap}
        return _rows(self._run(request, timeout, cancelled), self.limits)

    def explain(self, sql: str, params: Sequence[Param], analyze: bool, timeout: float, cancelled: Cancelled) -> Any:
        self.limits.check_sql(sql)
        check_params(params)
        if analyze:
            raise ToolError("invalid_input: SQLite has no EXPLAIN ANALYZE; call explain without analyze")
        # EXPLAIN QUERY PLAN compiles but never runs the statement, so DML may be explained on read-write sources.
        policy = Policy.READ if self.read_only else Policy.WRITE
        return self._run(
            {"op": "explain", "policy": policy.value, "sql": sql, "params": list(params)}, timeout, cancelled
        )

    def write(
        self,
        sql: str,
        params: Sequence[Param],
        *,
        commit: bool,
        check: Callable[[int], None],
        sample: int,
        timeout: float,
        cancelled: Cancelled,
    ) -> WriteOutcome:
        self.limits.check_sql(sql)
        check_params(params)
        if self.read_only:
            raise ToolError("denied_by_policy: this source is read-only")

        def decide(outcome: dict[str, Any]) -> bool:
            check(int(outcome["rowcount"]))
            return commit

        request = {"op": "write", "sql": sql, "params": list(params), "sample": sample}
        outcome = self._run(request, timeout, cancelled, write=True, decide=decide)
        returning = None if outcome["returning"] is None else _rows(outcome["returning"], self.limits)
        return WriteOutcome(rowcount=int(outcome["rowcount"]), returning=returning)

    def close(self) -> None:
        """Nothing to release: connections live for one call, and idle workers are shared (retired at exit)."""


def _main_only(schema: str | None) -> None:
    if schema not in (None, "main"):
        raise ToolError(f"invalid_input: a SQLite source has one schema, 'main' (got {schema!r})")
