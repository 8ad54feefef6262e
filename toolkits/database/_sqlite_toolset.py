"""`sqlite_toolset`: the database tools over one SQLite file."""

from __future__ import annotations

import os

from bridge import Toolset

from ._limits import QueryLimits
from ._sqlite import SqliteSource
from ._tools import build_toolset

__all__ = ["sqlite_toolset"]


def sqlite_toolset(
    path_or_uri: str | os.PathLike[str],
    *,
    read_only: bool = True,
    limits: QueryLimits | None = None,
    prefix: str | None = "db",
    name: str | None = None,
) -> Toolset:
    """Serve an existing SQLite file to the model: describe, search, describe a table, query, explain.

    Read-only by default, enforced by six independent layers (see `toolkits.database`). With `read_only=False` an
    `execute` tool is added for two-phase writes (preview, then commit with the preview's id); queries stay read-only.

    Args:
        path_or_uri: A path, or a `file:` URI (only the `immutable` and `nolock` options are accepted; the mode is
            set from `read_only`). The file must exist: a toolset never creates a database.
        read_only: False adds the `execute` tool and opens writes with `mode=rw`.
        limits: Row, size and time caps; `QueryLimits()` by default.
        prefix: Prepended to each tool name (`db` gives `db_query`); None or "" for bare names.
        name: The toolset's label; defaults to the file name.

    Raises:
        ConfigError: The file does not exist, is not a SQLite database, or the URI asks for something unsupported.
    """
    source = SqliteSource(path_or_uri, read_only=read_only, limits=limits or QueryLimits())
    return build_toolset(source, name=name or f"sqlite:{source.path.name}", prefix=prefix, lifespan=None)
