"""Views: derived state streamed from the log (Reduce, Index, Query), and their stores."""

from flume.views.base import View, ViewStream
from flume.views.index import Index, IndexEntry
from flume.views.query import Query
from flume.views.reduce import Reduce

__all__ = ["Index", "IndexEntry", "Query", "Reduce", "View", "ViewStream"]
