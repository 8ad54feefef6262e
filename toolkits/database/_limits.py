"""The caps every database source applies, in one frozen object.

The model may ask for fewer rows or a shorter deadline than the defaults, and for more up to the ceilings, never past
them: `QueryLimits` is the operator's word, the tool arguments only choose inside it.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge import ConfigError, ToolError

__all__ = ["QueryLimits"]


@dataclass(frozen=True)
class QueryLimits:
    """Caps for rows, sizes and time, applied to every statement a database toolset runs.

    Attributes:
        max_rows: Rows returned when the model does not ask for a number.
        max_rows_limit: The most rows the model may ask for in one result.
        max_cell_chars: Longer text cells are cut, with a visible `…[+N chars]` marker.
        max_blob_bytes: Binary cells show at most this many bytes, base64-encoded.
        max_output_bytes: Rows past this many bytes of rendered output are dropped and the result marked truncated.
        timeout: Default statement deadline in seconds, enforced by the engine (PostgreSQL `statement_timeout`,
            a SQLite progress handler), not by a client-side timer.
        max_timeout: The longest deadline the model may ask for.
        lock_timeout: How long a statement may wait for a lock before it fails.
        max_sql_chars: Longer SQL text is refused before it reaches the engine.
        max_rows_affected: The default bound on rows a write (execute tool) may change.
        preview_ttl: Seconds a write preview stays committable.
        max_memory_bytes: SQLite: the heap ceiling of the worker running a call (`PRAGMA hard_heap_limit`; sorts
            and temp tables live in it). PostgreSQL memory and temp files are the role's settings (`work_mem`,
            `temp_file_limit`), which only an administrator can set.
        max_value_bytes: SQLite: the largest string or blob a statement may build (`SQLITE_LIMIT_LENGTH`).
    """

    max_rows: int = 100
    max_rows_limit: int = 1000
    max_cell_chars: int = 500
    max_blob_bytes: int = 96
    max_output_bytes: int = 64_000
    timeout: float = 10.0
    max_timeout: float = 60.0
    lock_timeout: float = 2.0
    max_sql_chars: int = 100_000
    max_rows_affected: int = 1000
    preview_ttl: float = 600.0
    max_memory_bytes: int = 256 * 1024 * 1024
    max_value_bytes: int = 16 * 1024 * 1024

    def __post_init__(self) -> None:
        problems = [
            f"QueryLimits.{name} must be > 0, got {getattr(self, name)!r}"
            for name in (
                "max_rows",
                "max_rows_limit",
                "max_cell_chars",
                "max_blob_bytes",
                "max_output_bytes",
                "timeout",
                "max_timeout",
                "lock_timeout",
                "max_sql_chars",
                "max_rows_affected",
                "preview_ttl",
                "max_memory_bytes",
                "max_value_bytes",
            )
            if not getattr(self, name) > 0
        ]
        if self.max_rows > self.max_rows_limit:
            problems.append(f"QueryLimits.max_rows ({self.max_rows}) exceeds max_rows_limit ({self.max_rows_limit})")
        if self.timeout > self.max_timeout:
            problems.append(f"QueryLimits.timeout ({self.timeout}) exceeds max_timeout ({self.max_timeout})")
        if problems:
            raise ConfigError(problems)

    def rows(self, requested: int | None) -> int:
        """The row cap for one call: the model's request, checked against the ceiling.

        Raises:
            ToolError: `requested` is outside 1..max_rows_limit (the model can correct it).
        """
        if requested is None:
            return self.max_rows
        if not 1 <= requested <= self.max_rows_limit:
            raise ToolError(f"invalid_input: max_rows must be between 1 and {self.max_rows_limit}, got {requested}")
        return requested

    def deadline(self, timeout_ms: int | None) -> float:
        """The statement deadline in seconds for one call: the model's request, checked against the ceiling.

        Raises:
            ToolError: `timeout_ms` is outside 1..max_timeout.
        """
        if timeout_ms is None:
            return self.timeout
        ceiling_ms = int(self.max_timeout * 1000)
        if not 1 <= timeout_ms <= ceiling_ms:
            raise ToolError(f"invalid_input: timeout_ms must be between 1 and {ceiling_ms}, got {timeout_ms}")
        return timeout_ms / 1000

    def check_sql(self, sql: str) -> None:
        """Refuse empty or oversized SQL text before any engine sees it.

        Raises:
            ToolError: the text is blank or longer than `max_sql_chars`.
        """
        if not sql.strip():
            raise ToolError("invalid_input: sql is empty")
        if len(sql) > self.max_sql_chars:
            raise ToolError(f"invalid_input: sql is {len(sql)} characters; the limit is {self.max_sql_chars}")
        try:
            sql.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ToolError(
                f"invalid_input: sql contains a lone surrogate (U+{ord(sql[exc.start]):04X}) at character "
                f"{exc.start}; send valid Unicode"
            ) from None
