"""`bridge emulator`: the Managed Agents emulator in the foreground, for development against a local API."""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType

from .._errors import ConfigError

__all__ = ["serve_emulator"]


def serve_emulator(host: str, port: int, api_key: str) -> None:
    """Serve until SIGINT or SIGTERM, printing the base URL and key clients need.

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
            emulator = Emulator(host=host, port=port, api_key=api_key)
            emulator.start()
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        try:
            sys.stdout.write(
                f"Managed Agents emulator on {emulator.base_url}\n"
                f"  export ANTHROPIC_BASE_URL={emulator.base_url} ANTHROPIC_API_KEY={api_key}\n"
                "  or: bridge run TARGET --emulator --agent ID\n"
                "Ctrl-C to stop.\n"
            )
            sys.stdout.flush()
            stop.wait()
        finally:
            emulator.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
