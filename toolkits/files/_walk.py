"""Listing, filename search and content search: one bounded walk over directory fds, no link ever followed.

The walk opens each subdirectory with `O_NOFOLLOW | O_DIRECTORY` relative to its parent's fd, so a directory swapped
for a link mid-walk is skipped, never entered. It visits at most `max_walk_entries` entries and `max_depth` levels,
hides denylisted names always and dot-names unless asked, and says when it stopped early.
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from bridge import ToolError

from ._beneath import check_type, kind
from ._match import Matcher
from ._read import _iso
from ._space import Space, read_all

__all__ = ["find", "grep", "list_dir"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass
class _Budget:
    left: int
    exhausted: bool = False
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, why: str) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + 1


@dataclass
class _Entry:
    parent_fd: int
    name: str
    rel: str
    st: os.stat_result
    depth: int


def _walk(
    space: Space,
    dir_fd: int,
    prefix: str,
    depth: int,
    max_depth: int,
    hidden: bool,
    budget: _Budget,
    cancelled: Callable[[], bool],
) -> Iterator[_Entry]:
    try:
        with os.scandir(dir_fd) as it:
            names = sorted(entry.name for entry in it)
    except OSError:
        budget.skip("unreadable directories")
        return
    for name in names:
        if budget.left <= 0 or cancelled():
            budget.exhausted = True
            return
        budget.left -= 1
        if space.denied(name):
            budget.skip("denylisted")
            continue
        if name.startswith(".") and not hidden:
            continue
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError:
            continue
        rel = f"{prefix}{name}"
        yield _Entry(dir_fd, name, rel, st, depth)
        if stat.S_ISDIR(st.st_mode) and depth < max_depth:
            try:
                child = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
            except OSError:
                budget.skip("directories changed or unreadable")
                continue
            try:
                yield from _walk(space, child, f"{rel}/", depth + 1, max_depth, hidden, budget, cancelled)
            finally:
                os.close(child)


def _depth(space: Space, depth: int) -> int:
    if not 1 <= depth <= space.limits.max_depth:
        raise ToolError(f"invalid_input: depth must be between 1 and {space.limits.max_depth}, got {depth}")
    return depth


def _limit(space: Space, limit: int | None, cap: int) -> int:
    if limit is None:
        return cap
    if not 1 <= limit <= cap:
        raise ToolError(f"invalid_input: limit must be between 1 and {cap}, got {limit}")
    return limit


def _matcher(pattern: str) -> Callable[[str], bool]:
    """A glob on the name when it has no '/', else on the path below the search directory (`*` crosses '/')."""
    if "/" in pattern:
        return lambda rel: fnmatch.fnmatchcase(rel, pattern.removeprefix("**/")) or fnmatch.fnmatchcase(rel, pattern)
    return lambda rel: fnmatch.fnmatchcase(rel.rsplit("/", 1)[-1], pattern)


def _describe(entry: _Entry, base: str) -> dict[str, Any]:
    item: dict[str, Any] = {"path": f"{base}{entry.rel}", "type": kind(entry.st.st_mode)}
    if item["type"] == "file":
        item["size"] = entry.st.st_size
        if entry.st.st_nlink > 1:
            item["links"] = entry.st.st_nlink
    item["modified"] = _iso(entry.st.st_mtime)
    return item


def _base(path: str, parts: list[str]) -> str:
    return "/".join(parts) + "/" if parts else ""


def list_dir(
    space: Space,
    root_name: str | None,
    path: str,
    *,
    depth: int,
    glob: str | None,
    include_hidden: bool,
    limit: int | None,
    cancelled: Callable[[], bool],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Entries below a directory, sorted, capped; links and special files are listed (as such), never followed."""
    root = space.root(root_name)
    cap = _limit(space, limit, space.limits.max_list_entries)
    match = _matcher(glob) if glob else None
    with space.open(root, path) as opened:
        if not opened.is_dir:
            raise ToolError(f"invalid_input: {path!r} is a file; use read or stat")
        parts = [p for p in path.split("/") if p not in ("", ".")]
        budget = _Budget(space.limits.max_walk_entries)
        found: list[dict[str, Any]] = []
        more = False
        for entry in _walk(space, opened.fd, "", 1, _depth(space, depth), include_hidden, budget, cancelled):
            if match is not None and not match(entry.rel):
                continue
            if len(found) == cap:
                more = True
                break
            found.append(_describe(entry, _base(path, parts)))
    header = {"root": root.name, "path": path or ".", "count": len(found), "truncated": more or budget.exhausted}
    if more:
        header["note"] = f"more than {cap} entries; narrow with glob or a deeper path"
    elif budget.exhausted:
        header["note"] = "the walk stopped at the entry cap; narrow the path"
    if budget.skipped:
        header["skipped"] = budget.skipped
    return header, found


