"""The directories a files toolset serves: each opened once, held as a directory fd, named for the model."""

from __future__ import annotations

import contextlib
import os
import re
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bridge import ConfigError, ToolError

__all__ = ["Root", "RootsArg", "open_roots"]

RootsArg = str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | Mapping[str, str | os.PathLike[str]]
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True)
class Root:
    """One served directory. `fd` is opened at construction and every path is resolved beneath it.

    The fd pins the directory itself: renaming or replacing the configured path later does not move the root.
    """

    name: str
    path: Path
    fd: int
    writable: bool


def _close(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def open_roots(roots: RootsArg, writable: bool | Sequence[str], owner: object) -> dict[str, Root]:
    """Open every root; their fds are closed when `owner` is garbage-collected.

    Args:
        roots: One directory, a list (named by their last component), or a mapping of name to directory.
        writable: True for every root, or the names of the writable roots.
        owner: The object whose lifetime holds the fds.

    Raises:
        ConfigError: a root is missing, not a directory, duplicated, or a name is unusable.
    """
    if isinstance(roots, str | os.PathLike):
        roots = [roots]
    if isinstance(roots, Mapping):
        named = [(str(name), Path(path)) for name, path in roots.items()]
    elif isinstance(roots, Sequence):
        named = [(Path(path).resolve().name or "root", Path(path)) for path in roots]
    else:
        raise ConfigError(f"roots must be a directory, a list of directories or a table, got {type(roots).__name__}")
    if not named:
        raise ConfigError("roots is empty: give at least one directory to serve")
    problems: list[str] = []
    seen: set[str] = set()
    for name, path in named:
        if not _NAME.match(name):
            problems.append(f"root name {name!r}: use 1-64 letters, digits, '_', '-' or '.'")
        if name in seen:
            problems.append(f"two roots are named {name!r}; give roots as a table to name them")
        seen.add(name)
        if not path.is_dir():
            problems.append(f"root {name!r}: {str(path)!r} is not an existing directory")
    all_writable = writable is True
    if not isinstance(writable, bool):
        if isinstance(writable, str):
            writable = [writable]
        problems += [f"writable names {w!r}, which is not a root" for w in writable if w not in seen]
    if problems:
        raise ConfigError(problems)
    opened: dict[str, Root] = {}
    fds: list[int] = []
    for name, path in named:
        real = path.resolve(strict=True)
        fd = os.open(real, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fds.append(fd)
        rw = all_writable or (not isinstance(writable, bool) and name in writable)
        opened[name] = Root(name, real, fd, rw)
    weakref.finalize(owner, _close, fds)
    return opened


def pick(roots: Mapping[str, Root], name: str | None) -> Root:
    """The root the model named, or the first one when it named none."""
    if name is None:
        return next(iter(roots.values()))
    root = roots.get(name)
    if root is None:
        raise ToolError(f"invalid_input: no root named {name!r}; roots: {', '.join(roots)}")
    return root
