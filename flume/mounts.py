"""Mount: the database's record of one mounted view, shared by the mount table and the indexer."""

from __future__ import annotations

from dataclasses import dataclass

from flume.errors import DiskFullError, FlumeError
from flume.obv import Obv
from flume.views.base import View


@dataclass(eq=False)
class Mount:
    """One view mounted under ``name``: the view object, the last seq it has committed, the
    fingerprint of its definition, and why it stopped (``error``), if it did."""

    name: str
    view: View
    since: Obv[int]
    fingerprint: str
    error: FlumeError | None = None
    # Mounted at open from its stored definition, not (yet) declared by this program, whose
    # own declaration of that name then replaces it (a changed definition rebuilds it).
    stored: bool = False
    # Replaced (re-declared) or dropped: waiters on this record look the name up again.
    retired: bool = False
    # Entries per batch, adapted by the indexer so that one batch takes a bounded time.
    chunk: int = 64
    # Entries per second of its last batch (None until it has indexed one).
    rate: float | None = None
    # Whether it has reached the log's end since it was mounted or rebuilt.
    reached_end: bool = False
    # The number of the last delete of the log's journal its stored data reflects.
    deletes: int = -1

    def state(self, caught_up: bool) -> str:
        """``ready``, ``indexing``, ``failed``, or ``waiting: disk full``, as ``status()``
        shows it."""
        if isinstance(self.error, DiskFullError):
            return "waiting: disk full"
        if self.error is not None:
            return "failed"
        return "ready" if caught_up else "indexing"
