"""Helpers to read the database tools' answers in tests: the JSON header line and the body inside the boundary."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from bridge import CallResult

_BOUNDARY = re.compile(r"<(untrusted-data-[0-9a-f]{16})>\n(.*)\n</\1>\Z", re.S)


def answer(result: CallResult) -> tuple[dict[str, Any], Any]:
    """Split a successful result into its header and its body (JSON-decoded when it is JSON)."""
    assert not result.is_error, result.text
    header, _, rest = result.text.partition("\n")
    match = _BOUNDARY.search(rest)
    assert match, result.text
    body = match.group(2)
    try:
        return json.loads(header), json.loads(body)
    except json.JSONDecodeError:
        return json.loads(header), body


def snapshot(directory: Path) -> dict[str, str]:
    """Every file under `directory` with the hash of its bytes: any write or new file changes it."""
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }
