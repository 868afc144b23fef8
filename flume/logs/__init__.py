"""Logs: the append-only source of truth. ``LmdbLog`` on disk, ``MemoryLog`` in memory."""

from flume.entry import Entry
from flume.logs.base import Log, LogStream
from flume.logs.lmdb_log import LmdbLog
from flume.logs.memory import MemoryLog

__all__ = ["Entry", "LmdbLog", "Log", "LogStream", "MemoryLog"]
