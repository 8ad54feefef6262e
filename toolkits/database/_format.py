"""Turn database values into exact, bounded text the model can trust the shape of (and not the content of).

Three promises, one per section below:

* **Exact values.** A decimal or an integer past 2**53 becomes a string, so no JSON consumer rounds it; bytes become
  capped base64; dates and times are ISO 8601; NaN and infinities are named. Nothing is silently approximated.
* **Bounded output.** Rows are capped by the engine (`fetchmany(cap + 1)` tells "exactly cap" from "more"), long
  cells are cut with a visible marker, and rows past the output byte cap are dropped. Every cut is in the header.
* **Untrusted data stays data.** Everything that came out of the database (rows, names, comments, DDL) is wrapped in
  an `<untrusted-data-NONCE>` boundary with a fresh random nonce, after a line telling the model not to follow
  instructions found inside (the Supabase pattern). Whoever planted the text cannot guess the nonce, so cannot close
  the boundary early.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import decimal
import io
import json
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .._fence import fence
from ._limits import QueryLimits

__all__ = ["Clipped", "Format", "Rows", "fenced", "render_document", "render_rows", "safe_value", "wrap_untrusted"]

Format = Literal["json", "csv", "markdown"]
JSONValue = None | bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"]

_MAX_SAFE_INT = 2**53 - 1


@dataclass
class Rows:
    """A result set as fetched: at most `cap` rows, whether the engine had more, and whether bytes stopped the fetch.

    `bytes_capped` is set when the engine stopped fetching because the rows already fetched filled the output
    budget: the rows past it were never transferred.
    """

    columns: list[str]
    rows: Sequence[Sequence[Any]]
    more: bool = False
    elapsed_ms: float = 0.0
    warnings: list[str] = field(default_factory=list)
    bytes_capped: bool = False


@dataclass(frozen=True)
class Clipped:
    """A cell the engine cut before it reached this process: its head and its full size.

    `size` counts bytes (PostgreSQL text, any blob) or, with `unit="chars"`, characters (SQLite text).
    """

    head: str | bytes
    size: int
    unit: Literal["bytes", "chars"] = "bytes"


# --- exact values ---------------------------------------------------------------------------------------------------


class _Cuts:
    """Counts cells cut while converting one result."""

    def __init__(self) -> None:
        self.count = 0


def _cut(text: str, limit: int, cuts: _Cuts) -> str:
    if len(text) <= limit:
        return text
    cuts.count += 1
    return f"{text[:limit]}…[+{len(text) - limit} chars]"


def _duration(value: dt.timedelta) -> str:
    """ISO 8601 duration (`P1DT2H3M4.5S`), negative durations prefixed with `-`."""
    micros = abs(value) // dt.timedelta(microseconds=1)
    days, rest = divmod(micros, 86_400_000_000)
    hours, rest = divmod(rest, 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    seconds = decimal.Decimal(rest) / 1_000_000
    time = "".join(
        f"{amount}{unit}" for amount, unit in ((hours, "H"), (minutes, "M"), (seconds.normalize(), "S")) if amount
    )
    text = f"P{days}D" if days or not time else "P"
    text += f"T{time}" if time else ""
    return f"-{text}" if value < dt.timedelta(0) else text


def safe_value(value: Any, limits: QueryLimits, cuts: _Cuts | None = None, *, whole: bool = True) -> JSONValue:
    """Convert one database value to an exact JSON value, cutting long text.

    Args:
        value: What the driver returned (str, int, Decimal, bytes, datetime, dict/list for JSON, arrays, ...).
        limits: Supplies the per-cell caps.
        cuts: Counts the cells that were cut; a fresh counter when omitted.
        whole: Cap a nested value (JSON, arrays) as one cell; False caps only its leaves (for documents).

    Returns:
        None, bool, int (within ±2**53), float (finite), str, or lists/dicts of those.
    """
    cuts = cuts if cuts is not None else _Cuts()
    if isinstance(value, Clipped):
        cuts.count += 1
        if isinstance(value.head, bytes):
            shown = base64.b64encode(value.head[: limits.max_blob_bytes]).decode("ascii")
            return f"base64:{shown}…[{value.size} bytes in total]"
        head = _clean(value.head)[: limits.max_cell_chars]
        if value.unit == "chars":
            return f"{head}…[+{value.size - len(head)} chars]"
        return f"{head}…[{value.size} bytes in total]"
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT else str(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, str):
        return _cut(_clean(value), limits.max_cell_chars, cuts)
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        shown = base64.b64encode(raw[: limits.max_blob_bytes]).decode("ascii")
        if len(raw) <= limits.max_blob_bytes:
            return f"base64:{shown}"
        cuts.count += 1
        return f"base64:{shown}…[{len(raw)} bytes in total]"
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return _duration(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Mapping | list | tuple):
        nested = _Cuts()
        converted: JSONValue = (
            {_clean(str(k)): safe_value(v, limits, nested, whole=whole) for k, v in value.items()}
            if isinstance(value, Mapping)
            else [safe_value(v, limits, nested, whole=whole) for v in value]
        )
        if whole:
            text = json.dumps(converted, ensure_ascii=False)
            if len(text) > limits.max_cell_chars:
                return _cut(text, limits.max_cell_chars, cuts)
        cuts.count += nested.count
        return converted
    return _cut(_clean(str(value)), limits.max_cell_chars, cuts)


def _clean(text: str) -> str:
    """Replace lone surrogates (text no UTF-8 encoder accepts) with U+FFFD, so rendering never fails on them."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text


