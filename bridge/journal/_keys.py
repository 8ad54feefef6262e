"""A Bloom filter over the journal's call keys: "certainly never seen" without asking the file.

`receive()` must say whether a call is new. Unfinished calls are in the journal's in-memory mirror, but finished
ones (acked, abandoned) are only in the file, and a session's history can replay them after a reconnect or a
restart. Asking the file costs a round trip to the writer thread on every new call. A Bloom filter of every key in
the file answers "certainly new" for almost all of them at memory speed; only a "maybe seen" (about 1% of new keys,
and every real replay) goes to the file. It has no false negatives as long as every key written is added, which the
journal's exclusive lock guarantees: nothing else writes the file.
"""

from __future__ import annotations

import hashlib
import math

__all__ = ["KeyFilter"]

_FALSE_POSITIVES = 0.01


class KeyFilter:
    """Set-like membership for (session_id, tool_use_id) keys, with false positives but no false negatives.

    Args:
        capacity: Keys it holds at the intended false-positive rate. Past it, `full` turns True and the caller
            should stop trusting "certainly new" (the filter stays correct but its answers degrade to "maybe").
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = max(capacity, 1024)
        self._bits = max(8, math.ceil(-self.capacity * math.log(_FALSE_POSITIVES) / math.log(2) ** 2))
        self._hashes = max(1, round(self._bits / self.capacity * math.log(2)))
        self._array = bytearray((self._bits + 7) // 8)
        self.count = 0

    @property
    def full(self) -> bool:
        return self.count > self.capacity

    def _positions(self, key: tuple[str, str]) -> list[int]:
        digest = hashlib.blake2b(f"{key[0]}\x00{key[1]}".encode(), digest_size=16).digest()
        first, second = int.from_bytes(digest[:8], "little"), int.from_bytes(digest[8:], "little") | 1
        return [(first + i * second) % self._bits for i in range(self._hashes)]

    def add(self, key: tuple[str, str]) -> None:
        for position in self._positions(key):
            self._array[position >> 3] |= 1 << (position & 7)
        self.count += 1

    def __contains__(self, key: tuple[str, str]) -> bool:
        return all(self._array[p >> 3] & (1 << (p & 7)) for p in self._positions(key))
