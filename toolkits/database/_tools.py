"""The database tools, written once over the `Source` protocol and built into a `Toolset` per source.

Tools are closures over their source so the schema the model sees carries this source's real caps (a `max_rows`
ceiling of 1000 is in the schema, not only in an error), and their docstrings name this engine's placeholder style.
The hints are truthful: everything but `execute` is `read_only` and `idempotent`; `execute` is `destructive` and not
idempotent, so the runtime never re-runs it after a crash. `execute` exists only on read-write sources.

This module deliberately has no `from __future__ import annotations`: the annotations below use local values (the
caps) and must be evaluated where the functions are defined.
"""

import json
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import Field

from bridge import Tool, ToolContext, ToolError, Toolset

from ._format import Format, Rows, render_document, render_rows
from ._preview import PreviewBook
from ._source import Detail, ObjectType, Param, Source

__all__ = ["build_toolset"]

_SAMPLE_LIMIT = 20


def _read_only(fn: Callable[..., Any], name: str, timeout: float) -> Tool:
    return Tool.from_function(fn, name=name, read_only=True, idempotent=True, timeout=timeout)


def _probe(ctx: ToolContext) -> Callable[[], bool]:
    return lambda: ctx.cancelled


def _sample(rows: Rows) -> dict[str, Any]:
    return {"columns": rows.columns, "rows": [list(r) for r in rows.rows], "more": rows.more}


