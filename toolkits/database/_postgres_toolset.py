"""`postgres_toolset`: the database tools over one PostgreSQL database (needs the `postgres` extra)."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import closing

from bridge import Toolset

from ._limits import QueryLimits
from ._postgres import PostgresSource  # raises ImportError naming `pip install 'tool-bridge[postgres]'`
from ._tools import build_toolset

__all__ = ["postgres_toolset"]


def postgres_toolset(
    dsn: str,
    *,
    read_only: bool = True,
    limits: QueryLimits | None = None,
    prefix: str | None = "db",
    name: str | None = None,
    allow_privileged_role: bool = False,
    allow_functions: Iterable[str] = (),
    pool_size: int = 4,
    connect_timeout: float = 10.0,
) -> Toolset:
    """Serve a PostgreSQL database to the model: describe, search, describe a table, query, explain.

    Read-only by default, enforced by independent layers (see `toolkits.database`). The role is checked here,
    at construction: a superuser, a member of the server-file roles, or a role that can write or create anything is
    refused for a read-only source, with the GRANTs that would fix it. The pool opens on first use and closes with
    the toolset (`async with toolset:`).

    Args:
        dsn: A libpq connection string or URI.
        read_only: False adds the `execute` tool (two-phase writes) and `analyze` to `explain`.
        limits: Row, size and time caps; `QueryLimits()` by default.
        prefix: Prepended to each tool name (`db` gives `db_query`); None or "" for bare names.
        name: The toolset's label; defaults to the database name.
        allow_privileged_role: Serve an over-privileged role anyway, with a loud warning instead of an error. This
            gives away the role layer: a superuser reads every table (password hashes included) and ignores grants
            and row-level security, and anything the SQL check misses runs with the role's full rights.
        allow_functions: Functions to add to the allowlist: "name" for a built-in (`"pg_sleep"`), "schema.name" for
            one of yours. Each runs with the role's rights.
        pool_size: Most connections held open at once.
        connect_timeout: Seconds to wait for a new connection.

    Raises:
        ConfigError: The server is unreachable, or the role is over-privileged (see `allow_privileged_role`).
    """
    source = PostgresSource(
        dsn,
        read_only=read_only,
        limits=limits or QueryLimits(),
        allow_privileged_role=allow_privileged_role,
        allow_functions=allow_functions,
        pool_size=pool_size,
        connect_timeout=connect_timeout,
    )
    return build_toolset(
        source, name=name or f"postgres:{source.database}", prefix=prefix, lifespan=lambda: closing(source)
    )
