"""Helpers for the CLI and fleet tests: run `bridge` as a subprocess as users do, and watch a daemon's log lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent / "cli"
SAMPLE = f"{HERE / 'sample_tools.py'}:toolset"


def bridge_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a `python -m bridge` subprocess: the worktree importable, no real API settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def run_bridge(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run `python -m bridge ARGS` to completion and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args],
        env=bridge_env(env),
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class Daemon:
    """A `bridge run` subprocess whose JSON log lines (stderr) are collected as they arrive."""

    def __init__(self, args: list[str], env: Mapping[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bridge", "run", *args, "--log-format", "json"],
            env=bridge_env(env),
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def records(self) -> list[dict[str, Any]]:
        """Every line so far, parsed (a line that is not JSON becomes `{"message": line}`)."""
        parsed = []
        for line in list(self.lines):
            try:
                parsed.append(json.loads(line))
            except json.JSONDecodeError:
                parsed.append({"message": line})
        return parsed

    def wait_for(self, message: str, timeout: float = 15) -> dict[str, Any]:
        """The first log record whose message starts with `message`, waiting for it to be written."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = next((r for r in self.records() if str(r.get("message", "")).startswith(message)), None)
                if found is not None:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._reader.is_alive():
                    raise AssertionError(f"no log line {message!r}; got:\n" + "\n".join(self.lines))
                self._changed.wait(remaining)

    def send(self, sig: int) -> None:
        """Send a signal without waiting."""
        self.proc.send_signal(sig)

    def stop(self, sig: int, timeout: float = 15) -> int:
        """Send `sig` and wait for the process to exit; returns its exit code."""
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code

    def kill(self) -> None:
        """Make sure the process is gone and its pipe closed."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(5)
        if self.proc.stderr:
            self.proc.stderr.close()
