"""The database directory: what a flume directory holds, its checks at open, and the recovery
of a damaged views database.

    <dir>/log/       the log (LMDB)
    <dir>/views/     the views database (RocksDB), derived from the log
    <dir>/readers/   readers' private secondary directories (flock-marked, removed when free)
    <dir>/writer.lock  the writer's lock file (an flock), naming its pid
"""

from __future__ import annotations

import logging
import os
import stat
import time
import warnings

from flume import fs
from flume.errors import CorruptionError, DirectoryNotFoundError, FormatError
from flume.lock import LOCK_FILE, read_only_media_error
from flume.logs import lmdb_compact
from flume.views.store import MemoryStore, RocksStore, Store


def check_directory(directory: str, readonly: bool) -> None:
    """Check that ``directory`` can hold a flume database, creating it when it is missing and
    ``readonly`` is False; never changes an existing directory.

    Raises:
        DirectoryNotFoundError: missing, and ``readonly``.
        FormatError: a file, or a directory holding something else than a flume database.
        CorruptionError: the views are there but the log they were built from is lost.
        StorageError / PermissionDeniedError / DiskFullError: read-only media, no permission,
            or no space to create it.
    """
    # fs.stat, not os.path.exists: a directory flume may not search must read as a permission
    # problem, never as a missing (lost) file.
    found = fs.stat(directory)
    if found is None:
        if readonly:
            raise DirectoryNotFoundError(
                f"{directory} does not exist; a readonly open never creates a database "
                "(open it once without readonly=True to create it)"
            )
        if fs.read_only_media(directory):
            raise read_only_media_error(directory)
        try:
            os.makedirs(directory)
        except PermissionError as e:
            raise fs.permission_denied(e.filename or directory, e.strerror or "") from None
        except OSError as e:
            if not fs.is_disk_full(directory, str(e), e.errno):
                raise
            raise fs.disk_full(directory, "the database was not created", str(e)) from None
        return
    if not stat.S_ISDIR(found.st_mode):
        raise FormatError(f"{directory} is a file, not a flume database directory")
    if not readonly and fs.read_only_media(directory):
        raise read_only_media_error(directory)
    if not readonly:
        # A compaction killed between its two renames left no log/: put the old one back,
        # and remove the log.compact-* directories of compactions that are over.
        lmdb_compact.recover(os.path.join(directory, "log"))
    data = os.path.join(directory, "log", "data.mdb")
    data_found = fs.stat(data)
    if fs.stat(os.path.join(directory, "views", "CURRENT")) is not None and (
        data_found is None or data_found.st_size == 0
    ):
        # Views are only ever created after the log: their presence means a log was here.
        raise CorruptionError(
            f"{data} is {'empty' if data_found is not None else 'missing'}, but "
            f"{os.path.join(directory, 'views')} holds views built from it: the log was lost. "
            "Restore the directory from a copy (or, to start an empty database here, move "
            "the views directory away first); nothing was changed"
        )
    log_found = fs.stat(os.path.join(directory, "log"))
    if log_found is not None and stat.S_ISDIR(log_found.st_mode):
        return
    others = set(fs.listdir(directory)) - {LOCK_FILE, "views", "readers"}
    if readonly or others:
        raise FormatError(
            f"{directory} is not a flume database (it has no log/ directory"
            + (f" and holds {sorted(others)[:3]}" if others else "")
            + "); give flume an empty or new directory"
        )


def open_views_store(path: str, readonly: bool) -> Store:
    """The views database at ``path`` (``<dir>/views``); for a reader, an empty stand-in while
    the writer has not created it (the reader switches over once it exists)."""
    if readonly and not RocksStore.exists(path):
        return MemoryStore(readonly=True)
    secondaries = os.path.join(os.path.dirname(path), "readers")
    damage: Exception
    if RocksStore.lost_current(path):
        damage = CorruptionError(f"{os.path.join(path, 'CURRENT')} is missing")
    else:
        try:
            return RocksStore(path, readonly=readonly, secondaries=secondaries)
        except CorruptionError as e:
            if readonly:
                raise
            damage = e
    # Views are derived from the log: keep the damaged database aside (never delete user data
    # silently) and start an empty one, which the indexer fills again from the log.
    aside = move_aside(path)
    message = (
        f"the views database at {path} is damaged; it was moved to {aside} and the views are "
        "being rebuilt from the log. Stored Query views this program does not declare are not "
        f"rebuilt: declare them again. Delete {aside} once you no longer need it. The "
        f"damage: {damage}"
    )
    logging.getLogger("flume").warning(message)
    warnings.warn(message, RuntimeWarning, stacklevel=3)
    return RocksStore(path, readonly=False, secondaries=secondaries)


def move_aside(path: str) -> str:
    """Rename ``path`` to a free ``<path>.damaged-<time>[-n]`` beside it; return the new name."""
    base = f"{path}.damaged-{time.strftime('%Y%m%d-%H%M%S')}"
    aside, n = base, 1
    while os.path.exists(aside):
        n += 1
        aside = f"{base}-{n}"
    os.rename(path, aside)
    return aside


def views_dir_of(log_dir: str) -> str:
    """The views database's directory beside the log directory ``log_dir``."""
    return os.path.join(os.path.dirname(os.path.abspath(log_dir)), "views")
