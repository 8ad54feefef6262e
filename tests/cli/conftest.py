"""Fixtures for the CLI tests."""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Callable, Iterator, Mapping
from typing import NamedTuple

import pytest
from bridge_cli_support import SAMPLE
from bridge_cli_support import run_bridge as _run_bridge

from bridge.cli import main
from bridge.cli._console import Console

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
