"""The writer lock: one process at a time opens a flume directory for writing.

An ``flock`` on ``<dir>/writer.lock``, which also records the holder's pid for the error a
second writer gets. The kernel drops the lock when its holder exits, however it exits, so a
writer killed with SIGKILL leaves no stale lock behind.
"""

from __future__ import annotations

import errno
import fcntl
import os

from flume.errors import LockedError, ReadOnlyError
from flume.fs import permission_denied

LOCK_FILE = "writer.lock"


class DirectoryLock:
    """Holds the writer lock of ``directory`` until ``release()``.

    Blocks on: nothing (fails at once when another process holds it).

    Raises:
        LockedError: another process (or another open in this process) holds it.
        PermissionDeniedError: the lock file cannot be opened for writing.
        ReadOnlyError: the directory is on read-only media.
    """

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, LOCK_FILE)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except PermissionError as e:
            raise permission_denied(self.path, e.strerror or "") from None
        except OSError as e:
            if e.errno == errno.EROFS:
                raise read_only_media_error(directory) from None
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"process {holder}" if holder else "another process"
            raise LockedError(
                f"{directory} is open for writing by {who}; only one writer at a time. Open it "
                "with readonly=True to read alongside that writer, or stop the writer first"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        except OSError:
            pass  # a full disk: the pid only names the holder in another writer's error
        self._fd: int | None = fd

    def release(self) -> None:
        """Release the lock (idempotent)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def read_only_media_error(directory: str) -> ReadOnlyError:
    """The error for opening a database for writing on a read-only filesystem."""
    return ReadOnlyError(
        f"{directory} is on a read-only filesystem (a snapshot, a backup mount, or a disk "
        "remounted read-only): it cannot be opened for writing. Read it with readonly=True (the "
        "CLI's read commands do), or copy it to writable storage (nothing was changed)"
    )
