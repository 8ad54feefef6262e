"""Open a path beneath a root directory fd, so nothing outside the root can be named, whatever the path says.

Containment is not a string check on the path: every path is resolved by the kernel relative to a directory fd the
toolset holds for each root, and no symbolic link is ever followed.

* Parent directories are opened with `openat2(root_fd, parent, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
  RESOLVE_NO_MAGICLINKS)` where the kernel has it (Linux 5.6+), else by a walk that opens one component at a time
  with `O_NOFOLLOW | O_DIRECTORY` from the parent's fd. Either way a symlink anywhere in the path (including one
  swapped in during the call) fails with ELOOP/EXDEV instead of being followed.
* The last component is looked at with `fstatat(AT_SYMLINK_NOFOLLOW)` before it is opened, and opened with
  `O_NOFOLLOW | O_NONBLOCK | O_NOCTTY`, then checked again with `fstat` on the open fd: only regular files and
  directories pass, so a FIFO never blocks and a device or socket is never read.
* `..`, absolute paths, NUL, control and invisible formatting characters (bidi overrides), and backslashes are
  refused before the kernel sees the path; nothing is Unicode-normalised, so a look-alike such as `．．／` stays
  an ordinary (missing) name.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import sys
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bridge import ToolError

__all__ = ["OPENAT2", "Opened", "open_dir", "open_parent", "split_path", "walk_to"]

_SYS_OPENAT2 = 437  # the same number on every architecture that has it (asm-generic)
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class _OpenHow(ctypes.Structure):
    _fields_ = (("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64))


def _load_openat2() -> Any:
    if sys.platform != "linux":
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        syscall = libc.syscall
    except (OSError, AttributeError):  # pragma: no cover - no libc
        return None
    syscall.restype = ctypes.c_long
    how = _OpenHow(_DIR_FLAGS, 0, _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS)
    fd = syscall(_SYS_OPENAT2, ctypes.c_int(-100), b".", ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
    if fd < 0:  # ENOSYS (old kernel) or EPERM (a seccomp filter): use the walk
        return None
    os.close(fd)
    return syscall


_syscall = _load_openat2()
OPENAT2 = _syscall is not None
"""True when the kernel resolves paths beneath the root itself (`openat2`); else the component walk is used."""


def split_path(path: str) -> list[str]:
    """The components of a root-relative path, refusing anything that could name a place outside the root.

    Raises:
        ToolError: the path is absolute, has a `..` component, a NUL or control character, or a backslash.
    """
    if "\x00" in path:
        raise ToolError("invalid_input: the path contains a NUL byte")
    if any(unicodedata.category(c) in ("Cc", "Cf") for c in path):
        raise ToolError("invalid_input: the path contains a control or invisible formatting character")
    if "\\" in path:
        raise ToolError("invalid_input: use / to separate path components, not \\")
    if path.startswith("/") or (len(path) >= 2 and path[1] == ":" and path[0].isalpha()):
        raise ToolError(
            f"invalid_input: {path!r} is absolute; paths are relative to a root (see list_roots), e.g. 'docs/a.md'"
        )
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ToolError(f"invalid_input: {path!r} contains '..'; name the path from the root down")
    return parts


def _openat2(dir_fd: int, rel: str) -> int:
    assert _syscall is not None
    how = _OpenHow(_DIR_FLAGS, 0, _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS)
    fd = int(_syscall(_SYS_OPENAT2, ctypes.c_int(dir_fd), os.fsencode(rel), ctypes.byref(how), ctypes.sizeof(how)))
    if fd < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), rel)
    return fd


def _denied_os_error(exc: OSError, shown: str) -> ToolError:
    """Turn a resolution failure into a message the model can act on (never a path outside the root)."""
    if exc.errno == errno.ENOENT:
        return ToolError(f"not_found: {shown!r} does not exist")
    if exc.errno in (errno.ELOOP, errno.EXDEV, errno.EMLINK):
        return ToolError(f"denied_by_policy: {shown!r} goes through a symbolic link; links are not followed")
    if exc.errno == errno.ENOTDIR:
        return ToolError(f"not_found: a parent of {shown!r} is not a directory")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return ToolError(f"denied_by_policy: permission denied for {shown!r}")
    if exc.errno == errno.ENAMETOOLONG:
        return ToolError("invalid_input: the path is too long")
    return ToolError(f"upstream_error: cannot open {shown!r}: {os.strerror(exc.errno or 0)}")


def walk_to(root_fd: int, parts: list[str], shown: str, *, use_openat2: bool = OPENAT2) -> int:
    """Open the directory `parts` names beneath `root_fd` (the root itself for no parts), following no links.

    Args:
        root_fd: The root's directory fd (held by the toolset).
        parts: Components from `split_path`.
        shown: The path as the model wrote it, for messages.
        use_openat2: False forces the portable walk (tests run the corpus through both).

    Returns:
        A new directory fd the caller closes.
    """
    try:
        if not parts:
            return os.open(".", _DIR_FLAGS, dir_fd=root_fd)
        if use_openat2 and OPENAT2:
            return _openat2(root_fd, "/".join(parts))
        fd = os.open(".", _DIR_FLAGS, dir_fd=root_fd)
        try:
            for part in parts:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd
    except OSError as exc:
        raise _denied_os_error(exc, shown) from None


def kind(mode: int) -> str:
    """A file type as the tools name it."""
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "other"  # pragma: no cover


class Opened:
    """An open file or directory beneath a root: its fd, its `fstat`, and where it is (parent fd plus name)."""

    def __init__(self, fd: int, st: os.stat_result, parent_fd: int, name: str) -> None:
        self.fd, self.st, self.parent_fd, self.name = fd, st, parent_fd, name

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)


@contextmanager
def open_parent(root_fd: int, path: str, *, use_openat2: bool = OPENAT2) -> Iterator[tuple[int, str]]:
    """The fd of the directory holding `path`'s last component, and that component ("" for the root itself)."""
    parts = split_path(path)
    parent = walk_to(root_fd, parts[:-1], path, use_openat2=use_openat2)
    try:
        yield parent, (parts[-1] if parts else "")
    finally:
        os.close(parent)


