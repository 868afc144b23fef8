"""``Entry``: one log entry, as streams and ``seqs=True`` reads yield it."""

from __future__ import annotations

from typing import Any, Final, NamedTuple


class Entry(NamedTuple):
    """One log entry: its seq and its value."""

    seq: int
    value: Any


class _Deleted:
    """The type of :data:`DELETED`."""

    _instance: _Deleted | None = None

    def __new__(cls) -> _Deleted:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "flume.DELETED"

    def __reduce__(self) -> str:
        return "DELETED"


#: The value of a deleted entry where a read shows deletes (``stream(tombstones=True)``).
DELETED: Final = _Deleted()
