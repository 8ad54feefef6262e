"""The key filter behind SqliteJournal.receive(): never a false "certainly new", rarely a false "maybe seen"."""

from __future__ import annotations

from bridge.journal._keys import KeyFilter


def test_every_added_key_is_found() -> None:
    """No false negatives: every key added is reported as possibly present (a receive then asks the file)."""
    keys = KeyFilter(5000)
    added = [(f"sesn_{i % 17}", f"sevt_{i}") for i in range(5000)]
    for key in added:
        keys.add(key)
    assert all(key in keys for key in added)
    assert not keys.full


def test_false_positives_stay_near_one_percent() -> None:
    """Keys never added are reported present about 1% of the time at capacity, so most receives skip the file."""
    keys = KeyFilter(5000)
    for i in range(5000):
        keys.add(("s", f"seen_{i}"))
    false_positives = sum(("s", f"new_{i}") in keys for i in range(20000))
    assert false_positives < 20000 * 0.03


def test_full_past_capacity() -> None:
    """Past its capacity the filter says so, and the journal stops trusting its "certainly new"."""
    keys = KeyFilter(1024)
    for i in range(1025):
        keys.add(("s", str(i)))
    assert keys.full
