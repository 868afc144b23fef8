"""``parse_query``: every accepted query shape, validated and compiled before anything is read.

Accepted shapes (QUERY.md, "A query"):

- a list of stages, each a one-key dict ``{"$filter" | "$map" | "$reduce" | "$sort": rule}``;
- a lone stage dict (``{"$filter": ...}``): a one-stage query;
- a lone dict without ``$`` keys: one ``$filter`` (JS only used it to choose an index);
- ``[]`` and ``None``: every stored value.

Errors name the offending part by its position in the query *as written*: ``query[1].$map.x``
in a list, ``query.$filter.ts.$gt`` in a lone stage, ``query.ts.$gt`` in a lone filter dict.
"""

from __future__ import annotations

from typing import Any, Final

from flume.codec import MAX_DEPTH, depth_exceeds, too_deep_message
from flume.errors import QueryError
from flume.query.filters import compile_filter
from flume.query.maps import compile_map
from flume.query.paths import at, is_operator
from flume.query.reducers import compile_reduce
from flume.query.sorting import compile_sort
from flume.query.stages import FilterStage, MapStage, ParsedQuery, ReduceStage, SortStage, Stage

__all__ = ["STAGE_NAMES", "parse_query"]

STAGE_NAMES: Final = ("$filter", "$map", "$reduce", "$sort")

_ROOT: Final = "query"


def parse_query(query: Any) -> ParsedQuery:
    """Normalise and validate a query, compiling every rule to closures.

    ``query`` is plain data (as decoded from JSON): a list of stages, a lone stage dict, a lone
    filter dict, ``[]`` or ``None``. A :class:`ParsedQuery` is returned as is.

    Raises:
        QueryError: the query is malformed; ``.path`` names the offending part, e.g.
            ``query[1].$filter.value.ts.$gt``; or it nests lists and dicts more than
            ``flume.codec.MAX_DEPTH`` (256) deep.
    """
    if isinstance(query, ParsedQuery):
        return query
    if depth_exceeds(query):
        raise QueryError(too_deep_message("the query"), _ROOT)
    try:
        return _parse(query)
    except RecursionError:
        # Within the limit, yet deeper than this thread's call stack lets rules compile.
        raise QueryError(
            f"the query is nested too deeply to compile here (flume accepts queries up to "
            f"{MAX_DEPTH} lists/dicts deep, stack permitting): flatten it",
            _ROOT,
        ) from None


def _parse(query: Any) -> ParsedQuery:
    if query is None:
        return ParsedQuery((), ())
    if isinstance(query, (list, tuple)):
        stages = tuple(_stage(stage, at(_ROOT, i)) for i, stage in enumerate(query))
        return ParsedQuery(stages, tuple({s.name: s.rule} for s in stages))
    if isinstance(query, dict):
        if query and all(map(is_operator, query)):
            stage = _stage(query, _ROOT, lone=True)
            return ParsedQuery((stage,), ({stage.name: stage.rule},))
        if any(map(is_operator, query)):
            ops = [k for k in query if is_operator(k)]
            raise QueryError(
                f"a query dict mixes $ keys ({', '.join(ops)}) with plain keys: write a stage "
                '({"$filter": {...}}), a filter without $ keys, or a list of stages',
                _ROOT,
            )
        compiled = compile_filter(query, _ROOT)
        stage = FilterStage(_ROOT, query, compiled.match, compiled.leaves)
        return ParsedQuery((stage,), ({"$filter": query},))
    raise QueryError(
        f"a query is a list of stages, a stage dict, a filter dict or None, not {query!r:.60}",
        _ROOT,
    )


def _stage(stage: Any, position: str, lone: bool = False) -> Stage:
    """Compile one stage dict found at ``position``."""
    if not isinstance(stage, dict) or len(stage) != 1:
        raise QueryError(
            "a stage is a dict with exactly one key, one of "
            f"{', '.join(STAGE_NAMES)}; got {stage!r:.60}",
            position,
        )
    ((name, rule),) = stage.items()
    where = at(position, name)
    if name == "$filter":
        compiled = compile_filter(rule, where)
        return FilterStage(where, rule, compiled.match, compiled.leaves)
    if name == "$map":
        mapped = compile_map(rule, where)
        return MapStage(where, rule, mapped.get, mapped.reads)
    if name == "$reduce":
        reduced = compile_reduce(rule, where)
        return ReduceStage(where, rule, reduced.run, reduced.grouped, reduced.reads)
    if name == "$sort":
        sort = compile_sort(rule, where)
        return SortStage(where, rule, sort.paths, sort.key, sort.reads)
    hint = " (a filter dict has no $ keys at its top)" if lone else ""
    raise QueryError(
        f"unknown stage {name!r}; a stage is one of {', '.join(STAGE_NAMES)}{hint}",
        where if isinstance(name, str) else position,
    )
