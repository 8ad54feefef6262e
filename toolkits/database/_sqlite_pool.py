"""Worker processes for SQLite calls, so a statement that overruns its deadline is killed, not abandoned.

SQLite's progress handler stops a statement only between virtual-machine steps. Work inside one step never reaches
it: a quadratic `instr` or `LIKE` over long strings, a planner exploring a twenty-way self-join during prepare. A
thread cannot be killed, so every call runs in a small worker process (`_sqlite_worker.py`), and the calling thread
waits for its answer with the call's deadline plus `GRACE`. Past that, or as soon as the call is cancelled, the
process is killed: no CPU is spent on it afterwards, and its memory is returned to the system at once.

Workers are reused between calls (a pool of idle processes shared by every SQLite source in this process), so the
cost of a process start is paid only after a kill. They exit when their stdin closes, so none outlives its parent.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = ["GRACE", "Overrun", "WorkerDied", "WorkerPool", "pool"]

GRACE = 0.1
"""Seconds a statement may overrun its deadline before its worker process is killed."""

_POLL = 0.02
_MAX_IDLE = 4
_SCRIPT = Path(__file__).with_name("_sqlite_worker.py")


class Overrun(Exception):
    """The worker did not answer by the hard deadline (or the call was cancelled); it was killed."""

    def __init__(self, cancelled: bool) -> None:
        super().__init__("cancelled" if cancelled else "overrun")
        self.cancelled = cancelled


class WorkerDied(Exception):
    """The worker process ended without answering (killed by the memory backstop, or a crash)."""


class Worker:
    """One worker process and its pipes."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", str(_SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            start_new_session=True,
        )
        self.healthy = True
        self.cpu = 0.0
        self.cpu_before = 0.0

    @property
    def _stdin(self) -> IO[bytes]:
        assert self.proc.stdin is not None
        return self.proc.stdin

    @property
    def _stdout(self) -> IO[bytes]:
        assert self.proc.stdout is not None
        return self.proc.stdout

    def send(self, message: dict[str, Any]) -> None:
        try:
            self._stdin.write(json.dumps(message).encode() + b"\n")
            self._stdin.flush()
        except OSError as exc:
            self.kill()
            raise WorkerDied() from exc

    def receive(self, until: float, cancelled: Callable[[], bool] | None) -> dict[str, Any]:
        """The next answer, or a kill at `until` or on cancellation."""
        while True:
            if cancelled is not None and cancelled():
                self.kill()
                raise Overrun(cancelled=True)
            remaining = until - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise Overrun(cancelled=False)
            ready, _, _ = select.select([self._stdout], [], [], min(_POLL, remaining))
            if ready:
                line = self._stdout.readline()
                if not line:
                    self.kill()
                    raise WorkerDied()
                answer: dict[str, Any] = json.loads(line)
                return answer

    def kill(self) -> None:
        """End the process now and reap it (its CPU time stops here); `cpu` is then what it used in all."""
        self.healthy = False
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                _, status, usage = os.wait4(self.proc.pid, 0)
            except ChildProcessError:
                pass
            else:
                self.cpu = usage.ru_utime + usage.ru_stime
                self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()

    def retire(self) -> None:
        """Close stdin so the idle process exits by itself, then reap it."""
        self.healthy = False
        try:
            self._stdin.close()
            self.proc.wait(timeout=1)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()


class WorkerPool:
    """Idle workers shared by every SQLite source in the process."""

    def __init__(self) -> None:
        self._idle: list[Worker] = []
        self._lock = threading.Lock()
        self.spawned = 0
        self.killed = 0
        self.killed_cpu = 0.0
        """CPU seconds used in all by the workers this pool killed (for tests and diagnostics)."""

    @contextmanager
    def _worker(self) -> Iterator[Worker]:
        with self._lock:
            worker = self._idle.pop() if self._idle else None
        if worker is None or worker.proc.poll() is not None:
            worker = Worker()
            self.spawned += 1
        worker.cpu_before = _cpu_so_far(worker.proc.pid)
        try:
            yield worker
        finally:
            keep = worker.healthy and worker.proc.poll() is None
            if keep:
                with self._lock:
                    keep = len(self._idle) < _MAX_IDLE
                    if keep:
                        self._idle.append(worker)
            if not keep:
                was_healthy = worker.healthy
                worker.retire()
                if not was_healthy:
                    self.killed += 1
                    self.killed_cpu += max(0.0, worker.cpu - worker.cpu_before)

    def call(
        self,
        request: dict[str, Any],
        *,
        timeout: float,
        cancelled: Callable[[], bool] | None,
        decide: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        """Send one request and wait for its answer, killing the worker at `timeout + GRACE` or on cancellation.

        `decide` is asked whether a write may commit, after the statement ran; if it raises, the write is rolled
        back before the exception propagates.

        Raises:
            Overrun: the deadline passed or the call was cancelled; the worker was killed.
            WorkerDied: the worker ended without answering.
        """
        until = time.monotonic() + timeout + GRACE
        with self._worker() as worker:
            worker.send(request)
            answer = worker.receive(until, cancelled)
            while "pending" in answer:
                try:
                    commit = decide(answer["pending"]) if decide is not None else False
                except BaseException:
                    worker.send({"commit": False})
                    worker.receive(until, cancelled)
                    raise
                worker.send({"commit": commit})
                answer = worker.receive(until, cancelled)
            return answer

    def close(self) -> None:
        """Retire every idle worker (at interpreter exit)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.retire()


def _cpu_so_far(pid: int) -> float:
    """CPU seconds a live process has used (Linux /proc; 0 elsewhere), to tell one call's share of a reused worker."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


pool = WorkerPool()
atexit.register(pool.close)
