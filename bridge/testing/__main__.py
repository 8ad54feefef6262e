"""`python -m bridge.testing [--host H] [--port P] [--api-key K]`: serve an emulator until Ctrl-C."""

from __future__ import annotations

import argparse
import contextlib

from ._server import serve_forever


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(prog="python -m bridge.testing", description="Offline Managed Agents API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--api-key", default=None, help="key clients must send (default: random, printed)")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        serve_forever(args.host, args.port, api_key=args.api_key)


if __name__ == "__main__":
    main()
