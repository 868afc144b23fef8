"""``Entry``: one log entry, as streams and ``seqs=True`` reads yield it."""

from __future__ import annotations

from typing import Any, NamedTuple


class Entry(NamedTuple):
    """One log entry: its seq and its value."""

    seq: int
    value: Any
