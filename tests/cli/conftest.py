"""Helpers for running the `bridge` command as a subprocess, the way users run it."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import NamedTuple

import pytest

from bridge._console import Console
from bridge.cli import main

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SAMPLE = f"{HERE / 'sample_tools.py'}:toolset"


def bridge_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a `python -m bridge` subprocess: the worktree importable, no real API settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def _run_bridge(
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


RunBridge = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run_bridge() -> RunBridge:
    """`run_bridge(*args, env=None, cwd=None, timeout=30)`: run `python -m bridge` to completion."""
    return _run_bridge


@pytest.fixture
def sample_target() -> str:
    """The TARGET of the sample tools (`add`, `slow`) as a file path."""
    return SAMPLE


class Result(NamedTuple):
    """What an in-process `bridge` run returned and printed."""

    returncode: int
    stdout: str
    stderr: str


CLI = Callable[..., Result]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Iterator[CLI]:
    """`cli(*args, env=None)`: run `bridge ARGS` in this process (fast; for cases beyond the subprocess tests)."""

    def run(*args: str, env: Mapping[str, str] | None = None) -> Result:
        for key in [k for k in os.environ if k.startswith("ANTHROPIC_")]:
            monkeypatch.delenv(key)
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exit:  # argparse: usage errors and --help
            code = int(exit.code or 0)
        out, err = capsys.readouterr()
        return Result(code, out, err)

    yield run
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, Console)]:
        root.removeHandler(handler)
