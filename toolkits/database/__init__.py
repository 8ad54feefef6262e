"""Database tools for Claude Managed Agents: SQLite and PostgreSQL, read-only by default, with hard limits.

```python
from toolkits.database import sqlite_toolset, postgres_toolset

shop = sqlite_toolset("shop.db")                              # db_describe_source, db_search_objects,
crm = postgres_toolset(DSN, prefix="crm")                     # db_describe_table, db_query, db_explain
```

Each toolset's tools: `describe_source`, `search_objects`, `describe_table`, `query`, `explain`, and on read-write
sources `execute` (two-phase: preview rolls back and returns a preview id; commit needs that id).

Read-only is enforced in independent layers, each tested on its own against the attack corpus:

```
                SQLite (_sqlite.py, _sqlite_engine.py)   PostgreSQL (_postgres.py)
credential      mode=ro URI                              role check at startup: refuse superuser, server-file
                                                         roles, replication, ownership, write or CREATE privileges
channel         Connection.execute: one statement        extended protocol only (server cursor / prepared)
parse           authorizer allowlist (SQLite's parser)   pglast: one SELECT, known node kinds, and every function,
                                                         operator, type and field name resolved against the catalog
                                                         and checked with an allowlist (_pg_allowlist.py)
engine          query_only, ATTACHED=0, no extensions,   BEGIN READ ONLY, SET LOCAL statement_timeout and
                hard_heap_limit, temp_store=MEMORY       lock_timeout, always ROLLBACK
deadline        worker process killed at deadline+0.1 s  statement_timeout, then pg_terminate_backend and a dropped
                (_sqlite_pool.py)                        connection (_pg_cancel.py)
output          rows clipped where they are fetched (the SQLite worker; on the PostgreSQL server), output bytes
                capped, exact values, everything from the database inside the untrusted-data boundary
```

A cancelled call (an interrupt, a runtime deadline) stops its statement at once: the SQLite worker is killed, and
PostgreSQL gets a cancel request from a watcher thread, so neither runs on to its deadline.

`postgres_toolset` needs the `postgres` extra (`pip install 'tool-bridge[postgres]'`); importing it without the extra
raises an ImportError that says so, while `sqlite_toolset` needs nothing beyond the standard library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._limits import QueryLimits
from ._sample import make_sample_db
from ._sqlite_toolset import sqlite_toolset

if TYPE_CHECKING:
    from ._postgres_toolset import postgres_toolset

__all__ = ["QueryLimits", "make_sample_db", "postgres_toolset", "sqlite_toolset"]


def __getattr__(name: str) -> Any:
    """Import the PostgreSQL toolset on first use, so SQLite users need no PostgreSQL packages."""
    if name == "postgres_toolset":
        from ._postgres_toolset import postgres_toolset

        return postgres_toolset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
