"""The public surface: `bridge.__all__` is sorted and everything in it imports."""

from __future__ import annotations

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
