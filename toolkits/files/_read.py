"""Reading: a page of text by byte offset or by line range, and `stat`; never more than the caps, never binary."""

from __future__ import annotations

import codecs
import datetime as dt
import os
from typing import Any

from bridge import ToolError

from ._beneath import Opened, kind
from ._space import Space, read_all

__all__ = ["read_text", "stat_entry"]

_SNIFF = 8192


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).isoformat(timespec="seconds")


def _binary(head: bytes) -> bool:
    return b"\x00" in head


def _decode(raw: bytes, *, at_start: bool, at_end: bool) -> tuple[str, int, int]:
    """Decode a UTF-8 page that may start or end inside a character.

    Returns:
        The text, the bytes skipped at the start (continuation bytes of a character that began before the page),
        and the bytes consumed (an incomplete character at the end is left for the next page).
    """
    skip = 0
    if not at_start:
        while skip < min(3, len(raw)) and raw[skip] & 0xC0 == 0x80:
            skip += 1
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    try:
        text = decoder.decode(raw[skip:], final=at_end)
    except UnicodeDecodeError:
        raise ToolError(
            "invalid_input: the file is not UTF-8 text (binary or another encoding); it is not returned"
        ) from None
    pending = len(decoder.getstate()[0])
    return text, skip, len(raw) - pending


def stat_entry(space: Space, root_name: str | None, path: str) -> dict[str, Any]:
    """Type, size, times, link count and (for files up to the hashing cap) sha256 of one entry, no link followed."""
    root = space.root(root_name)
    with space.parent(root, path) as (parent_fd, name, _):
        if name:
            try:
                st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
            except OSError as exc:
                raise ToolError(f"not_found: {path!r} does not exist") from exc
        else:
            st = os.fstat(parent_fd)
        info: dict[str, Any] = {
            "root": root.name,
            "path": path,
            "type": kind(st.st_mode),
            "size": st.st_size,
            "modified": _iso(st.st_mtime),
            "links": st.st_nlink,
            "mode": oct(st.st_mode & 0o7777),
        }
        if info["type"] == "file":
            try:
                with space.open(root, path) as opened:
                    info["sha256"] = space.sha256(opened.fd, opened.st.st_size)
                    info["text"] = not _binary(os.pread(opened.fd, _SNIFF, 0))
            except ToolError as exc:
                info["served"] = False
                info["why_not"] = str(exc)
        elif info["type"] not in ("directory",):
            info["served"] = False
        return info


def read_text(
    space: Space,
    root_name: str | None,
    path: str,
    *,
    offset: int,
    max_bytes: int | None,
    start_line: int | None,
    end_line: int | None,
) -> tuple[dict[str, Any], str]:
    """One page of a text file: by byte `offset`, or by 1-based inclusive line range.

    Returns:
        The header (size, sha256, the page's byte range, `next_offset` when more remains) and the text.
    """
    cap = space.limits.max_read_bytes
    if max_bytes is not None and not 1 <= max_bytes <= cap:
        raise ToolError(f"invalid_input: max_bytes must be between 1 and {cap}, got {max_bytes}")
    budget = max_bytes or cap
    root = space.root(root_name)
    with space.open(root, path) as opened:
        if opened.is_dir:
            raise ToolError(f"invalid_input: {path!r} is a directory; use the list tool")
        size = opened.st.st_size
        header: dict[str, Any] = {"root": root.name, "path": path, "size": size}
        if _binary(os.pread(opened.fd, _SNIFF, 0)):
            raise ToolError(
                f"invalid_input: {path!r} is a binary file ({size} bytes); only UTF-8 text is returned. "
                "Use stat for its size and sha256."
            )
        header["sha256"] = space.sha256(opened.fd, size)
        if start_line is not None or end_line is not None:
            text, page = _lines(space, opened, start_line or 1, end_line, budget)
            header.update(page)
            return header, text
        if offset < 0 or offset > size:
            raise ToolError(f"invalid_input: offset must be between 0 and the file size {size}, got {offset}")
        raw = os.pread(opened.fd, budget, offset)
        at_end = offset + len(raw) >= size
        text, skip, used = _decode(raw, at_start=offset == 0, at_end=at_end)
        end = offset + used
        header.update(offset=offset + skip, end=end, truncated=end < size)
        if end < size:
            header["next_offset"] = end
            header["note"] = f"{size - end} more bytes; call again with offset={end}"
        return header, text


def _lines(space: Space, opened: Opened, start: int, end: int | None, budget: int) -> tuple[str, dict[str, Any]]:
    if start < 1 or (end is not None and end < start):
        raise ToolError("invalid_input: lines are numbered from 1 and end_line must be >= start_line")
    scan = min(opened.st.st_size, space.limits.max_line_scan_bytes)
    data = read_all(opened.fd, scan)
    lines = data.split(b"\n")
    if scan < opened.st.st_size or data.endswith(b"\n"):
        lines.pop()  # a partial line past the scan, or the empty piece after the final newline
    if start > len(lines):
        if scan < opened.st.st_size:
            raise ToolError(
                f"invalid_input: line {start} lies past the first {scan} bytes scanned for line ranges; "
                "read by byte offset instead"
            )
        raise ToolError(f"invalid_input: the file has {len(lines)} lines; start_line={start} is past the end")
    chosen: list[bytes] = []
    used = 0
    last = start - 1
    stop = len(lines) if end is None else min(end, len(lines))
    for number in range(start, stop + 1):
        line = lines[number - 1]
        if used + len(line) + 1 > budget and chosen:
            break
        chosen.append(line[:budget])
        used += len(line) + 1
        last = number
    text, _, _ = _decode(b"\n".join(chosen), at_start=True, at_end=False)
    page: dict[str, Any] = {"start_line": start, "end_line": last, "truncated": last < stop}
    if last < stop:
        page["note"] = f"stopped at the byte cap; call again with start_line={last + 1}"
    return text, page
