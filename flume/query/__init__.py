"""The map-filter-reduce query language (QUERY.md): parse, plan and execute, storage-free.

- :func:`parse_query` validates a query and compiles it to a :class:`ParsedQuery`.
- :func:`plan_query` picks an index of a Query view and compiles the first ``$filter`` to one
  key range (:class:`Plan`, with ``explain()``).
- :func:`execute` streams a parsed query over ``(seq, value)`` pairs in read order.
- :mod:`flume.query.indexkeys` builds index entry keys and rebuilds values from them (for
  covered queries).
"""

from __future__ import annotations

from flume.query.execute import compile_live, execute, is_live_able
from flume.query.indexkeys import decode_index_key, index_key, index_values
from flume.query.parse import parse_query
from flume.query.plan import Plan, plan_query
from flume.query.stages import ParsedQuery

__all__ = [
    "ParsedQuery",
    "Plan",
    "compile_live",
    "decode_index_key",
    "execute",
    "index_key",
    "index_values",
    "is_live_able",
    "parse_query",
    "plan_query",
]
