"""Helpers for running the `bridge` command as a subprocess, the way users run it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

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
