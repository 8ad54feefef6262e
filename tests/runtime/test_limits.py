"""Limits and Timeouts: frozen, validated up front (every problem listed), and a repr showing what changed."""

from __future__ import annotations

import dataclasses

import pytest

from bridge import ConfigError, Limits, Timeouts


def test_repr_shows_only_what_differs_from_the_defaults() -> None:
    """A log line says exactly what an operator changed."""
    assert repr(Limits()) == "Limits()"
    assert repr(Limits(per_session=4, max_batch=10)) == "Limits(per_session=4, max_batch=10)"
    assert repr(Timeouts(tool=None, drain=2.5)) == "Timeouts(tool=None, drain=2.5)"


def test_invalid_values_are_all_reported_at_once() -> None:
    """Every bad field is named in one ConfigError, not just the first."""
    with pytest.raises(ConfigError) as caught:
        Limits(max_concurrency=0, max_batch=-1)
    assert len(caught.value.problems) == 2
    with pytest.raises(ConfigError, match="stream_idle"):
        Timeouts(stream_idle=0)
    with pytest.raises(ConfigError, match="max_queued"):
        Limits(max_queued=True)


def test_config_objects_are_frozen() -> None:
    """Configuration cannot change under a running bridge."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        Limits().max_concurrency = 3  # type: ignore[misc]


def test_post_linger_may_be_zero_but_not_negative() -> None:
    """`post_linger=0` turns result holding off (post as soon as ready); a negative linger is a configuration error."""
    assert Timeouts(post_linger=0).post_linger == 0
    with pytest.raises(ConfigError, match="post_linger"):
        Timeouts(post_linger=-1)
