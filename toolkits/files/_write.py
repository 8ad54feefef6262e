"""Writing and editing (opt-in per root): preview first, conditional on the hash the model read, atomic.

A write goes to a fresh temporary file in the target's directory (`O_CREAT | O_EXCL | O_NOFOLLOW`, relative to the
directory fd), is fsynced, then takes the target's name: `link` for a new file (fails if the name appeared meanwhile,
so nothing is clobbered) or `rename` over an existing one. Either way only a directory entry beneath the root changes:
a symlink or a hard link at the target is replaced, never written through. Overwriting needs the `expected_sha256` of
the current content, so a stale or retried call cannot lose someone else's change.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import secrets
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bridge import ToolError

from ._beneath import check_type, kind, split_path, walk_to
from ._roots import Root
from ._space import Space, read_all

__all__ = ["Edit", "edit_file", "write_file"]

_DIFF_LINES = 400


class Edit(BaseModel):
    """One exact text replacement."""

    model_config = ConfigDict(extra="forbid")

    old: str = Field(min_length=1, description="Exact text to find (whitespace included).")
    new: str = Field(description="The replacement text.")
    count: int = Field(1, ge=1, le=1000, description="How many times `old` must occur; the edit fails otherwise.")


def _writable(space: Space, root_name: str | None) -> Root:
    root = space.root(root_name)
    if not root.writable:
        raise ToolError(f"denied_by_policy: root {root.name!r} is read-only")
    return root


def _diff(before: str, after: str, path: str) -> str:
    lines = list(
        difflib.unified_diff(
            before.splitlines(keepends=True), after.splitlines(keepends=True), f"a/{path}", f"b/{path}", n=2
        )
    )
    if len(lines) > _DIFF_LINES:
        lines = [*lines[:_DIFF_LINES], f"…[{len(lines) - _DIFF_LINES} more diff lines]\n"]
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def _current(space: Space, parent_fd: int, name: str, path: str) -> tuple[os.stat_result, bytes] | None:
    """The existing target's stat and bytes, None when the name is free; refuses links and special files."""
    try:
        st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ToolError(f"upstream_error: cannot inspect {path!r}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ToolError(f"denied_by_policy: {path!r} is a {kind(st.st_mode)}; only regular files are written")
    check_type(st, path, allow_hardlinks=False)
    if st.st_size > space.limits.max_write_bytes:
        raise ToolError(f"invalid_input: {path!r} is larger than the write cap ({space.limits.max_write_bytes} bytes)")
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    fd = os.open(name, flags, dir_fd=parent_fd)
    try:
        now = os.fstat(fd)
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
            raise ToolError(f"upstream_error: {path!r} changed while it was being read; try again")
        return now, read_all(fd, now.st_size)
    finally:
        os.close(fd)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextmanager
def _parent_for_write(
    space: Space, root: Root, path: str, *, create_dirs: bool, dry_run: bool
) -> Iterator[tuple[int, str]]:
    """The target's directory fd (-1 in a dry run whose directories would be created) and the target's name."""
    parts = split_path(path)
    if not parts:
        raise ToolError("invalid_input: name a file to write, not the root")
    space.check_denied(path, parts, writing=True)
    try:
        fd = walk_to(root.fd, parts[:-1], path, use_openat2=space.use_openat2)
    except ToolError as exc:
        if not str(exc).startswith("not_found"):
            raise
        if not create_dirs:
            raise ToolError(f"not_found: the directory of {path!r} does not exist; pass create_dirs=true") from None
        fd = -1 if dry_run else _make_dirs(parts[:-1], root, path)
    try:
        yield fd, parts[-1]
    finally:
        if fd >= 0:
            os.close(fd)


def _make_dirs(parts: Sequence[str], root: Root, path: str) -> int:
    """Create missing directories under the root, one component at a time, never through a link."""
    fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=root.fd)
    try:
        for part in parts:
            with suppress(FileExistsError):
                os.mkdir(part, 0o755, dir_fd=fd)
            child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = child
    except OSError as exc:
        os.close(fd)
        raise ToolError(f"denied_by_policy: cannot create the directories of {path!r}: {exc.strerror}") from None
    return fd


def _commit(parent_fd: int, name: str, data: bytes, mode: int, replace: bytes | None, path: str) -> None:
    tmp = f".{name[:100]}.bridge-{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=parent_fd)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        if replace is None:
            try:
                os.link(tmp, name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd, follow_symlinks=False)
            except FileExistsError:
                raise ToolError(f"conflict: {path!r} was created meanwhile; read it and retry") from None
        else:
            current = _current_bytes(parent_fd, name)
            if current is None or _sha(current) != _sha(replace):
                raise ToolError(f"conflict: {path!r} changed meanwhile; nothing was written. Read it again")
            os.rename(tmp, name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
    finally:
        with suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=parent_fd)
    os.fsync(parent_fd)


