"""Pinning MCP tool definitions against rug pulls: a lock file of what each server's tools looked like when approved.

```json
{"version": 1, "servers": {"time": {"get_current_time": {"sha256": "...", "definition": {...}}}}}
```

A definition is what the server sent for a tool (`name`, `description`, `inputSchema`, `annotations`); its hash is
taken over canonical JSON. The first time a server is seen, all its tools are pinned (trust on first use). After
that, a tool whose definition changed is refused (it keeps its pinned definition, and every call gets an error saying
so), and a tool the server added is not served, until an operator runs `bridge mcp pin`, which shows the diff and
accepts it. The file is small, human-readable JSON, meant to be reviewed and committed next to `bridge.toml`.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge import ConfigError

__all__ = ["PinCheck", "PinFile", "definition_hash"]

Definition = dict[str, Any]


def _canonical(definition: Mapping[str, Any]) -> str:
    return json.dumps(definition, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def definition_hash(definition: Mapping[str, Any]) -> str:
    """The SHA-256 of a tool definition's canonical JSON."""
    return hashlib.sha256(_canonical(definition).encode("utf-8")).hexdigest()


@dataclass
class PinCheck:
    """A server's current tools against its pins."""

    first_use: bool
    """The server has no pins yet (its tools get pinned as they are)."""
    changed: dict[str, Definition] = field(default_factory=dict)
    """Tool -> its pinned definition, for tools whose definition differs from the pin."""
    added: list[str] = field(default_factory=list)
    """Tools the server offers that were never pinned."""
    removed: list[str] = field(default_factory=list)
    """Pinned tools the server no longer offers."""

    @property
    def clean(self) -> bool:
        """Nothing to review."""
        return not (self.changed or self.added or self.removed)


class PinFile:
    """The lock file (`bridge.mcp.lock` next to `bridge.toml` by default). Read on every check, written atomically."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"PinFile({str(self.path)!r})"

    def load(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Server -> tool -> `{"sha256", "definition"}`; empty when the file does not exist.

        Raises:
            ConfigError: The file is not a pin file.
        """
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ConfigError(f"MCP pin file {str(self.path)!r} cannot be read: {exc}") from None
        servers = data.get("servers") if isinstance(data, dict) else None
        if not isinstance(servers, dict):
            raise ConfigError(f"MCP pin file {str(self.path)!r} is not a pin file (no 'servers' object)")
        return servers

    def pinned(self, server: str) -> dict[str, Definition] | None:
        """The pinned definitions of one server, or None when it has never been pinned."""
        entry = self.load().get(server)
        if entry is None:
            return None
        return {name: dict(pin.get("definition") or {}) for name, pin in entry.items()}

    def check(self, server: str, current: Mapping[str, Definition]) -> PinCheck:
        """Compare a server's current definitions (by tool name) with its pins."""
        entry = self.load().get(server)
        if entry is None:
            return PinCheck(first_use=True)
        check = PinCheck(first_use=False)
        for name, definition in current.items():
            pin = entry.get(name)
            if pin is None:
                check.added.append(name)
            elif pin.get("sha256") != definition_hash(definition):
                check.changed[name] = dict(pin.get("definition") or {})
        check.removed = [name for name in entry if name not in current]
        return check

    def record(self, server: str, current: Mapping[str, Definition]) -> None:
        """Pin exactly `current` for `server` (replacing its previous pins), keeping the other servers'."""
        servers = self.load()
        servers[server] = {name: {"sha256": definition_hash(d), "definition": d} for name, d in sorted(current.items())}
        text = json.dumps({"version": 1, "servers": dict(sorted(servers.items()))}, indent=2, ensure_ascii=False)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=self.path.name, dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text + "\n")
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def diff(self, server: str, current: Mapping[str, Definition]) -> str:
        """A unified diff, pinned -> current, of every tool that differs (empty when nothing does)."""
        pinned = self.pinned(server) or {}
        chunks: list[str] = []
        for name in sorted(set(pinned) | set(current)):
            old, new = pinned.get(name), current.get(name)
            if old is not None and new is not None and definition_hash(old) == definition_hash(new):
                continue
            before = json.dumps(old, indent=2, sort_keys=True).splitlines() if old is not None else []
            after = json.dumps(new, indent=2, sort_keys=True).splitlines() if new is not None else []
            label = f"{server}/{name}"
            lines = difflib.unified_diff(
                before,
                after,
                f"pinned {label}" if old is not None else "/dev/null",
                f"server {label}" if new is not None else "/dev/null",
                lineterm="",
            )
            chunks.append("\n".join(lines))
        return "\n".join(chunks)
