"""The one error tree of flume.

Every error flume raises is a :class:`FlumeError`. Where an error resembles a builtin it also
subclasses that builtin, so ``except KeyError`` keeps working for a missing seq. Each message says
what went wrong and what to do about it. An operation that raises leaves the database as it was.
"""

from __future__ import annotations

import errno
from typing import Any


class FlumeError(Exception):
    """Base class of every error flume raises."""


class NotFoundError(FlumeError, KeyError):
    """A seq or key that is not in the log or view."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "not found"


class DeletedError(NotFoundError):
    """A seq whose value was deleted (``db.delete``): its place in the log stays, its value is
    gone."""


class EncodeError(FlumeError, TypeError):
    """A value that flume cannot store (not None, bool, int, float, str, bytes, list or dict)."""


class InvalidArgumentError(FlumeError, ValueError):
    """An option with a wrong value (an inverted range, a negative limit, an unknown name)."""


class InvalidTypeError(FlumeError, TypeError):
    """An option of the wrong type (a string where a seq was expected)."""


class ClosedError(FlumeError):
    """The database, log, view or stream was used after ``close()``."""


class ReadOnlyError(FlumeError):
    """A write (append, rebuild, use of an undeclared view) on a database opened
    ``readonly=True``."""


class StorageError(FlumeError, OSError):
    """The disk refused a read or write flume needed (an I/O error); ``filename`` names the
    file or directory. What was being written was not written."""

    def __init__(self, message: str, path: str | None = None, code: int = errno.EIO) -> None:
        super().__init__(code, message, path)
        self.message = message
        self._init_args: tuple[Any, ...] = (message, path, code)

    def __str__(self) -> str:  # OSError would prefix "[Errno N]"
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:  # OSError's would pass (errno, strerror, filename)
        return (type(self), self._init_args)


class DiskFullError(StorageError):
    """The filesystem holding the database is full (``errno`` ``ENOSPC``): an append that
    raises it wrote nothing; views wait (``status()`` shows ``waiting: disk full``) and resume
    by themselves once space is freed."""

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message, path, errno.ENOSPC)
        self._init_args = (message, path)


class PermissionDeniedError(FlumeError, PermissionError):
    """The operating system denied flume access to a file or directory of the database
    (``filename``). Nothing was changed: permission problems never trigger recovery."""

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(errno.EACCES, message, path)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.filename))


class LockedError(FlumeError):
    """Another process holds the directory open for writing."""


class DirectoryNotFoundError(FlumeError, FileNotFoundError):
    """A readonly open of a directory that does not exist (readonly opens never create)."""


class FormatError(FlumeError):
    """A directory or file that is not a flume database of a format version this code knows."""


class CorruptionError(FormatError):
    """A damaged file: truncated, overwritten or otherwise unreadable."""


class FlumeTimeoutError(FlumeError, TimeoutError):
    """A wait (a view read, ``ready()``, ``Obv.wait_for``) that did not finish in time."""


class ViewError(FlumeError):
    """A view stopped because its user function raised, or returned something it cannot store.

    ``view`` names it, ``seq`` is the entry it failed on, ``cause`` the original exception
    (also set as ``__cause__``). The log and the other views go on; declaring the view with a new
    ``version`` rebuilds it.
    """

    def __init__(self, message: str, *, view: str, seq: int, cause: BaseException | None) -> None:
        super().__init__(message)
        self.view = view
        self.seq = seq
        self.cause = cause
        self.__cause__ = cause


class ViewNameError(FlumeError, ValueError):
    """``use()`` with a name that clashes with a Flume attribute or another view."""


class QueryError(FlumeError, ValueError):
    """A malformed query; ``path`` names the offending part (e.g. ``query[1].$filter.ts.$gt``)."""

    def __init__(self, message: str, path: str = "query") -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.reason = message


__all__ = [
    "ClosedError",
    "CorruptionError",
    "DeletedError",
    "DirectoryNotFoundError",
    "DiskFullError",
    "EncodeError",
    "FlumeError",
    "FlumeTimeoutError",
    "FormatError",
    "InvalidArgumentError",
    "InvalidTypeError",
    "LockedError",
    "NotFoundError",
    "PermissionDeniedError",
    "QueryError",
    "ReadOnlyError",
    "StorageError",
    "ViewError",
    "ViewNameError",
]
