"""flume: an embedded database of one append-only log and any number of views streamed from it.

    import flume
    from flume.views import Reduce, Index, Query

    with flume.open("data") as db:
        db.use("count", Reduce(lambda acc, v: acc + 1, initial=0))
        db.append({"author": "@a", "ts": 1})
        db.count.get()   # -> 1, read-your-writes
"""

from flume.db import Flume, MountedView, open
from flume.entry import DELETED
from flume.errors import *  # noqa: F403
from flume.errors import __all__ as _error_names
from flume.logs import Entry, LmdbLog, Log, LogStream, MemoryLog
from flume.obv import Obv

__all__ = [
    "DELETED",
    "Entry",
    "Flume",
    "LmdbLog",
    "Log",
    "LogStream",
    "MemoryLog",
    "MountedView",
    "Obv",
    "open",
    *_error_names,
]
