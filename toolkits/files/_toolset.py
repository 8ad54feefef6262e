"""`files_toolset`: the files tools over one or more root directories."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bridge import Toolset

from . import _beneath
from ._limits import DEFAULT_DENY, FileLimits
from ._roots import RootsArg, open_roots
from ._space import Space
from ._tools import build_toolset

__all__ = ["files_toolset"]


def files_toolset(
    roots: RootsArg,
    *,
    writable: bool | Sequence[str] = False,
    limits: FileLimits | Mapping[str, Any] | None = None,
    deny: Sequence[str] = DEFAULT_DENY,
    allow_hardlinks: bool = False,
    prefix: str | None = "fs",
    name: str | None = None,
    timeout: float = 60.0,
    use_openat2: bool = True,
) -> Toolset:
    """Serve directories to the model: list, stat, read, find by name, grep, and (opt-in) write and edit.

    Args:
        roots: A directory, a list of directories (named by their last component), or a mapping of name to
            directory. Each is opened once; the model names paths relative to a root.
        writable: True makes every root writable; a list names the writable roots. Adds the write and edit tools.
        limits: Caps on reads, listings, searches and writes: `FileLimits` or a table of its fields.
        deny: fnmatch patterns matched on every path component; matches are never listed, read or written.
            `DEFAULT_DENY` hides `.env*`, key files, `.ssh`, `.aws` and the like; `[]` serves everything.
        allow_hardlinks: Serve regular files that have more than one hard link. Off by default: such a file may be a
            second name of a file outside the roots. Writes never go through a hard link either way.
        prefix: Prepended to each tool name (`fs` gives `fs_read`); None or "" for bare names.
        name: The toolset's label; defaults to `files:<root names>`.
        timeout: Seconds a call may run.
        use_openat2: Resolve with `openat2` when the kernel offers it (False forces the portable walk).

    Raises:
        ConfigError: a root is missing or not a directory, names clash, or a limit is invalid.
    """
    caps = FileLimits.coerce(limits)
    keeper = _Keeper()  # the tools hold the space, the space holds this: the root fds live as long as the tools
    opened = open_roots(roots, writable, keeper)
    space = Space(opened, caps, tuple(deny), allow_hardlinks, use_openat2 and _beneath.OPENAT2, keeper)
    return build_toolset(space, name=name or f"files:{','.join(opened)}", prefix=prefix, timeout=timeout)


class _Keeper:
    """Owns the root fds: they are closed when it is collected."""