def find(
    space: Space,
    root_name: str | None,
    path: str,
    *,
    glob: str,
    include_hidden: bool,
    limit: int | None,
    cancelled: Callable[[], bool],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Files and directories whose name (or path, when the glob has a '/') matches `glob`, at any depth."""
    header, found = list_dir(
        space,
        root_name,
        path,
        depth=space.limits.max_depth,
        glob=glob,
        include_hidden=include_hidden,
        limit=limit,
        cancelled=cancelled,
    )
    header["glob"] = glob
    return header, found


def grep(
    space: Space,
    root_name: str | None,
    path: str,
    *,
    pattern: str,
    glob: str | None,
    ignore_case: bool,
    include_hidden: bool,
    limit: int | None,
    cancelled: Callable[[], bool],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Lines matching a regular expression in the text files below `path`, with their line numbers."""
    try:
        re.compile(pattern, re.IGNORECASE if ignore_case else 0)
    except (re.error, RecursionError, OverflowError) as exc:
        raise ToolError(f"invalid_input: pattern is not a valid regular expression: {exc}") from None
    root = space.root(root_name)
    cap = _limit(space, limit, space.limits.max_grep_matches)
    limits = space.limits
    match = _matcher(glob) if glob else None
    matches: list[dict[str, Any]] = []
    read_bytes = 0
    stopped: str | None = None
    matcher: Matcher | None = None
    try:
        with space.open(root, path) as opened:
            if not opened.is_dir:
                raise ToolError(f"invalid_input: {path!r} is a file; read it, or search its directory")
            parts = [p for p in path.split("/") if p not in ("", ".")]
            base = _base(path, parts)
            budget = _Budget(limits.max_walk_entries)
            for entry in _walk(space, opened.fd, "", 1, limits.max_depth, include_hidden, budget, cancelled):
                if not stat.S_ISREG(entry.st.st_mode) or (match is not None and not match(entry.rel)):
                    continue
                if entry.st.st_size > limits.max_grep_file_bytes:
                    budget.skip(f"larger than {limits.max_grep_file_bytes} bytes")
                    continue
                if read_bytes + entry.st.st_size > limits.max_grep_bytes:
                    stopped = "max_grep_bytes"
                    break
                data = _read_entry(space, entry, budget)
                if data is None:
                    continue
                read_bytes += len(data)
                if matcher is None:
                    matcher = Matcher(
                        pattern,
                        ignore_case=ignore_case,
                        width=limits.max_line_chars,
                        seconds=limits.max_grep_seconds,
                        cancelled=cancelled,
                    )
                found, more = matcher.search(data, cap - len(matches))
                matches += [{"path": f"{base}{entry.rel}", "line": n, "text": text} for n, text in found]
                if more:
                    stopped = "limit"
                    break
    finally:
        if matcher is not None:
            matcher.close()
    header: dict[str, Any] = {
        "root": root.name,
        "path": path or ".",
        "pattern": pattern,
        "count": len(matches),
        "truncated": stopped is not None or budget.exhausted,
    }
    if stopped == "limit":
        header["note"] = f"more than {cap} matching lines; narrow the pattern, glob or path"
    elif stopped or budget.exhausted:
        header["note"] = "the search stopped at a size or entry cap; narrow the glob or path"
    if budget.skipped:
        header["skipped"] = budget.skipped
    return header, matches


def _read_entry(space: Space, entry: _Entry, budget: _Budget) -> str | None:
    """The text of one walked file, or None (counted) for binary, multi-link, changed or non-UTF-8 files."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(entry.name, flags, dir_fd=entry.parent_fd)
    except OSError:
        budget.skip("changed or unreadable")
        return None
    try:
        st = os.fstat(fd)
        try:
            check_type(st, entry.rel, allow_hardlinks=space.allow_hardlinks)
        except ToolError:
            budget.skip("not regular single-link files")
            return None
        if (st.st_dev, st.st_ino) != (entry.st.st_dev, entry.st.st_ino) or not stat.S_ISREG(st.st_mode):
            budget.skip("changed or unreadable")
            return None
        raw = read_all(fd, min(st.st_size, space.limits.max_grep_file_bytes))
    finally:
        os.close(fd)
    if b"\x00" in raw[:8192]:
        budget.skip("binary")
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        budget.skip("not UTF-8")
        return None
