"""Compaction of the LMDB log: rewrite ``<dir>/log/`` so that no free page of it survives.

LMDB never shrinks its data file, and the pages it frees (of overwritten or deleted values)
keep their old bytes until they are reused. :meth:`Compaction.copy` writes every record of the
environment into a new one (not LMDB's compacting copy, whose overflow pages can carry stale
bytes in their unused tails) in a new directory beside the log,
``<dir>/log.compact-<random>/``; :meth:`Compaction.swap` then puts that directory in the place
of ``log/`` and the old one where the copy was, and :meth:`Compaction.finish` deletes it.

Whole directories are swapped, never files: LMDB's ``lock.mdb`` (its reader table and writer
mutex) belongs to one data file, and a lock file shared by two data files would let a writer
reuse pages that a reader of the other file still reads. The copy has no lock file; the first
open of the new ``log/`` creates its own.

Readers notice the swap by the identity (device, inode) of ``log/data.mdb``, which
:func:`data_id` reads: they reopen their environment on the new directory. A reader that still
reads the old file reads it consistently: on Linux, an unlinked file stays whole for as long as
someone maps it.

Crash safety. On Linux the swap is one ``renameat2(RENAME_EXCHANGE)``: at every instant
``log/`` is a whole environment, the old or the new, and both hold every committed entry (no
commit runs between the copy and the swap). Where the exchange is not supported, two renames:
``log/`` to ``log.compact-<random>-old/``, then the copy to ``log/``; a crash between them
leaves no ``log/``, and :func:`recover` (run at a writer's open) renames the old one back.
Every ``log.compact-*`` directory holds an flock on itself for as long as its compaction runs;
:func:`recover` removes those whose lock is free (their compaction is over or died), so a
leftover of a killed compaction is cleaned up at the next open and never mistaken for damage.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

import lmdb

from flume import fs
from flume.errors import FlumeError

# What the temporary directories beside the log are named: ``<log dir name>`` + this + random.
COMPACT_SUFFIX = ".compact-"
# The old log, moved aside by the two-rename swap (where RENAME_EXCHANGE is not supported).
_OLD_SUFFIX = "-old"
_DATA_FILE = "data.mdb"
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


class CompactionError(FlumeError):
    """A compaction that could not be done: the log is as it was (every entry in it)."""


def _no_step(name: str) -> None:
    """Where a compaction reaches its named step; a no-op (tests replace it with a kill)."""


# Tests set this to a function that kills the process at a named step (see tests).
step: Callable[[str], None] = _no_step


def data_id(log_dir: str) -> tuple[int, int] | None:
    """``(st_dev, st_ino)`` of ``<log_dir>/data.mdb``, or None when it is missing (a swap by
    two renames in progress). One stat: cheap enough for every ``refresh()``."""
    try:
        found = os.stat(os.path.join(log_dir, _DATA_FILE))
    except OSError:
        return None
    return (found.st_dev, found.st_ino)


class _LockedDir:
    """A ``log.compact-*`` directory, flocked by this process while its compaction runs."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd: int | None = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BaseException:
            os.close(self.fd)
            raise

    def release(self) -> None:
        """Drop the flock (idempotent)."""
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)


