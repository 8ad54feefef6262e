"""The public surface of `bridge.testing`."""

from __future__ import annotations

import bridge.testing


def test_all_is_sorted_and_importable() -> None:
    """`__all__` is sorted and every name in it exists."""
    assert bridge.testing.__all__ == sorted(bridge.testing.__all__)
    for name in bridge.testing.__all__:
        assert getattr(bridge.testing, name) is not None
