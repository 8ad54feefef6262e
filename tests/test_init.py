"""The public surface: `bridge.__all__` is sorted and everything in it imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import bridge


def test_all_is_sorted() -> None:
    """`__all__` stays sorted so additions are easy to review."""
    assert bridge.__all__ == sorted(bridge.__all__)


def test_all_is_importable() -> None:
    """Every exported name exists on the package."""
    missing = [name for name in bridge.__all__ if not hasattr(bridge, name)]
    assert missing == []


def test_contract_names_are_exported() -> None:
    """The names the runtime and the packs rely on are public."""
    for name in ("tool", "Tool", "ToolOptions", "Toolset", "ToolContext", "ToolResult", "CallResult", "ToolError"):
        assert name in bridge.__all__
    assert {"image", "document"} <= set(bridge.__all__)


_SDK_LOADED = "import sys; print(sorted(name for name in sys.modules if name.partition('.')[0] == 'anthropic'))"


def _modules_after(code: str) -> str:
    """What `code`, run in a fresh interpreter at the project root, prints."""
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_import_does_not_load_the_sdk() -> None:
    """`import bridge` (and building, calling, linting a tool) never imports the Anthropic SDK, a second of start-up."""
    code = (
        "import anyio, bridge\n"
        "@bridge.tool\n"
        "def add(a: int, b: int) -> int:\n"
        "    '''Add.'''\n"
        "    return a + b\n"
        "tools = bridge.Toolset([add])\n"
        "assert anyio.run(tools.call, 'add', {'a': 1, 'b': 2}).text == '3'\n"
        "assert tools.get('add').lint.size > 0\n"
    )
    assert _modules_after(code + _SDK_LOADED) == "[]"


def test_help_does_not_load_the_sdk() -> None:
    """`bridge --help` answers without importing the Anthropic SDK."""
    code = (
        "import contextlib, io\n"
        "from bridge.cli import main\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['--help'])\n"
    )
    assert _modules_after(code + _SDK_LOADED) == "[]"


def test_runtime_names_load_on_first_use() -> None:
    """`bridge.Bridge` and the sync helpers are the real objects, listed by `dir()`, though imported only when used."""
    from bridge.agents._sync import sync_agent
    from bridge.runtime._bridge import Bridge

    assert {"Bridge", "sync_agent"} <= set(dir(bridge))
    assert (bridge.Bridge, bridge.sync_agent) == (Bridge, sync_agent)
    assert "anthropic" in _modules_after("import bridge\nbridge.Bridge\n" + _SDK_LOADED)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        bridge.nope  # noqa: B018
