"""Both logs of flume pass the log conformance suite."""

from __future__ import annotations

from pathlib import Path

from flume.logs import LmdbLog, Log, MemoryLog
from flume.testing.logs import LogConformance


class TestMemoryLog(LogConformance):
    def make_log(self, tmp_path: Path) -> Log:
        return MemoryLog()


class TestLmdbLog(LogConformance):
    def make_log(self, tmp_path: Path) -> Log:
        return LmdbLog(tmp_path / "log")

    def reopen(self, log: Log, tmp_path: Path) -> Log:
        log.close()
        return LmdbLog(tmp_path / "log")


class TestLmdbLogNoSync(TestLmdbLog):
    """``sync=False`` changes durability only, never behaviour."""

    def make_log(self, tmp_path: Path) -> Log:
        return LmdbLog(tmp_path / "log", sync=False)

    def reopen(self, log: Log, tmp_path: Path) -> Log:
        log.close()
        return LmdbLog(tmp_path / "log", sync=False)