def _fsync_path(path: str, directory: bool = False) -> None:
    fd = os.open(path, (os.O_RDONLY | os.O_DIRECTORY) if directory else os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# Records per write transaction of the rewrite.
_REWRITE_BATCH = 10_000


def _rewrite(env: Any, dbs: list[tuple[bytes, Any]], path: str, map_size: int) -> None:
    """Write every record of ``dbs`` into a new environment at ``path``, in key order.

    Not ``env.copy(compact=True)``: LMDB builds a new page in a buffer that an earlier write
    transaction used and does not clear it, so the tail of a copied overflow page can hold the
    bytes of values written before, deleted ones too. A new environment's buffers only ever
    held what it wrote itself: the entries being kept.
    """
    target = lmdb.open(
        path, map_size=map_size, subdir=True, max_dbs=len(dbs), sync=False, metasync=False,
        readahead=False,
    )
    try:
        with env.begin(write=False) as source:
            for name, db in dbs:
                handle = target.open_db(name)
                batch: list[tuple[bytes, bytes]] = []
                for item in source.cursor(db=db).iternext(keys=True, values=True):
                    batch.append(item)
                    if len(batch) >= _REWRITE_BATCH:
                        _put_all(target, handle, batch)
                        batch = []
                _put_all(target, handle, batch)
        target.sync(True)
    finally:
        target.close()


def _put_all(env: Any, db: Any, items: list[tuple[bytes, bytes]]) -> None:
    if items:
        with env.begin(write=True, db=db) as txn:
            txn.cursor().putmulti(items, append=True)


class Compaction:
    """One compaction of the log directory ``log_dir``: :meth:`copy`, :meth:`swap`, then
    :meth:`finish`; :meth:`abandon` on any failure before the swap. The caller holds every
    commit to the environment from before :meth:`copy` until after :meth:`swap`."""

    def __init__(self, log_dir: str) -> None:
        self.log_dir = log_dir
        self.parent = os.path.dirname(log_dir)
        self.base = os.path.basename(log_dir)
        self._new: _LockedDir | None = None
        self._old: _LockedDir | None = None
        # After the swap: the directory that holds the old environment, to delete.
        self.old_path: str | None = None

    @property
    def new_path(self) -> str:
        """The directory of the copy (before the swap)."""
        assert self._new is not None
        return self._new.path

    def copy(self, env: Any, dbs: list[tuple[bytes, Any]], map_size: int) -> None:
        """Write every record of ``env``'s databases ``dbs`` (``(name, handle)`` pairs) into a
        new environment in a new locked directory beside the log (:attr:`new_path`), made
        durable (the data file and the directory fsynced).

        Blocks on: reading every page in use and writing the copy (a read transaction).

        Raises:
            CompactionError: the copy could not be written (nothing is changed; the
                temporary directory is removed).
        """
        try:
            path = tempfile.mkdtemp(prefix=self.base + COMPACT_SUFFIX, dir=self.parent)
        except OSError as e:
            raise self._failed(e) from None
        try:
            self._new = _LockedDir(path)
            step("made-dir")
            _rewrite(env, dbs, path, map_size)
            step("copied")
            _fsync_path(os.path.join(path, _DATA_FILE))
            _fsync_path(path, directory=True)
            step("synced")
        except Exception as e:
            self.abandon()
            raise self._failed(e) from None
        except BaseException:
            self.abandon()
            raise

    def swap(self) -> None:
        """Put the copy in the place of the log directory; the old one is then at
        :attr:`old_path`, and the new name is durable (the parent directory fsynced).

        Raises:
            CompactionError: the swap could not be done (the log is as it was).
        """
        assert self._new is not None
        new = self._new.path
        try:
            if _exchange(new, self.log_dir):
                self.old_path = new
                step("exchanged")
            else:
                aside = new + _OLD_SUFFIX
                self._old = _LockedDir(self.log_dir)
                os.rename(self.log_dir, aside)
                step("moved-old")
                try:
                    os.rename(new, self.log_dir)
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.rename(aside, self.log_dir)
                    raise
                self.old_path = aside
                step("moved-new")
            _fsync_path(self.parent, directory=True)
            step("swapped")
        except Exception as e:
            if self.old_path is None:
                self.abandon()
                raise self._failed(e) from None
            # Swapped, but not yet durable: the log is the compacted one all the same.
        except BaseException:
            if self.old_path is None:
                self.abandon()
            raise

    def finish(self) -> None:
        """Delete the old log directory (its files live on for readers that still map them)
        and release the locks. Never raises: a leftover is removed at the next open."""
        if self.old_path is not None:
            shutil.rmtree(self.old_path, ignore_errors=True)
            with contextlib.suppress(OSError):
                _fsync_path(self.parent, directory=True)
            step("removed")
        self._release()

    def abandon(self) -> None:
        """Remove the copy (a compaction that failed before its swap) and release the locks."""
        if self._new is not None and self.old_path is None:
            shutil.rmtree(self._new.path, ignore_errors=True)
        self._release()

    def _release(self) -> None:
        for locked in (self._new, self._old):
            if locked is not None:
                locked.release()

    def _failed(self, e: BaseException) -> CompactionError:
        if isinstance(e, FlumeError):
            return CompactionError(f"{self.log_dir}: the log was not compacted: {e}")
        detail = f"{type(e).__name__}: {e}"
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            detail = "no space left on the disk for the compacted copy"
        return CompactionError(
            f"{self.log_dir}: the log was not compacted ({detail}); it is as it was"
        )


def _exchange(a: str, b: str) -> bool:
    """Swap the names ``a`` and ``b`` atomically (Linux ``renameat2(RENAME_EXCHANGE)``);
    False where that is not supported (nothing was changed).

    Raises:
        OSError: the exchange is supported and failed.
    """
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), b)


_renameat2_fn: Any = None


def _renameat2() -> Any:
    global _renameat2_fn
    if _renameat2_fn is None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fn = libc.renameat2
        except (OSError, AttributeError):
            _renameat2_fn = False
        else:
            fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                           ctypes.c_uint]
            fn.restype = ctypes.c_int
            _renameat2_fn = fn
    return _renameat2_fn or None


def recover(log_dir: str) -> None:
    """At a writer's open: finish what a compaction of ``log_dir`` that died left behind.

    When ``log_dir`` is missing and the old log that a two-rename swap moved aside is there,
    rename it back (it holds every entry); then remove every ``log.compact-*`` directory
    whose compaction is over (its flock free). A live compaction's directories are left
    alone. Safe to run without the writer lock.

    Raises:
        PermissionDeniedError: the directory may not be changed.
    """
    parent = os.path.dirname(log_dir)
    prefix = os.path.basename(log_dir) + COMPACT_SUFFIX
    names = fs.listdir(parent) if os.path.isdir(parent) else []
    if not any(name.startswith(prefix) for name in names):
        return
    if fs.stat(log_dir) is None:
        for name in names:
            aside = os.path.join(parent, name)
            if not (name.startswith(prefix) and name.endswith(_OLD_SUFFIX)):
                continue
            try:
                held = _LockedDir(aside)
            except OSError:
                continue  # its compaction is still running (or it is gone)
            try:
                os.rename(aside, log_dir)
                _fsync_path(parent, directory=True)
            except PermissionError as e:
                raise fs.permission_denied(e.filename or parent, e.strerror or "") from None
            finally:
                held.release()
            break
    fs.remove_abandoned(parent, prefix)


def is_leftover(name: str, log_base: str = "log") -> bool:
    """Whether ``name`` (in a database directory) is a compaction's temporary directory."""
    return name.startswith(log_base + COMPACT_SUFFIX)