# --- bounded output ---------------------------------------------------------------------------------------------------


def _text_cell(value: JSONValue, *, null: str) -> str:
    if value is None:
        return null
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _encode_row(row: list[JSONValue], fmt: Format) -> str:
    if fmt == "json":
        return json.dumps(row, ensure_ascii=False)
    if fmt == "csv":
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerow([_text_cell(v, null="") for v in row])
        return out.getvalue().rstrip("\n")
    cells = (_text_cell(v, null="NULL").replace("|", "\\|").replace("\r", "").replace("\n", "\\n") for v in row)
    return "| " + " | ".join(cells) + " |"


def _assemble(columns: list[str], lines: list[str], fmt: Format) -> str:
    if fmt == "json":
        body = ",\n".join(f"  {line}" for line in lines)
        return f'{{"columns": {json.dumps(columns, ensure_ascii=False)},\n "rows": [\n{body}\n]}}'
    header = _encode_row(list[JSONValue](columns), fmt)
    if fmt == "csv":
        return "\n".join([header, *lines])
    return "\n".join([header, "|" + "---|" * len(columns), *lines])


def render_rows(result: Rows, *, fmt: Format, limits: QueryLimits, cap: int) -> str:
    """Render a fetched result as the tool's answer: a JSON header line, then the rows inside a boundary.

    Args:
        result: The rows fetched with `fetchmany(cap + 1)`, already trimmed to `cap` with `more` set.
        fmt: `json` (columns plus row arrays, one row per line), `csv`, or `markdown`.
        limits: Cell and output-byte caps.
        cap: The row cap that was applied, reported back so the model knows what it got.

    Returns:
        Text whose first line is the header (`row_count`, `truncated`, `truncated_by`, `cells_truncated`, ...).
    """
    cuts = _Cuts()
    lines: list[str] = []
    size = 0
    truncated_by: str | None = "max_rows" if result.more else None
    if result.bytes_capped and truncated_by is None:
        truncated_by = "max_output_bytes"
    for row in result.rows:
        line = _encode_row([safe_value(v, limits, cuts) for v in row], fmt)
        size += len(line.encode()) + 1
        if size > limits.max_output_bytes:
            truncated_by = "max_output_bytes"
            break
        lines.append(line)
    header: dict[str, Any] = {
        "row_count": len(lines),
        "truncated": truncated_by is not None,
        "truncated_by": truncated_by,
        "max_rows": cap,
        "cells_truncated": cuts.count,
        "format": fmt,
        "elapsed_ms": round(result.elapsed_ms, 1),
    }
    if truncated_by == "max_rows":
        header["note"] = (
            f"more rows exist past the first {cap}; aggregate, filter or page with LIMIT/OFFSET, "
            f"or ask for up to max_rows={limits.max_rows_limit}"
        )
    elif truncated_by == "max_output_bytes":
        header["note"] = f"rows past {limits.max_output_bytes} bytes of output were dropped; select fewer columns"
    if result.warnings:
        header["warnings"] = result.warnings
    columns = [_clean(c) for c in result.columns]
    return json.dumps(header) + "\n" + wrap_untrusted(_assemble(columns, lines, fmt))


def render_document(data: Any, *, limits: QueryLimits, header: Mapping[str, Any] | None = None) -> str:
    """Render a non-tabular answer (catalog, plan, source description) with the same header and boundary."""
    cuts = _Cuts()
    body = json.dumps(safe_value(data, limits, cuts, whole=False), ensure_ascii=False)
    head: dict[str, Any] = {**(header or {}), "truncated": False, "cells_truncated": cuts.count}
    if len(body.encode()) > limits.max_output_bytes:
        kept = body.encode()[: limits.max_output_bytes].decode(errors="ignore")
        body = f"{kept}…[output cut at {limits.max_output_bytes} bytes]"
        head.update(truncated=True, truncated_by="max_output_bytes", note="narrow the request to see everything")
    return json.dumps(head) + "\n" + wrap_untrusted(body)


# --- untrusted data stays data ----------------------------------------------------------------------------------------


def wrap_untrusted(body: str) -> str:
    """Wrap text from the database in a boundary whose random nonce the text cannot contain (`toolkits._fence`)."""
    return fence(body, source="the database")


def fenced(message: str, database_text: str, limit: int = 500) -> str:
    """An error message whose part that came from the database (a server message, a name) sits inside a boundary.

    Args:
        message: Our own words: the category prefix and what the model can do.
        database_text: Text the database produced; it may carry instructions planted by whoever wrote the data.
        limit: The most characters of `database_text` shown.
    """
    text = _clean(database_text)
    if len(text) > limit:
        text = f"{text[:limit]}…[+{len(text) - limit} chars]"
    return f"{message}\n{wrap_untrusted(text)}"
