"""What the filesystem under a database can refuse, told apart and reported as such.

A full disk, read-only media and missing permissions are the machine's problems, not the
database's: they are reported as :class:`DiskFullError`, ``ReadOnlyError`` and
:class:`PermissionDeniedError`, and never taken for damage (which would move views aside,
rebuild them, or report the log lost).
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil

from flume.errors import DiskFullError, PermissionDeniedError, StorageError

# Below this much free space, an I/O error from a write is taken for a full disk: LMDB reports
# the short write of a full disk as EIO.
_NEARLY_FULL = 1 << 20


def permission_denied(path: str, detail: str = "") -> PermissionDeniedError:
    """The error for ``path`` (a file or directory of a database) being inaccessible."""
    because = f" ({detail})" if detail else ""
    return PermissionDeniedError(
        f"{path}: permission denied{because}. flume needs read and write access to every file "
        "and directory of a database to open it for writing, and read access (write access "
        "to log/lock.mdb and views/ too) to read it; give the user running flume that access "
        "(chown or chmod), then open it again. Nothing was changed",
        path,
    )


def stat(path: str) -> os.stat_result | None:
    """``os.stat(path)``, or None when nothing is there.

    Raises:
        PermissionDeniedError: a directory on the way to ``path`` cannot be searched (where
            ``os.path.exists`` would answer False, and a present file would read as missing).
    """
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except PermissionError as e:
        raise permission_denied(path, e.strerror or "") from None


def listdir(path: str) -> list[str]:
    """``os.listdir(path)``. Raises: PermissionDeniedError (not a bare PermissionError)."""
    try:
        return os.listdir(path)
    except PermissionError as e:
        raise permission_denied(path, e.strerror or "") from None


def read_only_media(path: str) -> bool:
    """Whether ``path`` (or the nearest existing directory above it) is on a filesystem
    mounted read-only (a snapshot, a backup mount, a remount after errors)."""
    path = os.path.abspath(path)
    while True:
        try:
            return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
        except FileNotFoundError:
            parent = os.path.dirname(path)
            if parent == path:
                return False
            path = parent
        except OSError:
            return False


def free_bytes(path: str) -> int | None:
    """Bytes free for this user on the filesystem of ``path``; None when unknown."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def disk_full(path: str, what: str, detail: str) -> DiskFullError:
    """The error for a write to ``path`` that failed because its filesystem is full; ``what``
    says what was (not) written and what happens next."""
    return DiskFullError(
        f"the disk holding {path} is full ({detail}): {what}. Free space on that disk", path
    )


def is_disk_full(path: str, message: str, code: int | None = None) -> bool:
    """Whether a failed write to ``path`` (its error ``message``, its errno ``code`` when
    known) failed for lack of space. An I/O error counts when the disk is nearly full too:
    LMDB reports the short write of a full disk as EIO."""
    if code in (errno.ENOSPC, errno.EDQUOT) or "No space left" in message or (
        "quota exceeded" in message.lower()
    ):
        return True
    if code == errno.EIO or "Input/output error" in message:
        free = free_bytes(path)
        return free is not None and free < _NEARLY_FULL
    return False


def storage_error(path: str, what: str, detail: str) -> StorageError:
    """The error for a write to ``path`` that the disk refused (not for lack of space)."""
    return StorageError(
        f"the disk refused a write to {path} ({detail}): {what}. Check the disk and the "
        "system log (dmesg)",
        path,
    )


def remove_abandoned(parent: str, prefix: str, lock_file: str | None = None) -> None:
    """Remove the directories ``<parent>/<prefix>*`` whose owner is gone: the owner holds an
    flock, on ``lock_file`` inside the directory (or on the directory itself when None), for
    as long as it lives, and the kernel drops it however the owner exits. A directory whose
    lock is held, a symlink, or one without the lock file is left alone.
    """
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for name in names:
        if not name.startswith(prefix):
            continue
        path = os.path.join(parent, name)
        if os.path.islink(path):
            continue
        try:
            if lock_file is None:
                fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW)
            else:
                fd = os.open(
                    os.path.join(path, lock_file), os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW
                )
        except OSError:
            continue  # gone meanwhile, being made, or not one of flume's
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # its owner is alive
            shutil.rmtree(path, ignore_errors=True)
        finally:
            os.close(fd)


def human_size(n: int) -> str:
    """A size in bytes for people, in decimal units: ``1234567`` -> ``1.2 MB``."""
    if n < 1000:
        return f"{n:,} bytes"
    x, units = n / 1000, ["KB", "MB", "GB", "TB"]
    while x >= 1000 and len(units) > 1:
        x /= 1000
        units.pop(0)
    return f"{x:.1f} {units[0]}"