@contextmanager
def open_dir(root_fd: int, path: str, *, use_openat2: bool = OPENAT2) -> Iterator[int]:
    """A directory fd for `path` beneath the root (no links followed anywhere)."""
    fd = walk_to(root_fd, split_path(path), path, use_openat2=use_openat2)
    try:
        yield fd
    finally:
        os.close(fd)


def open_entry(parent_fd: int, name: str, shown: str, *, allow_hardlinks: bool) -> Opened:
    """Open an existing regular file or directory `name` in `parent_fd` for reading, refusing everything else.

    The type is checked before the open (no FIFO, device or socket is ever opened for reading by name) and again on
    the open fd (the name may have been swapped in between; `O_NOFOLLOW` refuses a swapped-in link).

    Raises:
        ToolError: missing, a link, a special file, or a regular file with several hard links.
    """
    if not name:
        fd = os.open(".", _DIR_FLAGS, dir_fd=parent_fd)
        return Opened(fd, os.fstat(fd), parent_fd, name)
    try:
        before = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except OSError as exc:
        raise _denied_os_error(exc, shown) from None
    check_type(before, shown, allow_hardlinks=allow_hardlinks)
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(name, flags | (os.O_DIRECTORY if stat.S_ISDIR(before.st_mode) else 0), dir_fd=parent_fd)
    except OSError as exc:
        raise _denied_os_error(exc, shown) from None
    try:
        st = os.fstat(fd)
        check_type(st, shown, allow_hardlinks=allow_hardlinks)
        if (st.st_dev, st.st_ino) != (before.st_dev, before.st_ino):
            raise ToolError(f"upstream_error: {shown!r} changed while it was being opened; try again")
    except BaseException:
        os.close(fd)
        raise
    return Opened(fd, st, parent_fd, name)


def check_type(st: os.stat_result, shown: str, *, allow_hardlinks: bool) -> None:
    """Refuse anything but a directory or a regular file with one link (unless hard links are allowed).

    A hard link inside a root to a file outside it looks exactly like a file of the root, so a regular file with
    more than one link is refused by default: it might be the other name of a file the operator never shared.
    """
    found = kind(st.st_mode)
    if found == "symlink":
        raise ToolError(f"denied_by_policy: {shown!r} is a symbolic link; links are not followed")
    if found not in ("file", "directory"):
        raise ToolError(f"denied_by_policy: {shown!r} is a {found}, not a regular file; it is never opened")
    if found == "file" and st.st_nlink > 1 and not allow_hardlinks:
        raise ToolError(
            f"denied_by_policy: {shown!r} has {st.st_nlink} hard links; a file with other names may live outside "
            "the root, so it is not served"
        )
