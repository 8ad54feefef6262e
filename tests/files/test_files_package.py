"""The files package surface: exports are sorted and resolve."""

from __future__ import annotations

import toolkits.files


def test_all_is_sorted_and_complete() -> None:
    """The public names are listed once, sorted, and each resolves."""
    assert toolkits.files.__all__ == sorted(toolkits.files.__all__)
    for name in toolkits.files.__all__:
        assert getattr(toolkits.files, name) is not None