def build_toolset(source: Source, *, name: str, prefix: str | None, lifespan: Callable[[], Any] | None) -> Toolset:
    """The tools for one source, named `<prefix>_<tool>` (bare names when `prefix` is empty).

    Args:
        source: The engine the tools talk to.
        name: The toolset's label for logs and `bridge tools`.
        prefix: Prepended to every tool name; "db" gives `db_query`.
        lifespan: Opened and closed with the toolset (the PostgreSQL pool).
    """
    limits = source.limits
    deadline = limits.max_timeout + 5.0  # the engine's deadline fires first, with the clearer message
    Timeout = Annotated[int | None, Field(ge=1, le=int(limits.max_timeout * 1000))]
    MaxRows = Annotated[int | None, Field(ge=1, le=limits.max_rows_limit)]
    Params = list[Param] | None
    placeholders = source.placeholder_help

    def describe_source() -> str:
        """Describe this database: engine, version, mode, caps on rows, output and time, and parameter style.

        Call it first to plan queries.
        """
        reported = source.describe()  # what the server reports (version, names) is database text: fenced below
        header = {
            "engine": source.engine,
            "mode": "read-only" if source.read_only else "read-write",
            "placeholders": placeholders,
            "caps": {
                "max_rows_default": limits.max_rows,
                "max_rows_limit": limits.max_rows_limit,
                "max_cell_chars": limits.max_cell_chars,
                "max_output_bytes": limits.max_output_bytes,
                "timeout_ms_default": int(limits.timeout * 1000),
                "timeout_ms_limit": int(limits.max_timeout * 1000),
            },
            "tools": tools.names(),
        }
        return render_document(reported, limits=limits, header=header)

    def search_objects(
        ctx: ToolContext,
        object_type: ObjectType = "table",
        pattern: str = "%",
        schema: str | None = None,
        table: str | None = None,
        detail: Detail = "names",
        limit: Annotated[int, Field(ge=1, le=1000)] = 100,
    ) -> str:
        """Find schemas, tables, views, columns or indexes by name.

        Start with detail="names", then ask for "summary" (column names, row estimates) or "full" (types, keys,
        indexes) on what looks relevant.

        Args:
            object_type: What to list.
            pattern: SQL LIKE pattern on the object's name, case-insensitive: "%order%" finds names containing order.
            schema: Only this schema (default: every non-system schema).
            table: Only columns or indexes of this table.
            detail: names, summary or full.
            limit: The most entries to return.
        """
        found = source.search_objects(object_type, pattern, schema, table, detail, limit, _probe(ctx))
        header = {"object_type": object_type, "count": len(found), "limit_reached": len(found) == limit}
        return render_document(found, limits=limits, header=header)

    def describe_table(
        ctx: ToolContext,
        table: str,
        schema: str | None = None,
        sample_rows: Annotated[int, Field(ge=0, le=_SAMPLE_LIMIT)] = 0,
    ) -> str:
        """Describe one table or view: columns, keys, indexes, row count, comment or definition.

        Columns come with their types, nullability and defaults; keys include primary and foreign keys.

        Args:
            table: The table or view name.
            schema: Its schema, when the name exists in several.
            sample_rows: Also return this many rows (0 by default: rows are data, not schema).
        """
        described = source.describe_table(table, schema, _probe(ctx))
        if sample_rows:
            described["sample_rows"] = _sample(source.sample_rows(table, schema, sample_rows, _probe(ctx)))
        return render_document(described, limits=limits, header={"object": described.get("type", "table")})

    def query(
        ctx: ToolContext,
        sql: str,
        params: Params = None,
        max_rows: MaxRows = None,
        timeout_ms: Timeout = None,
        format: Format = "json",
    ) -> str:
        """Run one read-only SQL query (SELECT, WITH, VALUES) and return its rows.

        The result's first line says how many rows came back and whether more exist (truncated); long cells are
        cut with a visible marker.

        Args:
            sql: Exactly one SELECT statement. Never paste values into it: bind them with params.
            params: Values for the placeholders, in order.
            max_rows: The most rows to return.
            timeout_ms: Stop the query after this many milliseconds.
            format: json (columns plus row arrays), csv, or markdown.
        """
        cap = limits.rows(max_rows)
        result = source.query(sql, params or [], cap, limits.deadline(timeout_ms), _probe(ctx))
        return render_rows(result, fmt=format, limits=limits, cap=cap)

    def explain(ctx: ToolContext, sql: str, params: Params = None, timeout_ms: Timeout = None) -> str:
        """Show the plan the database would use for one query.

        The query is planned, not run; planning may evaluate constant expressions, under the same checks and
        deadline as a query.

        Args:
            sql: The statement to explain, without EXPLAIN.
            params: Values for the placeholders, in order.
            timeout_ms: Stop after this many milliseconds.
        """
        plan = source.explain(sql, params or [], False, limits.deadline(timeout_ms), _probe(ctx))
        return render_document(plan, limits=limits, header={"analyze": False})

    def explain_analyze(
        ctx: ToolContext, sql: str, params: Params = None, analyze: bool = False, timeout_ms: Timeout = None
    ) -> str:
        """Show the plan the database would use for one statement.

        With analyze=true a SELECT is also run, inside a read-only transaction that is rolled back, to report
        actual row counts and timings.

        Args:
            sql: The statement to explain, without EXPLAIN.
            params: Values for the placeholders, in order.
            analyze: Run the SELECT and report actual rows and times.
            timeout_ms: Stop after this many milliseconds.
        """
        plan = source.explain(sql, params or [], analyze, limits.deadline(timeout_ms), _probe(ctx))
        return render_document(plan, limits=limits, header={"analyze": analyze})

    previews = PreviewBook(limits.preview_ttl)

    def execute(
        ctx: ToolContext,
        sql: str,
        params: Params = None,
        mode: Literal["preview", "commit"] = "preview",
        preview_id: str | None = None,
        max_rows_affected: Annotated[int | None, Field(ge=0, le=limits.max_rows_affected)] = None,
        timeout_ms: Timeout = None,
    ) -> str:
        """Change data with one INSERT, UPDATE, DELETE or MERGE, in two steps: preview, then commit.

        First mode="preview": the statement runs and is rolled back, and you get the number of affected rows and a
        preview_id. Then, to apply it, call again with mode="commit", the same sql and params, and that
        preview_id. A commit is refused if the statement now affects a different number of rows.

        Args:
            sql: Exactly one INSERT, UPDATE, DELETE or MERGE. Never paste values into it: bind them with params.
            params: Values for the placeholders, in order.
            mode: preview (run and roll back) or commit (apply a previewed statement).
            preview_id: The id a preview returned; required to commit.
            max_rows_affected: Refuse the change if it would affect more rows than this.
            timeout_ms: Stop the statement after this many milliseconds.
        """
        values = params or []
        bound = limits.max_rows_affected if max_rows_affected is None else max_rows_affected
        timeout = limits.deadline(timeout_ms)
        sample = min(limits.max_rows, _SAMPLE_LIMIT)

        def within_bound(count: int) -> None:
            if count > bound:
                raise ToolError(
                    f"denied_by_policy: the statement affects {count} rows, more than max_rows_affected={bound}; "
                    "nothing was changed. Narrow the WHERE clause."
                )

        if mode == "preview":
            if preview_id is not None:
                raise ToolError("invalid_input: preview_id is for mode='commit'; a preview issues a new one")
            outcome = source.write(
                sql, values, commit=False, check=within_bound, sample=sample, timeout=timeout, cancelled=_probe(ctx)
            )
            issued = previews.issue(sql, values, outcome.rowcount)
            header: dict[str, Any] = {
                "mode": "preview",
                "committed": False,
                "rows_affected": outcome.rowcount,
                "preview_id": issued.id,
                "expires_in_s": int(limits.preview_ttl),
                "changed": source.preview_effects,
                "next": "to apply exactly this change, call this tool again with mode='commit', the same sql and "
                "params, and this preview_id",
            }
        else:
            if preview_id is None:
                raise ToolError("invalid_input: mode='commit' needs the preview_id of a preview of this statement")
            preview = previews.take(preview_id, sql, values)

            def unchanged(count: int) -> None:
                within_bound(count)
                if count != preview.rowcount:
                    raise ToolError(
                        f"denied_by_policy: the statement now affects {count} rows but the preview affected "
                        f"{preview.rowcount}; nothing was committed. Preview again."
                    )

            outcome = source.write(
                sql, values, commit=True, check=unchanged, sample=sample, timeout=timeout, cancelled=_probe(ctx)
            )
            header = {"mode": "commit", "committed": True, "rows_affected": outcome.rowcount}
        if outcome.returning is None:
            return json.dumps(header)
        return render_document(_sample(outcome.returning), limits=limits, header=header)

    for fn in (query, explain, explain_analyze, execute):
        _add_note(fn, placeholders)
    functions: list[Tool] = [
        _read_only(describe_source, "describe_source", deadline),
        _read_only(search_objects, "search_objects", deadline),
        _read_only(describe_table, "describe_table", deadline),
        _read_only(query, "query", deadline),
        _read_only(explain if source.read_only or source.engine == "sqlite" else explain_analyze, "explain", deadline),
    ]
    if not source.read_only:
        functions.append(
            Tool.from_function(execute, name="execute", destructive=True, idempotent=False, timeout=deadline)
        )
    tools = Toolset(functions, name=name, prefix=prefix or None, lifespan=lifespan)
    return tools


def _add_note(fn: Callable[..., Any], note: str) -> None:
    """Put an engine-specific sentence at the end of the description, before the Args section."""
    doc = fn.__doc__ or ""
    head, sep, args = doc.partition("\n\n        Args:")
    fn.__doc__ = f"{head} {note}{sep}{args}"
