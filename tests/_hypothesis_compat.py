"""Keep hypothesis-jsonschema 0.23 working with Hypothesis releases whose `many` lost its `more()` method.

hypothesis-jsonschema draws object properties with `while elements.more(): ...`; newer Hypothesis turned `many` into
a context manager iterated with `for _ in elements`. This adds back `more()` as one step of that iteration, and only
when it is missing, so nothing changes on a Hypothesis that still has it.
"""

from __future__ import annotations

from typing import Any

from hypothesis.internal.conjecture import utils as cu


def _more(self: Any) -> bool:
    if self._depth is None:
        self.__enter__()
    if self._in_element:
        self._finish_element()
    if not self._decide():
        return False
    self.count += 1
    self._in_element = True
    self._rejected = False
    return True


if not hasattr(cu.many, "more"):
    cu.many.more = _more  # type: ignore[attr-defined]
