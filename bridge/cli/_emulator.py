"""`bridge emulator`: the Managed Agents emulator in the foreground, for development against a local API."""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING

from .._errors import ConfigError

if TYPE_CHECKING:
    from ._trial import TrialScript

__all__ = ["serve_emulator"]


def serve_emulator(host: str, port: int, api_key: str, script: TrialScript | None = None) -> None:
    """Serve until SIGINT or SIGTERM, printing the base URL and key clients need.

    With `script`, the agent is scripted and each new agent with custom tools gets a session that the script talks
    to (see `_trial`); the transcript is printed as turns end.

    Raises:
        ConfigError: The emulator's extra is not installed, or the port is taken.
    """
    try:
        from ..testing import Emulator
    except ImportError as exc:
        raise ConfigError(f"the emulator needs its extra: pip install 'tool-bridge[emulator]' ({exc})") from None
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            emulator = Emulator(host=host, port=port, api_key=api_key, script=script.agent() if script else None)
            emulator.start()
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        try:
            sys.stdout.write(
                f"Managed Agents emulator on {emulator.base_url}\n"
                f"  export ANTHROPIC_BASE_URL={emulator.base_url} ANTHROPIC_API_KEY={api_key}\n"
                "  or: bridge run TARGET --emulator --agent ID\n"
                + (
                    f"Scripted agent: every new agent with custom tools gets a session; create one with\n"
                    f"  bridge sync TARGET --emulator {emulator.base_url} --create NAME --model claude-opus-4-7\n"
                    if script
                    else ""
                )
                + "Ctrl-C to stop.\n"
            )
            sys.stdout.flush()
            driver = None
            if script is not None:
                from ._trial import drive_trials

                driver = threading.Thread(
                    target=drive_trials,
                    args=(emulator.base_url, api_key, emulator.control, script, stop, _say),
                    name="bridge emulator --script",
                    daemon=True,
                )
                driver.start()
            stop.wait()
            if driver is not None:
                driver.join(5)
        finally:
            emulator.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
