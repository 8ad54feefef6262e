"""The caps every files toolset applies, in one frozen object: the operator's word, tool arguments choose inside it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from bridge import ConfigError

__all__ = ["DEFAULT_DENY", "FileLimits"]

DEFAULT_DENY = (
    ".env",
    ".env.*",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    ".ssh",
    ".aws",
    ".gnupg",
    ".netrc",
    ".git-credentials",
    ".envrc",
    ".pgpass",
    ".npmrc",
    ".pypirc",
    ".vault-token",
    ".kube",
    ".docker",
    "*.keystore",
    "*.jks",
)
"""Names (fnmatch patterns, matched on every path component) that are never listed, read or written."""


@dataclass(frozen=True)
class FileLimits:
    """Caps for reads, listings, searches and writes.

    Attributes:
        max_read_bytes: The most bytes one read returns; the model may ask for less. Longer files are read in pages
            (`offset` / `next_offset`).
        max_hash_bytes: Files up to this size get a sha256 in `stat` and `read` (used by `expected_sha256`).
        max_line_scan_bytes: A line-range read scans at most this far into a file; past it the model is told to
            read by byte offset.
        max_list_entries: The most entries a listing or filename search may return.
        max_walk_entries: The most directory entries a listing or search may visit before it stops (marked).
        max_depth: The deepest a listing or search may descend.
        max_grep_matches: The most matching lines a content search may return.
        max_grep_file_bytes: Larger files are skipped by content search (reported).
        max_grep_bytes: Total bytes a content search may read before it stops (marked).
        max_line_chars: Lines longer than this are cut in search results.
        max_grep_seconds: The longest one content search may take; the regular expression runs in a child
            process that is killed then (a backtracking pattern cannot freeze the bridge).
        max_write_bytes: The largest content a write or edit may produce.
    """

    max_read_bytes: int = 256 * 1024
    max_hash_bytes: int = 64 * 1024 * 1024
    max_line_scan_bytes: int = 16 * 1024 * 1024
    max_list_entries: int = 1000
    max_walk_entries: int = 20_000
    max_depth: int = 8
    max_grep_matches: int = 500
    max_grep_file_bytes: int = 4 * 1024 * 1024
    max_grep_bytes: int = 64 * 1024 * 1024
    max_line_chars: int = 500
    max_grep_seconds: int = 30
    max_write_bytes: int = 4 * 1024 * 1024

    def __post_init__(self) -> None:
        problems = [
            f"FileLimits.{f.name} must be a positive integer, got {getattr(self, f.name)!r}"
            for f in fields(self)
            if isinstance(getattr(self, f.name), bool)
            or not isinstance(getattr(self, f.name), int)
            or getattr(self, f.name) <= 0
        ]
        if problems:
            raise ConfigError(problems)

    @classmethod
    def coerce(cls, value: FileLimits | Mapping[str, Any] | None) -> FileLimits:
        """`FileLimits` from itself, a mapping of its fields (a `bridge.toml` table), or None for the defaults."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            known = {f.name for f in fields(cls)}
            unknown = sorted(set(value) - known)
            if unknown:
                raise ConfigError(
                    f"unknown FileLimits field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
                )
            return cls(**value)
        raise ConfigError(f"limits must be FileLimits or a table of its fields, got {type(value).__name__}")
