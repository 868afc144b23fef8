"""flume: an embedded database of one append-only log and any number of views streamed from it."""

from flume.errors import *  # noqa: F403
from flume.errors import __all__ as _error_names

__all__ = [*_error_names]
