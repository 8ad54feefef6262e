"""The `bridge` command line: commands, daemon, config file, health endpoint, console, demo."""

from ._main import main

__all__ = ["main"]
