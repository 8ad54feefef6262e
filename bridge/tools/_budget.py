"""The output budget: cut oversized results with a visible marker, keeping JSON valid where it can.

A huge result floods the model's context (and can make the POST fail), so every result is held to a budget of
characters. Text is cut at the end with a marker saying how much was dropped. JSON is cut structurally: a list keeps
its first items plus a marker item, an object shrinks its largest member (or drops its last keys behind a marker key),
a long string keeps its head. Only when that cannot fit does JSON fall back to a plain text cut.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from itertools import accumulate
from typing import Any

__all__ = ["MIN_BUDGET", "dumps", "truncate_json", "truncate_text"]

MIN_BUDGET = 64
"""The smallest budget accepted: enough for a marker and a little content."""

_TRUNCATED_KEY = "[truncated]"


def dumps(value: Any) -> str:
    """Compact, deterministic JSON for an already JSON-ready value."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def truncate_text(text: str, budget: int) -> str:
    """`text` if it fits, else its head and a marker, `budget` characters at most (the marker always shows)."""
    if len(text) <= budget:
        return text
    marker = f"\n[truncated: {len(text):,} characters, showing the first {{}}]"
    keep = max(0, budget - len(marker.format(f"{budget:,}")))
    return text[:keep] + marker.format(f"{keep:,}")


def _cut_string(value: str, budget: int) -> str:
    """The longest head of `value` that, with its marker, dumps within `budget` characters."""
    low, high = 0, len(value)
    best = f"[truncated: {len(value):,} characters]"
    while low <= high:
        mid = (low + high) // 2
        candidate = f"{value[:mid]}… [truncated: {len(value) - mid:,} more characters]"
        if len(dumps(candidate)) <= budget:
            best, low = candidate, mid + 1
        else:
            high = mid - 1
    return best


def _cut_list(items: list[Any], budget: int) -> list[Any]:
    """The longest prefix of `items` that fits with a marker item; a lone oversized first item is shrunk."""
    prefix = list(accumulate((len(dumps(item)) + 1 for item in items), initial=0))
    longest_marker = len(dumps(f"[truncated: {len(items):,} more items]"))
    start = bisect_right(prefix, budget - 2 - longest_marker) - 1
    for keep in range(max(start, 0), -1, -1):
        marker = f"[truncated: {len(items) - keep:,} more items]"
        if 2 + prefix[keep] + len(dumps(marker)) <= budget:
            if keep:
                return [*items[:keep], marker]
            break
    marker = f"[truncated: {len(items) - 1:,} more items]"
    room = budget - len(dumps([None, marker])) + len("null")
    if items and room > 16:
        return [_shrink(items[0], room), marker]
    return [marker]


def _cut_dict(value: dict[str, Any], budget: int) -> dict[str, Any]:
    """Shrink the largest member to fit; if the rest alone is too big, drop the last keys behind a marker key."""
    sizes = {key: len(dumps(key)) + 1 + len(dumps(item)) for key, item in value.items()}
    overhead = 2 + max(0, len(value) - 1)
    largest = max(sizes, key=lambda key: sizes[key])
    rest = overhead + sum(sizes.values()) - sizes[largest]
    room = budget - rest - len(dumps(largest)) - 1
    if room >= 32:
        return {key: (_shrink(item, room) if key == largest else item) for key, item in value.items()}
    kept: dict[str, Any] = {}
    used = 2
    keys = list(value)
    for index, key in enumerate(keys):
        marker = {_TRUNCATED_KEY: f"{len(keys) - index - 1:,} more keys"}
        if used + sizes[key] + 1 + len(dumps(marker)) - 2 > budget:
            break
        kept[key] = value[key]
        used += sizes[key] + 1
    kept[_TRUNCATED_KEY] = f"{len(keys) - len(kept):,} more keys"
    return kept


def _shrink(value: Any, budget: int) -> Any:
    """A smaller version of a JSON-ready value that dumps within `budget` characters when possible."""
    if len(dumps(value)) <= budget:
        return value
    if isinstance(value, str):
        return _cut_string(value, budget)
    if isinstance(value, list):
        return _cut_list(value, budget)
    if isinstance(value, dict) and value:
        return _cut_dict(value, budget)
    return value


def truncate_json(value: Any, budget: int) -> str:
    """JSON text for a JSON-ready value, at most `budget` characters, valid JSON whenever the structure allows."""
    text = dumps(value)
    if len(text) <= budget:
        return text
    text = dumps(_shrink(value, budget))
    return text if len(text) <= budget else truncate_text(text, budget)
