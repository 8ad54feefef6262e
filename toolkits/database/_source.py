"""What every database engine provides to the tools: the `Source` protocol and the small types it speaks.

The tools (`_tools.py`) are written once against this protocol; `SqliteSource` and `PostgresSource` implement it with
their own enforcement layers. A source's methods are blocking: the tools run them in worker threads, and each method
enforces its own deadline inside the engine, so an abandoned thread still ends on time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from bridge import ToolError

from ._format import Rows
from ._limits import QueryLimits

__all__ = [
    "Cancelled",
    "Detail",
    "ObjectType",
    "Param",
    "Source",
    "WriteOutcome",
    "check_params",
    "check_text",
    "never_cancelled",
]

ObjectType = Literal["schema", "table", "view", "column", "index"]
Detail = Literal["names", "summary", "full"]
Param = str | int | float | bool | None
Cancelled = Callable[[], bool]
"""Polled by the engine while a statement runs; True stops it (the bridge sets it on interrupt or timeout)."""


_INT64 = 2**63


def check_text(text: str, what: str) -> None:
    """Refuse text no database can receive: lone surrogates (half of a UTF-16 pair) have no UTF-8 encoding.

    Raises:
        ToolError: `text` contains a lone surrogate; the message names where.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ToolError(
            f"invalid_input: {what} contains a lone surrogate (U+{ord(text[exc.start]):04X}) at character "
            f"{exc.start}; send valid Unicode"
        ) from None


def check_params(params: Sequence[Param]) -> None:
    """Refuse parameter values the engines cannot bind: integers past 64 bits, text that is not valid Unicode.

    Raises:
        ToolError: names the parameter and what to send instead.
    """
    for position, value in enumerate(params, 1):
        if isinstance(value, int) and not isinstance(value, bool) and not -_INT64 <= value < _INT64:
            raise ToolError(
                f"invalid_input: params[{position - 1}] (${position}) is an integer beyond 64 bits; pass it as a "
                "string and cast it in SQL"
            )
        if isinstance(value, str):
            check_text(value, f"params[{position - 1}]")


def never_cancelled() -> bool:
    """The `Cancelled` probe used when nobody can cancel the call."""
    return False


@dataclass(frozen=True)
class WriteOutcome:
    """What a write did (or would do): the rows it affected and a sample of what it returned."""

    rowcount: int
    returning: Rows | None


class Source(Protocol):
    """One database the tools talk to. Every method is blocking and enforces `limits` inside the engine."""

    engine: str
    read_only: bool
    limits: QueryLimits
    placeholder_help: str
    preview_effects: str
    """What a rolled-back write preview leaves changed, in words for the model (SQLite: nothing)."""

    def describe(self) -> dict[str, Any]:
        """Engine, version, mode, caps and warnings, so the model can plan without guessing."""
        ...

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
        """Catalog entries matching a case-insensitive LIKE pattern, at the requested level of detail."""
        ...

    def describe_table(self, table: str, schema: str | None, cancelled: Cancelled) -> dict[str, Any]:
        """Columns, keys, indexes, a row estimate and the comment or DDL of one table or view."""
        ...

    def sample_rows(self, table: str, schema: str | None, count: int, cancelled: Cancelled) -> Rows:
        """The first `count` rows of a table, fetched through the same read-only path as a query."""
        ...

    def query(self, sql: str, params: Sequence[Param], cap: int, timeout: float, cancelled: Cancelled) -> Rows:
        """Run one read-only statement and fetch at most `cap` rows, noting whether more exist."""
        ...

    def explain(self, sql: str, params: Sequence[Param], analyze: bool, timeout: float, cancelled: Cancelled) -> Any:
        """The engine's plan for one statement."""
        ...

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
        """Run one data-changing statement in a transaction; `check(rowcount)` may veto; commit or roll back."""
        ...

    def close(self) -> None:
        """Release connections (pools); safe to call twice."""
        ...
