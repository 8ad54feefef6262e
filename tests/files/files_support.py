"""Helpers for the files pack tests: split an answer, and snapshot a directory to prove nothing outside changed."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from bridge import CallResult

_BOUNDARY = re.compile(r"<(untrusted-data-[0-9a-f]{16})>\n(.*)\n</\1>\Z", re.S)
SECRET = "CANARY-7f3a-outside-the-root"


def answer(result: CallResult) -> tuple[dict[str, Any], Any]:
    """Split a successful result into its header and its fenced body (JSON-decoded when it is JSON)."""
    assert not result.is_error, result.text
    header, _, rest = result.text.partition("\n")
    match = _BOUNDARY.search(rest)
    assert match, result.text
    body = match.group(2)
    try:
        return json.loads(header), json.loads(body)
    except json.JSONDecodeError:
        return json.loads(header), body


def snapshot(directory: Path) -> dict[str, tuple[str, int, int]]:
    """Every entry under `directory` (links not followed) with its content hash, mtime and link count."""
    state: dict[str, tuple[str, int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(directory):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath, name)
            st = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() and not path.is_symlink() else ""
            state[str(path.relative_to(directory))] = (digest, st.st_mtime_ns, st.st_nlink)
    return state
