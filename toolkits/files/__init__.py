"""Files tools for Claude Managed Agents: list, read, find, grep and (opt-in) write local files, never outside roots.

```python
from toolkits.files import files_toolset

docs = files_toolset({"docs": "./docs", "data": "./data"}, writable=["data"])   # fs_list_roots, fs_list, fs_stat,
                                                                                # fs_read, fs_find, fs_grep,
                                                                                # fs_write, fs_edit (data only)
```

What holds, and how (each tested by the escape corpus in `tests/files/`, through `openat2` and the portable walk):

```
..  absolute paths  NUL  \\      refused before the kernel sees the path; nothing is Unicode-normalised
symlinks (also swapped mid-call) every component opened beneath the root's directory fd with no link followed:
/proc/self/root (magic links)    openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS), or a walk
                                 of O_NOFOLLOW | O_DIRECTORY opens from the parent's fd
FIFOs, devices, sockets          type checked with fstatat(AT_SYMLINK_NOFOLLOW) before opening, O_NONBLOCK, then
                                 fstat on the open fd: only regular files and directories are served
hard links                       a regular file with st_nlink > 1 is refused (it may be a second name of a file
                                 outside the roots); writes replace the directory entry, never write through
huge / binary files              pages of at most max_read_bytes; NUL bytes or non-UTF-8 text are refused by name
secrets                          .env, keys, .ssh, .aws ... hidden and refused (the `deny` list); .git not writable
```

File text, names and diffs reach the model inside the untrusted-data boundary (`toolkits._fence`).
Writes are opt-in per root, previewed with `dry_run`, conditional on `expected_sha256`, and atomic (temp file,
fsync, link or rename).
"""

from __future__ import annotations

from ._limits import DEFAULT_DENY, FileLimits
from ._toolset import files_toolset

__all__ = ["DEFAULT_DENY", "FileLimits", "files_toolset"]
