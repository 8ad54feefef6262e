"""Which PostgreSQL functions, operators and types model SQL may reach: an allowlist resolved against the catalog.

The parse check (`_guard.py`) collects every name through which a statement can run code:

* function calls, in any position (`f(x)`, `schema.f(x)`, `FROM f(x)`, SQL-syntax forms such as `EXTRACT` and
  `TRIM`, which the parser turns into `pg_catalog.date_part`, `pg_catalog.btrim`, ...);
* field notation, `(x).f` or `t.f`, which PostgreSQL runs as `f(x)` when no column `f` exists;
* operators, including `OPERATOR(schema.op)`, those implied by `BETWEEN`, `IN`, `LIKE`, `ORDER BY ... USING`;
* type names in casts and column definition lists (a type's input function and casts run code);
* table sample methods.

`resolve` then asks the catalog, inside the call's own READ ONLY transaction, which objects each name can reach for
this role (the search path for unqualified names, the named schema otherwise), without knowing argument types. A name
is allowed only if **every** object it could resolve to is allowed: a built-in function (OID below 16384, in
`pg_catalog`) whose name is in `SAFE_FUNCTIONS`, a built-in operator or type, or an object the operator allowlisted by
qualified name. A user-defined `public.lower(...)` therefore makes unqualified `lower` refused, rather than guessed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from bridge import ToolError

__all__ = ["SAFE_FUNCTIONS", "Allowlist", "References"]

FIRST_USER_OID = 16384
"""PostgreSQL's FirstNormalObjectId: every object below it was created by initdb (built in)."""

