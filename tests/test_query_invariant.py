"""The planner's invariant, as a property: an indexed run yields exactly what a full scan yields.

On random values (dicts of a few fields of mixed types, some missing, a few non-dicts), random
index sets and random queries, an in-memory index (a sorted list of entry keys, built as a
Query view builds them) is read over the plan's key range, rebuilding values from the keys when
the plan is covered, and run through the executor. The result must equal a full scan's: in the
same order when the query fixes one (a final ``$sort`` or grouping ``$reduce``), as a multiset
otherwise (``$collect`` lists as multisets, floats up to rounding), and with a ``limit`` the
first items of an ordered result, or that many items of the full result otherwise.

Each example draws a data set and index set, then checks 3 to 6 queries over it (half aimed at
one index: equalities on a stored record, a range, a sort by the index fields, a tail reading
indexed or nearby paths; half broad), each forward and reversed, with and without a limit. The
default run checks 200 examples; ``pytest -m slow`` runs 5000.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flume.errors import QueryError
from flume.keys import MISSING, seq_of
from flume.query import Plan, execute, parse_query, plan_query
from flume.query.filters import range_kind
from flume.query.indexkeys import decode_index_key, index_hint, index_key
from flume.query.paths import get_path
from flume.query.plan import normalise_indexes
from flume.query.values import KIND_NAMES, is_number, kind_of

# --- an in-memory index ---------------------------------------------------------------------------


class MemoryIndexes:
    """Every index of a Query view over ``values``, as sorted lists of ``(key, hint)`` entries."""

    def __init__(self, indexes: dict[str, list[list[str]]], values: Sequence[Any]) -> None:
        self.values = list(values)
        self.defs = normalise_indexes(indexes)
        self.entries = {
            name: sorted(
                (index_key(paths, seq, v), index_hint(paths, v)) for seq, v in enumerate(values)
            )
            for name, paths in self.defs.items()
        }

    def read(
        self, plan: Plan, *, reverse: bool = False, hints: bool = True
    ) -> Iterator[tuple[int, Any]]:
        """The entries a Query view would feed the executor for ``plan``."""
        if plan.index is None:
            seqs = range(len(self.values))
            for seq in reversed(seqs) if reverse else seqs:
                yield seq, self.values[seq]
            return
        entries = self.entries[plan.index]
        keys_only = [k for k, _ in entries]
        start = bisect.bisect_left(keys_only, plan.lower)
        stop = len(entries) if plan.upper is None else bisect.bisect_left(keys_only, plan.upper)
        chosen = entries[start:stop]
        for key, hint in reversed(chosen) if reverse else chosen:
            if plan.covered:
                yield decode_index_key(plan.paths, key, hint if hints else b"")
            else:
                seq = seq_of(key)
                yield seq, self.values[seq]


def indexed_run(
    query: Any,
    values: Sequence[Any],
    indexes: dict[str, list[list[str]]],
    *,
    reverse: bool = False,
    limit: int | None = None,
    hints: bool = True,
    memory: MemoryIndexes | None = None,
) -> tuple[Plan, list[Any]]:
    """Plan ``query`` over ``indexes`` and run it as a Query view would, on in-memory indexes."""
    plan = plan_query(parse_query(query), indexes)
    if memory is None:
        memory = MemoryIndexes(indexes, values)
    entries = memory.read(plan, reverse=reverse, hints=hints)
    return plan, list(execute(plan.query, entries, reverse=reverse, limit=limit))


def scan_run(
    query: Any, values: Sequence[Any], *, reverse: bool = False, limit: int | None = None
) -> list[Any]:
    entries = list(enumerate(values))
    if reverse:
        entries.reverse()
    return list(execute(parse_query(query), entries, reverse=reverse, limit=limit))


# --- comparing results --------------------------------------------------------------------------


def canon(x: Any, sort_lists: bool) -> Any:
    """A hashable canonical form: flume-equal values alike, floats rounded (sums taken in
    another order may differ in the last bits), lists sorted when ``sort_lists``."""
    if x is None or x is True or x is False:
        return ("const", x)
    if isinstance(x, (int, float)):
        if math.isnan(x):
            return ("nan",)
        if isinstance(x, float) and math.isfinite(x):
            x = float(f"{x:.9g}")
            if x.is_integer():
                x = int(x)
        return ("number", x)
    if isinstance(x, (str, bytes)):
        return (type(x).__name__, x)
    if isinstance(x, list):
        items = [canon(i, sort_lists) for i in x]
        return ("list", tuple(sorted(items, key=repr) if sort_lists else items))
    if isinstance(x, dict):
        return ("dict", tuple(sorted(((repr(k), canon(v, sort_lists)) for k, v in x.items()))))
    raise AssertionError(f"unexpected item {x!r}")


def has_collect(query: Any) -> bool:
    return "$collect" in repr(query)


def check_same(
    query: Any,
    values: list[Any],
    indexes: dict[str, list[list[str]]],
    reverse: bool,
    limit: int | None,
    hints: bool,
    memory: MemoryIndexes | None = None,
) -> Plan:
    """Assert that the indexed run of ``query`` yields what a full scan yields."""
    plan, got = indexed_run(
        query, values, indexes, reverse=reverse, limit=limit, hints=hints, memory=memory
    )
    expected = scan_run(query, values, reverse=reverse, limit=limit)
    sort_lists = has_collect(query)
    got_c = [canon(x, sort_lists) for x in got]
    expected_c = [canon(x, sort_lists) for x in expected]
    if parse_query(query).ordered:
        same = got_c == expected_c
    elif limit is None:
        same = Counter(got_c) == Counter(expected_c)
    else:
        everything = Counter(canon(x, sort_lists) for x in scan_run(query, values))
        same = len(got_c) == len(expected_c) and not Counter(got_c) - everything
    assert same, f"plan={plan.explain()}\ngot={got}\nexpected={expected}"
    return plan


# --- random data, indexes and queries -----------------------------------------------------------

NUMBERS = [-2, -1, 0, 1, 2, 3, 0.5, -1.5, 2.0, 1.0, -0.0, math.nan, math.inf, -math.inf]
BIG = [2**53, 2**53 + 1, 2**64 - 1, -(2**63)]
STRINGS = ["", "a", "ab", "b", "ba", "\u00e9"]
BYTES = [b"", b"a", b"\x00", b"ab", b"\x01"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from(NUMBERS),
    st.sampled_from(BIG),
    st.sampled_from(STRINGS),
    st.sampled_from(BYTES),
)
fields = st.one_of(
    scalars,
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(st.sampled_from(["x", "y"]), scalars, max_size=2),
)


@st.composite
def dict_values(draw: st.DrawFn) -> dict[str, Any]:
    """A dict holding each of a few fields three times out of four."""
    value: dict[str, Any] = {}
    for key in ("a", "b", "c", "d"):
        if draw(st.integers(0, 3)):
            if key == "d" and draw(st.integers(0, 3)):
                value[key] = {k: draw(fields) for k in ("e", "f") if draw(st.integers(0, 3))}
            else:
                value[key] = draw(fields)
    return value


any_values = st.one_of(dict_values(), dict_values(), dict_values(), scalars)

PATHS: list[tuple[str, ...]] = [("a",), ("b",), ("c",), ("d", "e"), ("d",)]
index_sets = st.lists(
    st.lists(st.sampled_from(PATHS), min_size=1, max_size=3, unique=True),
    min_size=1,
    max_size=3,
).map(lambda defs: {f"i{n}": [list(p) for p in paths] for n, paths in enumerate(defs)})

RANGE_BOUNDS: dict[str, list[Any]] = {
    "number": [-2, -1, 0, 1, 2, 0.5, 1.0, math.nan, math.inf, -math.inf, 2**53],
    "string": STRINGS,
    "bytes": BYTES,
    "list": [[], [0], [1, "a"], ["a"], [None], [1]],
}


@st.composite
def ranges(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(sorted(RANGE_BOUNDS)))
    ops = draw(st.lists(st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), min_size=1, max_size=2))
    return {op: draw(st.sampled_from(RANGE_BOUNDS[kind])) for op in ops}


simple_leaves = st.one_of(
    scalars,
    st.lists(scalars, max_size=2),
    fields.map(lambda x: {"$eq": x}),
    fields.map(lambda x: {"$ne": x}),
    ranges(),
    ranges(),
    st.sampled_from(["", "a", b"", b"a", [], [1], ["a"], [None]]).map(lambda p: {"$prefix": p}),
    st.lists(fields, min_size=1, max_size=3).map(lambda xs: {"$in": xs}),
    st.sampled_from(KIND_NAMES).map(lambda t: {"$is": t}),
    st.booleans().map(lambda b: {"$truthy": b}),
    st.builds(dict),  # `{}`, a fresh one each time: rules get nested into
    st.builds(lambda r: [r], ranges()),
    st.builds(lambda x, r: {"$eq": x, **r}, st.sampled_from(NUMBERS), ranges()),
    st.builds(lambda t, r: {"$is": t, **r}, st.sampled_from(KIND_NAMES), ranges()),
)
leaves = st.one_of(simple_leaves, simple_leaves.map(lambda r: {"$not": r}))


def _put(rule: dict[str, Any], path: Sequence[str], leaf: Any) -> None:
    """Set ``leaf`` at ``path`` in a nested filter dict, unless a rule already stands there.

    Dicts on the way are copied, never changed in place: they may be drawn values that
    hypothesis shares between examples.
    """
    node = rule
    for step in path[:-1]:
        child = node.get(step, {})
        if not isinstance(child, dict) or any(k.startswith("$") for k in child):
            return
        node[step] = child = dict(child)
        node = child
    node.setdefault(path[-1], leaf)


@st.composite
def filters(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(leaves)  # a rule on the whole value
    rule: dict[str, Any] = {}
    for path in draw(st.lists(st.sampled_from(PATHS), max_size=3, unique=True)):
        _put(rule, path, draw(leaves))
    return rule


MAP_RULES: list[Any] = [
    "a",
    ["d", "e"],
    True,
    {"x": "a", "y": ["d", "e"]},
    {"a": True, "b": True},
    ["a", 0],
    {"c": True},
]
SORT_PATHS: list[Any] = ["a", "b", ["d", "e"], "c", True]
REDUCE_RULES: list[Any] = [
    {"$count": True},
    {"$sum": "a"},
    {"$product": "b"},
    {"$min": "a"},
    {"$max": ["d", "e"]},
    {"$collect": "c"},
    {"n": {"$count": True}, "s": {"$sum": "b"}},
    {"a": True, "n": {"$count": True}},
    {"k": ["d", "e"], "c": {"$collect": "b"}, "hi": {"$max": "a"}},
    {"a": True, "b": True},
]


@st.composite
def queries(draw: st.DrawFn) -> list[dict[str, Any]]:
    stages: list[dict[str, Any]] = []
    if draw(st.integers(0, 4)):
        stages.append({"$filter": draw(filters())})
    if draw(st.booleans()):
        stages.append({"$filter": draw(filters())})
    tail = draw(st.sampled_from(["none", "map", "reduce", "sort", "map-sort", "sort-reduce"]))
    sort = {
        "$sort": [
            {"$reverse": p} if draw(st.booleans()) and draw(st.booleans()) else p
            for p in draw(st.lists(st.sampled_from(SORT_PATHS), min_size=1, max_size=2))
        ]
    }
    if tail in ("map", "map-sort"):
        stages.append({"$map": draw(st.sampled_from(MAP_RULES))})
    if tail in ("sort", "map-sort", "sort-reduce"):
        stages.append(sort)
    if tail in ("reduce", "sort-reduce"):
        rule = draw(st.sampled_from(REDUCE_RULES))
        stages.append({"$reduce": rule})
        if tail == "reduce" and "n" in rule and draw(st.booleans()):
            stages.append({"$sort": [{"$reverse": "n"}]})  # ties keep the groups' order
    return stages


def _one_kind(rule: dict[str, Any]) -> bool:
    try:
        range_kind(list(rule.items()), "query")
    except QueryError:
        return False
    return True


def _steps(path: Sequence[str]) -> Any:
    return path[0] if len(path) == 1 else list(path)


@st.composite
def targeted_query(
    draw: st.DrawFn, values: list[Any], indexes: dict[str, list[list[str]]]
) -> list[dict[str, Any]]:
    """A query aimed at one index: equalities on a stored record's fields, then maybe a range,
    then a sort by the following fields or a tail reading indexed (or nearby) paths, so that
    plans use indexes, skip sorts and cover. Hypothesis favours the first of sampled options,
    so the telling ones come first."""
    index = draw(st.sampled_from(sorted(indexes)))
    paths = [tuple(p) for p in indexes[index]]
    record = draw(st.sampled_from(values)) if values else {}
    rule: dict[str, Any] = {}
    # Walk the index: equalities on the record's fields, then maybe a range, then maybe stop.
    # (equalities, then a range?): hypothesis favours the first shapes, so they come first.
    shapes = [(n, True) for n in range(len(paths))] + [(n, False) for n in range(len(paths) + 1)]
    n_eq, with_range = draw(st.sampled_from(shapes))
    for path in paths[:n_eq]:
        x = get_path(record, path)
        if x is MISSING:
            x = draw(scalars)
        form = draw(st.sampled_from(["$eq", "literal", "$in"]))
        if form == "literal" and not isinstance(x, dict):  # a dict literal is a dict *rule*
            _put(rule, path, x)
        else:
            _put(rule, path, {"$in": [x]} if form == "$in" else {"$eq": x})
    if with_range:
        # Bounds at the record's own value (which the equalities above keep), or another's.
        present = [get_path(v, paths[n_eq]) for v in [record, *values]]
        ordered = [x for x in present if is_number(x) or isinstance(x, (str, bytes, list))]
        kind = draw(st.sampled_from(["bound", "bound", "bound", "prefix", "is", "any"]))
        if kind in ("bound", "prefix") and ordered:
            x = draw(st.sampled_from(ordered))
            if kind == "prefix" and not is_number(x):
                leaf = {"$prefix": x[: draw(st.integers(0, 2))]}
            else:
                ops = draw(st.sampled_from(["$gte", "$lte", "$gt", "$lt"]))
                leaf = {ops: x}
                other = draw(ranges())
                if draw(st.booleans()) and _one_kind({**other, **leaf}):
                    leaf = {**other, **leaf}  # a second bound
        elif kind == "is":
            x = draw(st.sampled_from(present)) if present else MISSING
            leaf = {"$is": draw(st.sampled_from(["undefined", kind_of(x)]))}
        else:
            leaf = draw(st.one_of(ranges(), leaves))
        _put(rule, paths[n_eq], leaf)
    if draw(st.sampled_from([True, False])):
        # Rules that accept MISSING on an indexed path: a key cannot tell a missing field from
        # a non-dict value, so these must not be answered from the keys alone.
        accepting = [{"$is": "undefined"}, {"$ne": 0}, {"$truthy": False}, {"$not": {"$gt": 0}}]
        _put(rule, draw(st.sampled_from(paths)), draw(st.sampled_from(accepting)))
    if draw(st.sampled_from([False, False, False, True])):
        _put(rule, draw(st.sampled_from(PATHS)), draw(leaves))
    stages: list[dict[str, Any]] = [{"$filter": rule}]
    if draw(st.sampled_from([False, False, False, True])):
        stages.append({"$filter": draw(filters())})
    tail = draw(
        st.sampled_from(
            ["sort", "reduce", "sort-reverse", "group", "other", "sort-part", "map", "none"]
        )
    )
    own = st.sampled_from([_steps(p) for p in paths])
    if tail.startswith("sort"):
        # The fields after the equalities: the index order is the sort's (skipped) order...
        sort: list[Any] = [_steps(p) for p in paths[n_eq:] or paths]
        if tail == "sort-part":
            # ...or only a part of it, or another path: the sort must still run.
            sort = sort[: draw(st.integers(1, len(sort)))]
            if draw(st.booleans()):
                sort.insert(0, draw(st.sampled_from(SORT_PATHS)))
        if tail == "sort-reverse":
            sort[-1] = {"$reverse": sort[-1]}
        stages.append({"$sort": sort})
    elif tail == "map":
        stages.append({"$map": draw(st.one_of(own, own.map(lambda p: {"out": p})))})
    elif tail == "reduce":
        reducer = draw(st.sampled_from(["$count", "$sum", "$min", "$max", "$collect"]))
        stages.append({"$reduce": {reducer: True if reducer == "$count" else draw(own)}})
    elif tail == "group":
        group = {"g": draw(own), "n": {"$count": True}, "m": {"$max": draw(own)}}
        stages.append({"$reduce": group})
    elif tail == "other":
        # Paths near the indexed ones (a parent, a sibling), which the keys do not hold.
        nearby = st.sampled_from(["d", ["d", "f"], "a", "b", "c", ["d", "e"], True])
        stages.append(
            draw(
                st.sampled_from(
                    [
                        {"$map": draw(nearby)},
                        {"$reduce": {"$collect": draw(nearby)}},
                        {"$reduce": {"g": draw(nearby), "n": {"$count": True}}},
                        {"$sort": [draw(nearby)]},
                    ]
                )
            )
        )
    return stages


@st.composite
def cases(draw: st.DrawFn) -> tuple[Any, ...]:
    """Values, indexes, a few queries over them, a limit, and whether keys come with hints."""
    values = draw(st.lists(any_values, min_size=8, max_size=30))
    # Values without the indexed fields for reasons a key cannot tell apart: not a dict, a
    # dict without the key, an enclosing field that is no dict.
    values += draw(st.sampled_from([[7, {}, {"d": "x"}], [], ["s"], [{"d": {}}, None]]))
    indexes = draw(index_sets)
    query_st = st.one_of(targeted_query(values, indexes), queries())
    batch = draw(st.lists(query_st, min_size=3, max_size=6))
    limit = draw(st.one_of(st.integers(0, 6), st.none()))
    return values, indexes, batch, limit, draw(st.booleans())


def check_exact(query: Any, values: Sequence[Any], memory: MemoryIndexes) -> None:
    """An exact plan's key range holds exactly the records its first filter matches."""
    parsed = parse_query(query)
    plan = plan_query(parsed, memory.defs)
    if not plan.exact or plan.index is None:
        return
    entries = memory.entries[plan.index]
    in_range = {
        seq_of(k)
        for k, _ in entries
        if k >= plan.lower and (plan.upper is None or k < plan.upper)
    }
    first = parsed.first_filter
    matching = {seq for seq, v in enumerate(values) if first is None or first.match(v)}
    assert in_range == matching, (query, plan.explain())


def check_case(case: tuple[Any, ...]) -> None:
    values, indexes, batch, limit, hints = case
    memory = MemoryIndexes(indexes, values)
    for query in batch:
        check_exact(query, values, memory)
        for reverse in (False, True):
            for lim in (None, limit):
                check_same(query, values, indexes, reverse, lim, hints, memory)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_indexed_run_equals_full_scan(case: tuple[Any, ...]) -> None:
    check_case(case)


@pytest.mark.slow
@settings(max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_indexed_run_equals_full_scan_many(case: tuple[Any, ...]) -> None:
    check_case(case)