def _current_bytes(parent_fd: int, name: str) -> bytes | None:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(name, flags, dir_fd=parent_fd)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        return read_all(fd, st.st_size) if stat.S_ISREG(st.st_mode) and st.st_nlink == 1 else None
    finally:
        os.close(fd)


def write_file(
    space: Space,
    root_name: str | None,
    path: str,
    content: str,
    *,
    expected_sha256: str | None,
    create_dirs: bool,
    dry_run: bool,
) -> tuple[dict[str, Any], str]:
    """Create a file, or replace one whose current sha256 the caller names; a dry run returns the diff only."""
    root = _writable(space, root_name)
    data = content.encode("utf-8")
    if len(data) > space.limits.max_write_bytes:
        raise ToolError(f"invalid_input: content is {len(data)} bytes; the cap is {space.limits.max_write_bytes}")
    with _parent_for_write(space, root, path, create_dirs=create_dirs, dry_run=dry_run) as (parent_fd, name):
        existing = _current(space, parent_fd, name, path) if parent_fd >= 0 else None
        before = b""
        mode = 0o644
        if existing is None:
            if expected_sha256 is not None:
                raise ToolError(f"conflict: {path!r} does not exist, but expected_sha256 was given")
        else:
            st, before = existing
            mode = st.st_mode & 0o777
            if expected_sha256 is None:
                raise ToolError(
                    f"conflict: {path!r} exists; to replace it pass expected_sha256 from read or stat "
                    f"(currently {_sha(before)})"
                )
            if expected_sha256.lower() != _sha(before):
                raise ToolError(f"conflict: {path!r} has sha256 {_sha(before)}, not the expected one; read it again")
        header = _outcome(root, path, before if existing else None, data, dry_run)
        if not dry_run:
            _commit(parent_fd, name, data, mode, before if existing else None, path)
        return header, _diff(before.decode("utf-8", "replace"), content, path)


def edit_file(
    space: Space,
    root_name: str | None,
    path: str,
    edits: Sequence[Edit],
    *,
    expected_sha256: str | None,
    dry_run: bool,
) -> tuple[dict[str, Any], str]:
    """Apply exact replacements to a text file; each `old` must occur exactly `count` times."""
    root = _writable(space, root_name)
    if not edits:
        raise ToolError("invalid_input: give at least one edit")
    with _parent_for_write(space, root, path, create_dirs=False, dry_run=dry_run) as (parent_fd, name):
        existing = _current(space, parent_fd, name, path) if parent_fd >= 0 else None
        if existing is None:
            raise ToolError(f"not_found: {path!r} does not exist; use write to create it")
        st, before = existing
        if expected_sha256 is not None and expected_sha256.lower() != _sha(before):
            raise ToolError(f"conflict: {path!r} has sha256 {_sha(before)}, not the expected one; read it again")
        if b"\x00" in before[:8192]:
            raise ToolError(f"invalid_input: {path!r} is binary; only text files are edited")
        try:
            text = before.decode("utf-8")
        except UnicodeDecodeError:
            raise ToolError(f"invalid_input: {path!r} is not UTF-8 text") from None
        after = text
        for i, edit in enumerate(edits):
            found = after.count(edit.old)
            if found != edit.count:
                raise ToolError(
                    f"invalid_input: edits[{i}].old occurs {found} times, expected {edit.count}; nothing was changed"
                )
            grown = len(after) + found * (len(edit.new) - len(edit.old))
            if grown > space.limits.max_write_bytes:  # a character is at least one byte: refuse before building it
                raise ToolError(
                    f"invalid_input: edits[{i}] would make the file at least {grown} bytes; the cap is "
                    f"{space.limits.max_write_bytes}; nothing was changed"
                )
            after = after.replace(edit.old, edit.new)
        data = after.encode("utf-8")
        if len(data) > space.limits.max_write_bytes:
            raise ToolError(
                f"invalid_input: the result is {len(data)} bytes; the cap is {space.limits.max_write_bytes}"
            )
        header = _outcome(root, path, before, data, dry_run)
        if not dry_run:
            _commit(parent_fd, name, data, st.st_mode & 0o777, before, path)
        return header, _diff(text, after, path)


def _outcome(root: Root, path: str, before: bytes | None, after: bytes, dry_run: bool) -> dict[str, Any]:
    header: dict[str, Any] = {
        "root": root.name,
        "path": path,
        "dry_run": dry_run,
        "written": not dry_run,
        "created": before is None,
        "sha256_before": None if before is None else _sha(before),
        "sha256_after": _sha(after),
        "bytes": len(after),
    }
    if dry_run:
        header["next"] = "nothing was written; call again with dry_run=false to apply exactly this change"
    return header
