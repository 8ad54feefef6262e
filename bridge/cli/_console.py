"""What the `bridge` command writes to the terminal or to a log collector.

Logs always go to stderr (stdout carries command output: definitions, diffs, transcripts). Their format:

- `json`: one JSON object per line (`ts`, `level`, `logger`, `message`, plus the record's extra fields such as
  `session_id` and `tool_use_id`), for collectors. The default when stdout or stderr is not a terminal.
- `live`: on a terminal, a status line kept at the bottom (sessions, calls in flight, done, failed), with warnings
  and errors printed above it. The default on an interactive terminal.
- `text`: plain one-line records, for a terminal without the redrawn status line.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

__all__ = ["LOG_FORMATS", "Console", "JsonFormatter", "format_status", "live_console", "setup_logging"]

LogFormat = Literal["auto", "live", "text", "json"]
LOG_FORMATS: tuple[str, ...] = ("auto", "live", "text", "json")

# Attributes every LogRecord has; anything else on a record came from `extra=` and is worth logging.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with the record's `extra` fields at the top level."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        extras = " ".join(f"{k}={v}" for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_"))
        line = f"{stamp} {record.levelname:<7} {record.getMessage()}" + (f"  [{extras}]" if extras else "")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class Console(logging.Handler):
    """The handler `setup_logging` installs; in `live` mode it also owns the status line.

    Records and status updates may come from worker threads (sync tools log too), so both go through the handler's
    lock and the status line is always redrawn after a record.
    """

    def __init__(self, stream: TextIO, fmt: Literal["live", "text", "json"]) -> None:
        super().__init__()
        self.stream = stream
        self.format_name = fmt
        self.setFormatter(JsonFormatter() if fmt == "json" else _TextFormatter())
        self._status = ""

    @property
    def live(self) -> bool:
        """True when a status line is drawn (an interactive terminal)."""
        return self.format_name == "live"

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            with self._guard():
                self._clear()
                self.stream.write(text + "\n")
                self._draw()
                self.stream.flush()
        except Exception:
            self.handleError(record)

    def status(self, text: str) -> None:
        """Replace the status line (no-op unless live)."""
        if not self.live:
            return
        with self._guard():
            self._clear()
            self._status = text
            self._draw()
            self.stream.flush()

    def echo(self, text: str, stream: TextIO | None = None) -> None:
        """Print a line of command output (stdout by default) without tearing the status line."""
        out = stream or sys.stdout
        with self._guard():
            self._clear()
            self.stream.flush()
            out.write(text + "\n")
            out.flush()
            self._draw()
            self.stream.flush()

    def clear_status(self) -> None:
        """Erase the status line."""
        if self.live and self._status:
            with self._guard():
                self._clear()
                self._status = ""
                self.stream.flush()

    def close_status(self) -> None:
        """Leave the last status on screen as an ordinary line."""
        if self.live and self._status:
            with self._guard():
                self.stream.write("\n")
                self._status = ""
                self.stream.flush()

    def _guard(self) -> threading.RLock:
        assert self.lock is not None  # created by logging.Handler.__init__
        return self.lock

    def _clear(self) -> None:
        if self.live and self._status:
            self.stream.write("\r\x1b[2K")

    def _draw(self) -> None:
        if self.live and self._status:
            self.stream.write(self._status)


def setup_logging(
    fmt: str = "auto",
    level: str = "info",
    *,
    stream: TextIO | None = None,
    isatty: Callable[[], bool] | None = None,
) -> Console:
    """Install one handler on the root logger and return it.

    Args:
        fmt: `auto`, `live`, `text` or `json` (see the module docstring).
        level: A logging level name. The live view shows warnings and up, since its status line says the rest.
        stream: Where records go; stderr by default.
        isatty: Whether we are on an interactive terminal; by default, both stdout and stderr are TTYs.
    """
    stream = stream or sys.stderr
    interactive = isatty() if isatty else (sys.stdout.isatty() and sys.stderr.isatty())
    chosen: Literal["live", "text", "json"]
    if fmt == "auto":
        chosen = "live" if interactive else "json"
    elif fmt in ("live", "text", "json"):
        chosen = fmt  # type: ignore[assignment]
    else:
        raise ValueError(f"unknown log format {fmt!r}; expected one of {', '.join(LOG_FORMATS)}")
    handler = Console(stream, chosen)
    root = logging.getLogger()
    for old in list(root.handlers):
        if isinstance(old, Console):
            root.removeHandler(old)
    root.addHandler(handler)
    numeric = logging.getLevelName(level.upper())
    root.setLevel(numeric if isinstance(numeric, int) else logging.INFO)
    if chosen == "live":
        handler.setLevel(max(root.level, logging.WARNING))
    for noisy in ("httpx", "httpx2", "httpcore", "httpcore2", "uvicorn", "uvicorn.access", "uvicorn.error"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return handler


def format_status(stats: Mapping[str, Any]) -> str:
    """One line for a terminal: sessions, calls running and queued, how calls ended."""
    parts = [
        f"{stats.get('sessions', 0)} session(s)",
        f"{stats.get('running', 0)} running",
        f"{stats.get('queued', 0)} queued",
        f"{stats.get('finished', 0)} done",
    ]
    for key in ("failed", "timed_out", "cancelled", "abandoned_threads"):
        if stats.get(key):
            parts.append(f"{stats[key]} {key.replace('_', ' ')}")
    return "bridge: " + " · ".join(parts)


def live_console() -> Console | None:
    """The `Console` handler `setup_logging` installed on the root logger, if any (the live status line)."""
    root = logging.getLogger()
    return next((h for h in root.handlers if isinstance(h, Console)), None)
