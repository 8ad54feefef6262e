"""`Space`: the roots, caps and policy one files toolset works inside, and the one way to open a path in it."""

from __future__ import annotations

import fnmatch
import hashlib
import os
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from bridge import ToolError

from . import _beneath
from ._beneath import Opened
from ._limits import FileLimits
from ._roots import Root, pick

__all__ = ["Space"]

_CHUNK = 1024 * 1024


@dataclass
class Space:
    """Everything the tools need to resolve and check a path; one per toolset.

    Attributes:
        roots: The served directories by name (first is the default).
        limits: The caps.
        deny: fnmatch patterns; a path with any component matching one is never listed, read or written.
        allow_hardlinks: Serve regular files with more than one hard link (off: such a file may be a second name of
            a file outside the roots).
        use_openat2: Resolve with `openat2` when the kernel has it; False forces the portable walk.
        keeper: Whatever owns the root fds (they close when it is collected), kept alive by the space.
    """

    roots: Mapping[str, Root]
    limits: FileLimits
    deny: Sequence[str]
    allow_hardlinks: bool = False
    use_openat2: bool = _beneath.OPENAT2
    keeper: object = None

    def root(self, name: str | None) -> Root:
        return pick(self.roots, name)

    def denied(self, name: str) -> bool:
        """True when one path component matches the denylist, compared as a case-insensitive filesystem would.

        `.ENV` is `.env`, and so are the Unicode spellings that fold to it: on macOS (APFS) or an ext4/tmpfs
        casefold directory `id_rſa` (long s, U+017F) and `.\u212aey` (Kelvin sign) open `id_rsa` and `.key`, so each
        name is matched lowercased and also NFKC-normalised and case-folded.
        """
        forms = {name.lower(), unicodedata.normalize("NFKC", name).casefold()}
        return any(
            fnmatch.fnmatchcase(form, unicodedata.normalize("NFKC", pattern).casefold())
            or fnmatch.fnmatchcase(form, pattern.lower())
            for pattern in self.deny
            for form in forms
        )

    def check_denied(self, path: str, parts: Sequence[str], *, writing: bool = False) -> None:
        for part in parts:
            if self.denied(part) or (writing and part == ".git"):
                raise ToolError(f"denied_by_policy: {path!r} matches the operator's denylist ({part!r})")

    @contextmanager
    def parent(self, root: Root, path: str, *, writing: bool = False) -> Iterator[tuple[int, str, list[str]]]:
        """The directory fd holding `path`'s last component, the component, and all components."""
        parts = _beneath.split_path(path)
        self.check_denied(path, parts, writing=writing)
        fd = _beneath.walk_to(root.fd, parts[:-1], path, use_openat2=self.use_openat2)
        try:
            yield fd, (parts[-1] if parts else ""), parts
        finally:
            os.close(fd)

    @contextmanager
    def open(self, root: Root, path: str) -> Iterator[Opened]:
        """Open an existing regular file or directory beneath `root` for reading (see `_beneath.open_entry`)."""
        with self.parent(root, path) as (parent_fd, name, _):
            opened = _beneath.open_entry(parent_fd, name, path, allow_hardlinks=self.allow_hardlinks)
            try:
                yield opened
            finally:
                os.close(opened.fd)

    def sha256(self, fd: int, size: int) -> str | None:
        """The sha256 of an open file's first `size` bytes, or None past the hashing cap."""
        if size > self.limits.max_hash_bytes:
            return None
        digest = hashlib.sha256()
        offset = 0
        while offset < size:
            chunk = os.pread(fd, min(_CHUNK, size - offset), offset)
            if not chunk:
                break
            digest.update(chunk)
            offset += len(chunk)
        return digest.hexdigest()


def read_all(fd: int, size: int) -> bytes:
    """Up to `size` bytes from the start of an open file."""
    pieces: list[bytes] = []
    offset = 0
    while offset < size:
        chunk = os.pread(fd, min(_CHUNK, size - offset), offset)
        if not chunk:
            break
        pieces.append(chunk)
        offset += len(chunk)
    return b"".join(pieces)
