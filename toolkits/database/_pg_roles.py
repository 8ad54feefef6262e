"""The startup check of a PostgreSQL role's privileges: the one hard boundary the other layers rely on.

A READ ONLY transaction does not stop a superuser from reading server files or taking advisory locks (P6), and only
the role decides whether a temp table can be made (P7). So before serving a source, we ask the server what the
connected role can do, and refuse (or, if the operator insists, loudly warn about) anything more than reading.
The message prints the GRANTs that would fix it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg
from psycopg import sql

__all__ = ["RoleReport", "inspect_role"]

_SERVER_FILE_ROLES = ("pg_read_server_files", "pg_write_server_files", "pg_execute_server_program")
_USER_SCHEMAS = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'"
_SHOWN = 5


@dataclass
class RoleReport:
    """What the connected role can do beyond reading.

    Attributes:
        role: The role the DSN connects as.
        database: The database it connects to.
        refusals: Privileges that break read-only mode (superuser, server files, writes, ownership, CREATE).
        warnings: Privileges worth knowing about that the other layers contain (TEMP, BYPASSRLS, ...).
    """

    role: str
    database: str
    refusals: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def fix(self) -> str:
        """The SQL an administrator can run to create a role fit for a read-only source."""
        db = sql.Identifier(self.database).as_string()
        return (
            "Connect as a role that can only read, for example:\n"
            "  CREATE ROLE bridge_reader LOGIN PASSWORD '...';\n"
            f"  GRANT CONNECT ON DATABASE {db} TO bridge_reader;\n"
            "  GRANT USAGE ON SCHEMA public TO bridge_reader;\n"
            "  GRANT SELECT ON ALL TABLES IN SCHEMA public TO bridge_reader;\n"
            f"  REVOKE TEMPORARY ON DATABASE {db} FROM PUBLIC;  -- and GRANT TEMPORARY back to roles that need it\n"
            "or pass allow_privileged_role=True to serve it anyway with a warning (not recommended)."
        )


def _listing(names: list[str], total: int) -> str:
    more = f" and {total - len(names)} more" if total > len(names) else ""
    return ", ".join(names) + more


def inspect_role(conn: psycopg.Connection[tuple[object, ...]], *, read_only: bool) -> RoleReport:
    """Ask the server what the connected role may do; sort each finding into refusals or warnings.

    Args:
        conn: A connection opened with the source's DSN.
        read_only: Whether the source is read-only; write privileges are expected (and fine) otherwise.
    """
    row = conn.execute(
        "SELECT current_user, current_database(), rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolreplication "
        "FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    if row is None:  # pragma: no cover - current_user always has a pg_roles row
        raise psycopg.OperationalError("cannot read the connected role from pg_roles")
    role, database, superuser, bypassrls, createrole, createdb, replication = row
    report = RoleReport(role=str(role), database=str(database))
    if superuser:
        report.refusals.append(f"role {role} is a superuser (it can read server files and bypass every grant)")
    members = [
        str(r[0])
        for r in conn.execute(
            "SELECT r FROM unnest(%s::text[]) AS r WHERE to_regrole(r) IS NOT NULL AND pg_has_role(current_user, r, "
            "'MEMBER')",
            [list(_SERVER_FILE_ROLES)],
        )
    ]
    if members and not superuser:
        report.refusals.append(f"role {role} is a member of {', '.join(members)} (server file access)")
    if replication:
        report.refusals.append(f"role {role} has REPLICATION")
    if createrole:
        report.warnings.append(f"role {role} has CREATEROLE")
    if createdb:
        report.warnings.append(f"role {role} has CREATEDB")
    if bypassrls:
        report.warnings.append(f"role {role} has BYPASSRLS (row-level security does not apply to it)")
    if read_only and not superuser:
        _check_writes(conn, report)
    temp_limit = conn.execute("SELECT current_setting('temp_file_limit')").fetchone()
    if temp_limit is not None and str(temp_limit[0]) == "-1":
        report.warnings.append(
            f"temp_file_limit is unlimited for role {role}: one sort or hash can fill the server's disk with temp "
            f"files; an administrator can set ALTER ROLE {sql.Identifier(str(role)).as_string()} SET temp_file_limit "
            "= '1GB'"
        )
    return report


def _check_writes(conn: psycopg.Connection[tuple[object, ...]], report: RoleReport) -> None:
    """Find anything the role could write or create: the point of a read-only source is that there is nothing."""
    creates, temporary = conn.execute(
        "SELECT has_database_privilege(current_database(), 'CREATE'), "
        "has_database_privilege(current_database(), 'TEMPORARY')"
    ).fetchone() or (False, False)
    if creates:
        report.refusals.append(f"role {report.role} can CREATE schemas in database {report.database}")
    if temporary:
        report.warnings.append(
            f"role {report.role} can create TEMPORARY tables in {report.database} (queries still cannot: the SQL "
            "check refuses SELECT INTO; revoke TEMPORARY from PUBLIC to close it at the role)"
        )
    schemas = [
        str(r[0])
        for r in conn.execute(
            f"SELECT n.nspname FROM pg_namespace AS n WHERE {_USER_SCHEMAS} AND has_schema_privilege(n.oid, 'CREATE') "
            "ORDER BY 1"
        )
    ]
    if schemas:
        report.refusals.append(
            f"role {report.role} can CREATE objects in schema {_listing(schemas[:_SHOWN], len(schemas))}"
        )
    writable = [
        f"{r[0]}.{r[1]}"
        for r in conn.execute(
            "SELECT n.nspname, c.relname FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace "
            f"WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND {_USER_SCHEMAS} AND ("
            "pg_has_role(current_user, c.relowner, 'USAGE') "
            "OR has_table_privilege(c.oid, 'DELETE, TRUNCATE, REFERENCES, TRIGGER') "
            "OR has_any_column_privilege(c.oid, 'INSERT, UPDATE')) ORDER BY 1, 2"
        )
    ]
    if writable:
        shown = _listing(writable[:_SHOWN], len(writable))
        report.refusals.append(f"role {report.role} owns or can write {len(writable)} table(s): {shown}")