_SAFE = """
    abs cbrt ceil ceiling degrees div exp factorial floor gcd lcm ln log log10 min_scale mod pi power pow radians
    round scale sign sqrt trim_scale trunc width_bucket random random_normal erf erfc
    acos acosd asin asind atan atan2 atan2d atand cos cosd cot cotd sin sind tan tand cosh sinh tanh acosh asinh atanh
    bit_length char_length character_length lower upper initcap length octet_length position strpos substr substring
    overlay btrim ltrim rtrim left right lpad rpad repeat replace reverse split_part starts_with string_to_array
    string_to_table array_to_string concat concat_ws format quote_ident quote_literal quote_nullable translate ascii
    chr to_hex md5 sha224 sha256 sha384 sha512 encode decode convert_from convert_to normalize is_normalized unistr
    regexp_count regexp_instr regexp_like regexp_match regexp_matches regexp_replace regexp_split_to_array
    regexp_split_to_table regexp_substr similar_to_escape similar_escape textcat get_byte get_bit bit_count
    to_char to_date to_number to_timestamp age clock_timestamp current_date date_bin date_part date_trunc extract
    isfinite justify_days justify_hours justify_interval make_date make_interval make_time make_timestamp
    make_timestamptz now statement_timestamp timeofday transaction_timestamp timezone overlaps date_add date_subtract
    coalesce greatest least nullif num_nulls num_nonnulls
    array_agg array_append array_cat array_dims array_fill array_length array_lower array_ndims array_position
    array_positions array_prepend array_remove array_replace array_sample array_shuffle array_upper cardinality
    trim_array unnest generate_series generate_subscripts
    count sum avg min max bool_and bool_or every bit_and bit_or bit_xor string_agg stddev stddev_pop stddev_samp
    variance var_pop var_samp corr covar_pop covar_samp regr_avgx regr_avgy regr_count regr_intercept regr_r2
    regr_slope regr_sxx regr_sxy regr_syy mode percentile_cont percentile_disc any_value grouping
    row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value last_value nth_value
    to_json to_jsonb array_to_json row_to_json json_build_array json_build_object json_object json_agg
    json_object_agg json_array_length json_each json_each_text json_extract_path json_extract_path_text
    json_object_keys json_populate_record json_populate_recordset json_array_elements json_array_elements_text
    json_typeof json_to_record json_to_recordset json_strip_nulls jsonb_build_array jsonb_build_object jsonb_object
    jsonb_agg jsonb_object_agg jsonb_array_length jsonb_each jsonb_each_text jsonb_extract_path
    jsonb_extract_path_text jsonb_object_keys jsonb_populate_record jsonb_populate_recordset jsonb_array_elements
    jsonb_array_elements_text jsonb_typeof jsonb_to_record jsonb_to_recordset jsonb_strip_nulls jsonb_set
    jsonb_set_lax jsonb_insert jsonb_pretty jsonb_path_exists jsonb_path_match jsonb_path_query
    jsonb_path_query_array jsonb_path_query_first json_agg_strict json_object_agg_strict json_object_agg_unique
    json_object_agg_unique_strict jsonb_agg_strict jsonb_object_agg_strict jsonb_object_agg_unique
    jsonb_object_agg_unique_strict json_scalar json_serialize
    lower_inc upper_inc lower_inf upper_inf isempty range_merge multirange int4range int8range numrange tsrange
    tstzrange daterange
    area center diameter height width radius npoints isclosed isopen pclose popen point box circle line lseg path
    polygon slope isvertical ishorizontal isparallel isperp enum_first enum_last enum_range
    host hostmask masklen netmask network broadcast family abbrev inet_same_family inet_merge set_masklen
    gen_random_uuid uuid_extract_timestamp uuid_extract_version
    to_tsvector to_tsquery plainto_tsquery phraseto_tsquery websearch_to_tsquery ts_rank ts_rank_cd ts_headline
    setweight strip numnode querytree tsvector_to_array array_to_tsvector
    pg_typeof format_type obj_description col_description shobj_description pg_get_viewdef pg_get_constraintdef
    pg_get_indexdef pg_get_expr pg_get_function_arguments pg_get_function_result pg_get_function_identity_arguments
    pg_get_functiondef pg_get_triggerdef pg_get_ruledef pg_get_keywords pg_column_size pg_relation_size
    pg_total_relation_size pg_table_size pg_indexes_size pg_size_pretty pg_size_bytes pg_table_is_visible
    pg_type_is_visible pg_function_is_visible has_table_privilege has_column_privilege has_any_column_privilege
    has_schema_privilege has_database_privilege has_function_privilege has_sequence_privilege pg_has_role
    to_regclass to_regtype to_regproc to_regprocedure to_regnamespace to_regrole to_regoper to_regtypemod
    current_database current_schema current_schemas version pg_backend_pid pg_collation_for
    int2 int4 int8 float4 float8 numeric text varchar bpchar name bool date time timetz timestamp timestamptz
    interval char inet cidr macaddr macaddr8 bit varbit money oid regclass regtype regproc interval
"""
SAFE_FUNCTIONS = frozenset(_SAFE.split())
"""Built-in `pg_catalog` functions model SQL may call: computation on values, aggregates, windows, JSON, text search
and catalog lookups. Left out on purpose: server files, large objects, sessions and signals, locks, settings
(`set_config`, `setseed`), sequences and transaction ids, dynamic SQL (`query_to_xml`, `ts_stat`, `dblink_*`), XML
(its parser ignores cancellation), sleeping, replication and backup."""

SAFE_SAMPLE_METHODS = frozenset({"bernoulli", "system"})
SAFE_IN_WRITES = frozenset({"nextval", "currval", "lastval"})
"""Sequence functions a write may call (an INSERT draws ids); never allowed in a read-only query."""


@dataclass
class References:
    """Every name in one statement through which it could run code, as written (schema None when unqualified)."""

    functions: set[tuple[str | None, str]] = field(default_factory=set)
    fields: set[str] = field(default_factory=set)
    operators: set[tuple[str | None, str]] = field(default_factory=set)
    types: set[tuple[str | None, str]] = field(default_factory=set)
    writing: bool = False
    returning: bool = False


