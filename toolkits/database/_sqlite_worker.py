"""The SQLite worker process: reads one JSON request per line on stdin, answers one JSON line on stdout.

Started by `_sqlite_pool.py` as `python -I -S _sqlite_worker.py`: isolated from the environment, standard library
only, so it starts in milliseconds. It imports the engine modules directly (`_bootstrap`), without running the
package's `__init__`, which needs the `bridge` package. The parent kills the process when a statement overruns its
deadline, so nothing here has to be interruptible; the address-space limit set per request is the memory backstop
behind SQLite's own `hard_heap_limit`.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import types
from typing import Any

_MARGIN = 256 * 1024 * 1024  # the interpreter, SQLite's code and one fetched value, outside SQLite's heap


def _bootstrap() -> None:
    """Make `toolkits.database._sqlite_engine` importable without executing the packages' `__init__` files."""
    here = os.path.dirname(os.path.abspath(__file__))
    for name, path in (("toolkits", os.path.dirname(here)), ("toolkits.database", here)):
        module = types.ModuleType(name)
        module.__path__ = [path]
        sys.modules[name] = module


def _limit_memory(caps: dict[str, Any]) -> None:
    soft = int(caps.get("max_memory_bytes", 256 * 1024 * 1024)) + _MARGIN
    soft += 4 * int(caps.get("max_value_bytes", 16 * 1024 * 1024))
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def main() -> None:
    """Serve requests until stdin closes (the parent exited or retired this worker)."""
    _bootstrap()
    from toolkits.database import _sqlite_engine as engine

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer

    def send(message: dict[str, Any]) -> None:
        stdout.write(json.dumps(message).encode() + b"\n")
        stdout.flush()

    def decide(outcome: dict[str, Any]) -> bool:
        send({"pending": outcome})
        answer = stdin.readline()
        return bool(answer) and bool(json.loads(answer).get("commit"))

    for line in stdin:
        try:
            request = json.loads(line)
            _limit_memory(request.get("caps", {}))
            send({"result": engine.run(request, decide)})
        except engine.EngineError as exc:
            send({"error": exc.to_dict()})
        except MemoryError:
            send({"error": {"kind": "memory", "detail": ""}})
        except Exception as exc:
            send({"error": {"kind": "upstream", "detail": f"{type(exc).__name__}: {exc}"}})


if __name__ == "__main__":
    main()
