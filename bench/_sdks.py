"""The two SDK arms: the oldest `anthropic` tool-bridge supports (its lower bound) and the newest, each at its best.

* `sdk`: the lower bound of `anthropic` in pyproject.toml (2.10), `tool_runner` as its docs show it (it has no
  concurrency setting). The README's ratios are against this arm, as they always were.
* `sdk_newest`: the newest `anthropic` on the package index, its `tool_runner` at its best setting: every option it
  offers for running calls at once turned all the way up (`max_concurrent_calls=None`, no limit, where it exists).

Each arm's worker runs on an interpreter that has that SDK: this one when its `anthropic` is the right version, else a
virtual environment made on first use and kept in a cache (`$BENCH_VENVS`, else `$XDG_CACHE_HOME/tool-bridge/bench`,
else `~/.cache/tool-bridge/bench`) with only the SDK and anyio (the workers import nothing else of ours for the SDK
side). The newest one is upgraded when its last check is more than a day old. `BENCH_NEWEST_SDK_PYTHON=/path/python`
names an interpreter to use instead. The version each worker really imported is what the report prints.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFRESH_SECONDS = 24 * 3600


@dataclass(frozen=True)
class SdkArm:
    """Where one SDK arm's worker runs and how its runner is set."""

    label: str
    python: str
    worker_args: tuple[str, ...] = ()


def oldest_supported() -> str:
    """The lower bound of `anthropic` in pyproject.toml (`2.10`)."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (spec,) = [d for d in deps if re.match(r"anthropic\b", d)]
    found = re.search(r">=\s*([0-9.]+)", spec)
    if found is None:
        raise RuntimeError(f"no lower bound in {spec!r}")
    return found.group(1)


def cache_dir() -> Path:
    if os.environ.get("BENCH_VENVS"):
        return Path(os.environ["BENCH_VENVS"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tool-bridge" / "bench"


def _venv(name: str, requirement: str, *, refresh: bool, log: Callable[[str], None]) -> str:
    """The python of a cached venv with `requirement` and anyio, made (or upgraded when `refresh`) as needed."""
    home = cache_dir() / name
    python = home / "bin" / "python"
    stamp = home / ".checked"
    fresh = stamp.exists() and time.time() - stamp.stat().st_mtime < REFRESH_SECONDS
    if python.exists() and (fresh or not refresh):
        return str(python)
    if not python.exists():
        log(f"making a venv for the SDK arm at {home} ({requirement})")
        subprocess.run([sys.executable, "-m", "venv", str(home)], check=True)
    else:
        log(f"upgrading the SDK arm's venv at {home} ({requirement})")
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--upgrade"]
    subprocess.run([*pip, requirement, "anyio"], check=True, stdout=subprocess.DEVNULL)
    stamp.touch()
    return str(python)


def _current_anthropic() -> str | None:
    try:
        return importlib.metadata.version("anthropic")
    except importlib.metadata.PackageNotFoundError:
        return None


def resolve(log: Callable[[str], None]) -> dict[str, SdkArm | str]:
    """Both SDK arms, or for one that cannot be set up (no network for pip, say), why not."""
    arms: dict[str, SdkArm | str] = {}
    oldest = oldest_supported()
    try:
        current = _current_anthropic()
        if current is not None and (current == oldest or current.startswith(oldest + ".")):
            python = sys.executable
        else:
            python = _venv(f"anthropic-{oldest}", f"anthropic=={oldest}.*", refresh=False, log=log)
        arms["sdk"] = SdkArm("sdk", python)
    except (OSError, subprocess.CalledProcessError) as exc:
        arms["sdk"] = f"anthropic {oldest} could not be installed: {exc}"
    try:
        python = os.environ.get("BENCH_NEWEST_SDK_PYTHON") or _venv(
            "anthropic-newest", "anthropic", refresh=True, log=log
        )
        arms["sdk_newest"] = SdkArm("sdk_newest", python, ("--runner-setting", "best"))
    except (OSError, subprocess.CalledProcessError) as exc:
        arms["sdk_newest"] = f"the newest anthropic could not be installed: {exc}"
    return arms
