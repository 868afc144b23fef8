"""MemoryLog: a log in a Python list, for tests and ephemeral databases.

It stores encoded values, exactly like the LMDB log, so it is the model the LMDB log is tested
against: same errors, same copies on read (mutating a value you read never changes the log).
"""

from __future__ import annotations

import threading

from flume.logs.base import TOMBSTONE, BaseLog, DeleteRecord


class MemoryLog(BaseLog):
    """An in-memory log; ``dir`` is None, so a database on it keeps its views in memory too."""

    dir: str | None = None

    def __init__(self) -> None:
        super().__init__(readonly=False)
        self._items: list[bytes] = []
        self._journal: list[DeleteRecord] = []
        self._lock = threading.Lock()

    def _commit(self, encoded: list[bytes]) -> int:
        self._check_writable()
        with self._lock:
            self._items.extend(encoded)
            last = len(self._items) - 1
            # Set inside the lock so that since never moves backwards between racing appenders.
            self.since.set(last)
        return last

    def _commit_deletes(self, seqs: list[int]) -> list[DeleteRecord]:
        self._check_writable()
        with self._lock:
            items, journal = self._items, self._journal
            records: list[DeleteRecord] = []
            for seq in seqs:
                if items[seq] == TOMBSTONE:
                    continue
                records.append(DeleteRecord(len(journal) + len(records), seq, items[seq]))
                items[seq] = TOMBSTONE
            journal.extend(records)
            self.deletes.set(len(journal) - 1)
        return records

    def read_deletes(self, start: int, end: int) -> list[DeleteRecord]:
        journal = self._journal
        return journal[max(start, 0) : max(end + 1, 0)]

    def forget_deleted(self) -> int:
        """Forget the values the journal keeps (what compaction does); return how many."""
        with self._lock:
            kept = [r for r in self._journal if r.old is not None]
            self._journal[:] = [r._replace(old=None) for r in self._journal]
        return len(kept)

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