_QUERY = """
WITH f(kind, schema_ref, name_ref) AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))
SELECT f.kind, f.schema_ref, f.name_ref, p.oid::int8, n.nspname::text, p.proname::text, NULL::text, NULL::text
FROM f JOIN pg_proc AS p ON p.proname = f.name_ref JOIN pg_namespace AS n ON n.oid = p.pronamespace
WHERE f.kind IN ('function', 'field')
  AND (f.kind = 'function' OR (p.pronargs >= 1 AND p.pronargs - p.pronargdefaults <= 1))
  AND (n.nspname = f.schema_ref OR (f.schema_ref IS NULL AND n.nspname = ANY(current_schemas(true))))
UNION ALL
SELECT f.kind, f.schema_ref, f.name_ref, o.oid::int8, n.nspname::text, o.oprname::text, cn.nspname::text,
       c.proname::text
FROM f JOIN pg_operator AS o ON o.oprname = f.name_ref JOIN pg_namespace AS n ON n.oid = o.oprnamespace
LEFT JOIN pg_proc AS c ON c.oid = o.oprcode LEFT JOIN pg_namespace AS cn ON cn.oid = c.pronamespace
WHERE f.kind = 'operator'
  AND (n.nspname = f.schema_ref OR (f.schema_ref IS NULL AND n.nspname = ANY(current_schemas(true))))
UNION ALL
SELECT f.kind, f.schema_ref, f.name_ref, t.oid::int8, n.nspname::text, t.typname::text, t.typtype::text, NULL::text
FROM f JOIN pg_type AS t ON t.typname = f.name_ref JOIN pg_namespace AS n ON n.oid = t.typnamespace
WHERE f.kind = 'type'
  AND (n.nspname = f.schema_ref OR (f.schema_ref IS NULL AND n.nspname = ANY(current_schemas(true))))
"""


def _qualified(schema: str | None, name: str) -> str:
    return f"{schema}.{name}" if schema else name


class Allowlist:
    """The functions model SQL may reach, resolved against the catalog on every call.

    Args:
        extra: Functions the operator allows on top of `SAFE_FUNCTIONS`: `"name"` for a built-in `pg_catalog`
            function (`"pg_sleep"`), `"schema.name"` for anything else (`"public.order_total"`). An operator is
            allowed through the function that implements it, a type only if it is built in or an enum.
    """

    def __init__(self, extra: Iterable[str] = ()) -> None:
        self.extra = frozenset(name.lower() if "." not in name else name for name in extra)

    def function_allowed(self, oid: int, schema: str, name: str, *, writing: bool = False) -> bool:
        """Whether one resolved function may run (`writing`: inside the execute tool's statement)."""
        if f"{schema}.{name}" in self.extra:
            return True
        builtin = schema == "pg_catalog" and oid < FIRST_USER_OID
        return builtin and (name in SAFE_FUNCTIONS or name in self.extra or (writing and name in SAFE_IN_WRITES))

    def resolve(self, conn: psycopg.Connection[Any], refs: References) -> None:
        """Check every reference against the catalog, in the call's own transaction.

        Raises:
            ToolError: a name could reach something outside the allowlist.
        """
        wanted: list[tuple[str, str | None, str]] = [
            *(("function", s, n) for s, n in sorted(refs.functions, key=str)),
            *(("field", None, n) for n in sorted(refs.fields)),
            *(("operator", s, n) for s, n in sorted(refs.operators, key=str)),
            *(("type", s, n) for s, n in sorted(refs.types, key=str)),
        ]
        if not wanted:
            return
        cursor = psycopg.RawCursor(conn)
        cursor.execute(_QUERY, [[w[0] for w in wanted], [w[1] for w in wanted], [w[2] for w in wanted]], prepare=False)
        for kind, schema_ref, name_ref, oid, schema, name, extra1, extra2 in cursor.fetchall():
            written = _qualified(schema_ref, name_ref)
            if kind == "function" and not self.function_allowed(oid, schema, name, writing=refs.writing):
                raise ToolError(
                    f"denied_by_policy: function {written}() is not on this source's allowlist; allowed are built-in "
                    "functions that compute on values, aggregates, window, JSON, text search and catalog lookups"
                )
            if kind == "field" and not self.function_allowed(oid, schema, name):
                raise ToolError(
                    f"denied_by_policy: .{name_ref} could call a function {name_ref}(), which is not on this "
                    "source's allowlist (PostgreSQL reads x.f as f(x) when x has no column f). If it is a column, "
                    "rename it in a subquery or view"
                )
            if kind == "operator" and oid >= FIRST_USER_OID:
                code_ok = extra1 is not None and extra2 is not None and f"{extra1}.{extra2}" in self.extra
                if not code_ok:
                    raise ToolError(
                        f"denied_by_policy: operator {written} could resolve to an operator that is not built in; "
                        "only built-in operators (and operators whose function is allowlisted) may run"
                    )
            if kind == "type" and oid >= FIRST_USER_OID and extra1 != "e" and f"{schema}.{name}" not in self.extra:
                raise ToolError(
                    f"denied_by_policy: type {written} could resolve to a user-defined type, whose casts and input "
                    "functions could run code; only built-in and enum types may be named"
                )
