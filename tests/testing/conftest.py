"""Fixtures for the emulator's tests; the shared pieces live in `emulator_support`."""

from emulator_support import anyio_backend, make_setup, setup

__all__ = ["anyio_backend", "make_setup", "setup"]
