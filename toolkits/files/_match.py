"""Regular-expression matching for content search, in a child process that is killed at the deadline.

Python's `re` backtracks, and a pattern such as `(a+)+$` or `(.*)*x` takes exponential time on a line built for it.
The matcher also holds the GIL while it runs, so matching in a thread of the bridge would freeze the whole process
(every session, heartbeat and lease) until it finished, whatever the tool's timeout says. The pattern comes from
the model and the file text from whoever wrote the file, so both are hostile: the search runs in a separate
interpreter fed one file at a time over a pipe, and the parent (which waits without holding the GIL) kills it when
the call is cancelled or `max_grep_seconds` is spent.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from bridge import ToolError

__all__ = ["Matcher"]

_WORKER = r"""
import json, re, struct, sys
src, dst = sys.stdin.buffer, sys.stdout.buffer
head = json.loads(src.readline())
regex = re.compile(head["pattern"], re.IGNORECASE if head["ignore_case"] else 0)
width = head["width"]
dst.write(b"ready\n"); dst.flush()
while True:
    size = src.read(12)
    if len(size) < 12:
        break
    n, room = struct.unpack(">QI", size)
    text = src.read(n).decode("utf-8")
    found, more = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if regex.search(line):
            if len(found) == room:
                more = True
                break
            found.append([number, line if len(line) <= width else line[:width] + "\u2026"])
    dst.write(json.dumps({"m": found, "more": more}).encode() + b"\n"); dst.flush()
"""


class Matcher:
    """One child interpreter matching `pattern` against the files a search sends it, under a deadline."""

    def __init__(
        self, pattern: str, *, ignore_case: bool, width: int, seconds: float, cancelled: Callable[[], bool]
    ) -> None:
        self._deadline = time.monotonic() + seconds
        self._seconds = seconds
        self._cancelled = cancelled
        self._proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _WORKER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            close_fds=True,
        )
        try:
            head = {"pattern": pattern, "ignore_case": ignore_case, "width": width}
            self._send(json.dumps(head).encode() + b"\n")
            self._reply()
        except BaseException:
            self.close()
            raise

    def _send(self, data: bytes) -> None:
        assert self._proc.stdin is not None
        fd = self._proc.stdin.fileno()
        view = memoryview(data)
        while view:
            self._wait(fd, write=True)
            try:
                view = view[os.write(fd, view[: 1 << 16]) :]
            except BrokenPipeError:
                raise ToolError("upstream_error: the content search stopped unexpectedly") from None

    def _wait(self, fd: int, *, write: bool) -> None:
        while True:
            if self._cancelled():
                raise ToolError("timeout: the content search was cancelled")
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise ToolError(
                    f"timeout: the content search took longer than {self._seconds:g} s (a pattern that backtracks "
                    "badly, or too much text); simplify the pattern or narrow the glob or path"
                )
            ready = (
                select.select([], [fd], [], min(left, 0.1)) if write else select.select([fd], [], [], min(left, 0.1))
            )
            if ready[1] or ready[0]:
                return

    def _reply(self) -> bytes:
        assert self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        data = b""
        while not data.endswith(b"\n"):
            self._wait(fd, write=False)
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise ToolError("upstream_error: the content search stopped unexpectedly")
            data += chunk
        return data

    def search(self, text: str, room: int) -> tuple[list[tuple[int, str]], bool]:
        """The (line number, line) pairs that match, at most `room` of them, and whether more matched."""
        raw = text.encode("utf-8")
        self._send(struct.pack(">QI", len(raw), room) + raw)
        reply: dict[str, Any] = json.loads(self._reply())
        return [(int(n), str(line)) for n, line in reply["m"]], bool(reply["more"])

    def close(self) -> None:
        """Kill the child (it may be stuck in a match) and reap it."""
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        for stream in (self._proc.stdin, self._proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
