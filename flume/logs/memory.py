"""MemoryLog: a log in a Python list, for tests and ephemeral databases.

It stores encoded values, exactly like the LMDB log, so it is the model the LMDB log is tested
against: same errors, same copies on read (mutating a value you read never changes the log).
"""

from __future__ import annotations

import threading

from flume.logs.base import BaseLog


class MemoryLog(BaseLog):
    """An in-memory log; ``dir`` is None, so a database on it keeps its views in memory too."""

    dir: str | None = None

    def __init__(self) -> None:
        super().__init__(readonly=False)
        self._items: list[bytes] = []
        self._lock = threading.Lock()

    def _commit(self, encoded: list[bytes]) -> int:
        self._check_writable()
        with self._lock:
            self._items.extend(encoded)
            last = len(self._items) - 1
            # Set inside the lock so that since never moves backwards between racing appenders.
            self.since.set(last)
        return last

    def _get_raw(self, seq: int) -> bytes | None:
        items = self._items
        return items[seq] if 0 <= seq < len(items) else None

    def read_raw(self, start: int, end: int, reverse: bool, n: int) -> list[tuple[int, bytes]]:
        items = self._items
        end = min(end, len(items) - 1)
        start = max(start, 0)
        if start > end or n <= 0:
            return []
        if reverse:
            first = max(start, end - n + 1)
            return [(seq, items[seq]) for seq in range(end, first - 1, -1)]
        last = min(end, start + n - 1)
        return [(seq, items[seq]) for seq in range(start, last + 1)]
