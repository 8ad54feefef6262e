"""Two-phase writes: a preview runs the statement and rolls back; only a matching, fresh preview id may commit.

Managed Agents offers no approval step for custom tools, so the execute tool supplies one: the model (or a human
reading the transcript) sees how many rows a change touches before it happens, and the commit must name that preview.
A preview id is single-use, expires, and is bound to the exact SQL and parameters, so a commit cannot apply a
different statement than the one previewed. The commit re-checks the row count and refuses if the data moved.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bridge import ToolError

from ._source import Param

__all__ = ["Preview", "PreviewBook"]

_KEEP = 256  # previews remembered at once; the oldest are forgotten first


@dataclass(frozen=True)
class Preview:
    """An issued preview: what ran, how many rows it affected, until when it may be committed."""

    id: str
    fingerprint: str
    rowcount: int
    expires_at: float


def fingerprint(sql: str, params: Sequence[Param]) -> str:
    """A stable hash of the statement and its parameters (types included: 1 and "1" differ)."""
    return hashlib.sha256(json.dumps([sql, list(params)]).encode()).hexdigest()


class PreviewBook:
    """The previews issued by one source, safe to use from several worker threads."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._previews: OrderedDict[str, Preview] = OrderedDict()
        self._lock = threading.Lock()

    def issue(self, sql: str, params: Sequence[Param], rowcount: int) -> Preview:
        """Record a preview that affected `rowcount` rows and return it with a fresh id."""
        preview = Preview(
            f"pv_{secrets.token_urlsafe(12)}", fingerprint(sql, params), rowcount, self._clock() + self.ttl
        )
        with self._lock:
            self._previews[preview.id] = preview
            while len(self._previews) > _KEEP:
                self._previews.popitem(last=False)
        return preview

    def take(self, preview_id: str, sql: str, params: Sequence[Param]) -> Preview:
        """Consume a preview for a commit of `sql` with `params`.

        The id is consumed even when the commit later fails: a failed or refused commit needs a fresh preview, so
        one preview can never commit twice, even from two calls racing.

        Raises:
            ToolError: unknown, already used, expired, or issued for a different statement or parameters.
        """
        with self._lock:
            preview = self._previews.pop(preview_id, None)
        if preview is None:
            raise ToolError(
                f"invalid_input: unknown or already used preview_id {preview_id!r}; run mode='preview' first"
            )
        if self._clock() > preview.expires_at:
            raise ToolError("invalid_input: the preview expired; run mode='preview' again")
        if preview.fingerprint != fingerprint(sql, params):
            raise ToolError(
                "invalid_input: sql and params differ from the preview; commit exactly what was previewed, or preview "
                "the new statement"
            )
        return preview
