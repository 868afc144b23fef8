"""Bad input, fuzzed (DESIGN.md promise 5): queries, values, read options and user view
functions drawn at random. Each either works or gets a clear FlumeError of the right kind, and
leaves the log and the other views as they were.

Example counts are bounded (a few hundred per property) so that this runs in CI; multiply them
with the environment variable ``FLUME_FUZZ_SCALE`` (e.g. 20) for a long hunt.
"""

from __future__ import annotations

import datetime
import decimal
import math
import os
import tempfile
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

import flume
from flume import codec
from flume.errors import (
    EncodeError,
    FlumeError,
    InvalidArgumentError,
    InvalidTypeError,
    QueryError,
    ViewError,
)
from flume.logs import MemoryLog
from flume.query import parse_query
from flume.views import Index, Query, Reduce

# Examples per property: a few hundred in CI; FLUME_FUZZ_SCALE=20 for a long hunt.
FUZZ_SCALE = float(os.environ.get("FLUME_FUZZ_SCALE", "1"))


def fuzz(examples: int = 300) -> settings:
    return settings(
        deadline=None,
        max_examples=max(1, int(examples * FUZZ_SCALE)),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# -- strategies ------------------------------------------------------------------------------

OPERATORS = [
    "$filter", "$map", "$reduce", "$sort", "$gt", "$gte", "$lt", "$lte", "$eq", "$ne", "$in",
    "$prefix", "$is", "$truthy", "$not", "$count", "$sum", "$product", "$min", "$max",
    "$collect", "$reverse", "$unknown", "$",
]
WORDS = ["author", "ts", "type", "value", "tags", "n", "null", "number", "string", "undefined",
         "object", "array", "boolean", "bytes", "@a", "post", ""]
INT_EDGES = [0, 1, -1, 2**63 - 1, -(2**63), 2**64 - 1, 2**53 + 1, -(2**53) - 1]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.sampled_from(INT_EDGES),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(WORDS),
    st.binary(max_size=8),
)
# JSON-like data, with the words and operators of the query language mixed in, and the odd
# thing JSON does not have (bytes, NaN, ints past 64 bits, non-string keys).
json_like = st.recursive(
    st.one_of(scalars, st.sampled_from(OPERATORS), st.integers(min_value=-(2**70), max_value=2**70)),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(OPERATORS + WORDS), st.text(max_size=4)), children, max_size=4),
        st.dictionaries(st.one_of(st.integers(-3, 3), st.none(), st.binary(max_size=2)), children, max_size=2),
    ),
    max_leaves=20,
)
stage = st.one_of(
    st.builds(lambda op, rule: {op: rule}, st.sampled_from(["$filter", "$map", "$reduce", "$sort"]), json_like),
    json_like,
)
# Queries shaped like real ones, so that many get past the parser into planning and execution.
path = st.one_of(st.sampled_from(WORDS[:6]), st.lists(st.sampled_from(WORDS[:6] + ["text", "b"]), min_size=1, max_size=3))
leaf = st.one_of(
    scalars,
    st.builds(lambda op, v: {op: v}, st.sampled_from(["$gt", "$gte", "$lt", "$lte", "$eq", "$ne"]), scalars),
    st.builds(lambda a, b: {"$gte": a, "$lt": b}, scalars, scalars),
    st.builds(lambda v: {"$in": v}, st.lists(scalars, max_size=3)),
    st.builds(lambda v: {"$prefix": v}, st.one_of(st.text(max_size=2), st.binary(max_size=2), st.lists(scalars, max_size=2))),
    st.builds(lambda v: {"$is": v}, st.sampled_from(["null", "boolean", "number", "string", "bytes", "array", "object", "undefined", "nope"])),
    st.builds(lambda v: {"$truthy": v}, st.one_of(st.booleans(), scalars)),
)
filter_rule = st.recursive(
    st.dictionaries(st.sampled_from(WORDS[:6]), leaf, max_size=3),
    lambda inner: st.one_of(
        st.dictionaries(st.sampled_from(WORDS[:6]), st.one_of(leaf, inner), max_size=3),
        st.builds(lambda r: {"$not": r}, inner),
    ),
    max_leaves=6,
)
map_rule = st.one_of(
    st.booleans(), st.sampled_from(WORDS[:6]), st.integers(-2, 2), path,
    st.dictionaries(st.text(max_size=3), st.one_of(st.just(True), path), max_size=3),
)
reducer = st.builds(
    lambda op, p: {op: p},
    st.sampled_from(["$count", "$sum", "$product", "$min", "$max", "$collect"]),
    st.one_of(st.just(True), path),
)
reduce_rule = st.one_of(
    reducer,
    st.dictionaries(st.text(max_size=3), st.one_of(reducer, path, st.just(True)), min_size=1, max_size=3),
)
sort_rule = st.lists(st.one_of(path, st.builds(lambda p: {"$reverse": p}, path)), max_size=3)
real_stage = st.one_of(
    st.builds(lambda r: {"$filter": r}, filter_rule),
    st.builds(lambda r: {"$map": r}, map_rule),
    st.builds(lambda r: {"$reduce": r}, reduce_rule),
    st.builds(lambda r: {"$sort": r}, sort_rule),
)
queries = st.one_of(
    json_like, st.lists(stage, max_size=4), stage, filter_rule, st.lists(real_stage, max_size=4)
)

# Values flume stores exactly: every storable type, nested, with non-string dict keys.
key_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=True), st.text(max_size=6), st.binary(max_size=6),
)
storable = st.recursive(
    st.one_of(scalars, st.text(), st.binary()),
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(st.text(max_size=6), children, max_size=5),
        st.dictionaries(key_scalars, children, max_size=4),
        st.dictionaries(st.tuples(key_scalars, key_scalars), children, max_size=2),
    ),
    max_leaves=30,
)


class Opaque:
    def __repr__(self) -> str:
        return "<Opaque>"


def _deep(n: int) -> list[Any]:
    out: list[Any] = []
    inner = out
    for _ in range(n):
        inner.append([])
        inner = inner[0]
    return out


def _self_referencing() -> list[Any]:
    loop: list[Any] = [1]
    loop.append(loop)
    return loop


# Things flume cannot store, each one hidden somewhere inside a storable value.
poisons = st.one_of(
    st.integers(min_value=2**64, max_value=2**80),
    st.integers(min_value=-(2**80), max_value=-(2**63) - 1),
    st.text(st.characters(categories=["Cs"]), min_size=1, max_size=3),
    st.builds(set, st.lists(st.integers(), max_size=2)),
    st.builds(Opaque),
    st.just(complex(1, 2)),
    st.just(decimal.Decimal("1.5")),
    st.just(datetime.datetime(2020, 1, 1)),
    st.just(datetime.date(2020, 1, 1)),
    st.just(_deep(100_000)),
    st.builds(_self_referencing),
    st.builds(lambda: {frozenset([1]): 1}),
    st.builds(lambda s: {s: 1}, st.text(st.characters(categories=["Cs"]), min_size=1, max_size=2)),
    st.just(range(3)),
    st.just(print),
)


@st.composite
def poisoned(draw: st.DrawFn) -> Any:
    """A storable value with one unstorable thing put somewhere inside it."""
    value = draw(poisons)
    for _ in range(draw(st.integers(0, 3))):
        sibling = draw(storable)
        if draw(st.booleans()):
            value = [sibling, value] if draw(st.booleans()) else [value, sibling]
        else:
            value = {"ok": sibling, "bad": value}
    return value


def same(a: Any, b: Any) -> bool:
    """Exactly equal: same types all the way down (bool is not int), NaN equals NaN, -0.0 is
    not 0.0, dicts item by item in order. (A loop, not recursion: values nest deeply.)"""
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if type(x) is not type(y):
            return False
        if isinstance(x, float):
            if math.isnan(x) or math.isnan(y):
                if not (math.isnan(x) and math.isnan(y)):
                    return False
            elif x != y or math.copysign(1, x) != math.copysign(1, y):
                return False
        elif isinstance(x, (list, tuple)):
            if len(x) != len(y):
                return False
            stack.extend(zip(x, y))
        elif isinstance(x, dict):
            if len(x) != len(y):
                return False
            for (k1, v1), (k2, v2) in zip(x.items(), y.items()):
                stack.extend([(k1, k2), (v1, v2)])
        elif x != y:
            return False
    return True


# -- databases -------------------------------------------------------------------------------

SAMPLE = [
    {"author": f"@{'abc'[i % 3]}", "ts": i, "type": ["post", "vote", None, 7][i % 4], "n": i * 1.5,
     "tags": ["x", i % 5], "value": {"text": "t" * (i % 4), "b": bytes([i % 256])}}
    for i in range(60)
] + [None, 1, "str", b"bytes", [1, 2], {"author": 5}, {"ts": float("nan")}, {"ts": 2**64 - 1},
     {"author": {"nested": True}}, {"type": [1, {"a": None}]}]
QUERY_INDEXES = {"aut": [["author"], ["ts"]], "typ": [["type"], ["ts"]], "val": [["value", "text"]]}


def sample_db(db: flume.Flume) -> flume.Flume:
    db.use("count", Reduce(lambda acc, v: acc + 1, initial=0))
    db.use("by_ts", Index(lambda v: v.get("ts") if isinstance(v, dict) and isinstance(v.get("ts"), int) else None))
    db.use("q", Query(indexes=QUERY_INDEXES))
    db.append_many(SAMPLE)
    for view in db.views.values():
        view.ready(timeout=30)
    return db


_dbs: dict[str, flume.Flume] = {}


def shared_db(kind: str) -> flume.Flume:
    """One database per kind for the whole module (hypothesis calls the test many times)."""
    if kind not in _dbs:
        if kind == "memory":
            _dbs[kind] = sample_db(flume.Flume(MemoryLog()))
        else:
            path = tempfile.mkdtemp(prefix="flume-fuzz-")
            _dbs[kind] = sample_db(flume.open(os.path.join(path, "db"), sync=False))
    return _dbs[kind]


@pytest.fixture(scope="module", autouse=True)
def _close_shared() -> Any:
    yield
    for db in _dbs.values():
        db.close()
    _dbs.clear()


def state(db: flume.Flume) -> tuple[Any, ...]:
    """What must not change: the log and the answers of the views."""
    return (
        db.since.value,
        list(db.stream(values=False)),
        db.count.get(),
        [(e.key, e.seq) for e in db.by_ts.read()],
        [e.seq for e in db.q.read(None, seqs=True)],
    )


# -- queries ---------------------------------------------------------------------------------


def run_query(db: flume.Flume, query: Any, reverse: bool, limit: int | None) -> None:
    try:
        parsed = parse_query(query)
    except QueryError:
        parsed = None
    try:
        explained = db.q.explain(query)
        assert parsed is not None, "explain() accepted a query parse_query() refused"
        assert isinstance(explained, dict)
    except QueryError:
        assert parsed is None, "explain() refused a query parse_query() accepted"
    try:
        out = list(db.q.read(query, reverse=reverse, limit=limit))
    except QueryError as e:
        assert parsed is None, f"read() refused a query parse_query() accepted: {e}"
        assert e.path.startswith("query")
        event("refused")
        return
    assert parsed is not None, "read() accepted a query parse_query() refused"
    event("accepted, with results" if out else "accepted, empty")
    if limit is not None:
        assert len(out) <= limit


@fuzz()
@given(query=queries, reverse=st.booleans(), limit=st.one_of(st.none(), st.integers(0, 5)))
def test_a_query_gives_a_result_or_a_query_error(query: Any, reverse: bool, limit: int | None) -> None:
    run_query(shared_db("memory"), query, reverse, limit)


@fuzz(100)
@given(query=queries, reverse=st.booleans())
def test_a_query_on_disk_gives_a_result_or_a_query_error(query: Any, reverse: bool) -> None:
    db = shared_db("disk")
    before = db.since.value
    run_query(db, query, reverse, None)
    assert db.since.value == before


@fuzz(200)
@given(query=st.one_of(queries, st.builds(Opaque), st.builds(set), st.just((1, 2)), st.just(b"\x00")))
def test_parse_query_raises_only_query_error(query: Any) -> None:
    try:
        parse_query(query)
    except QueryError as e:
        assert isinstance(e, ValueError) and isinstance(e, FlumeError)
        assert e.path.startswith("query") and str(e)


# -- values ----------------------------------------------------------------------------------


def _disk_log_db() -> flume.Flume:
    if "values" not in _dbs:
        path = tempfile.mkdtemp(prefix="flume-fuzz-values-")
        db = flume.open(os.path.join(path, "db"), sync=False)
        db.use("count", Reduce(lambda acc, v: acc + 1, initial=0))
        _dbs["values"] = db
    return _dbs["values"]


def append_or_refuse(db: flume.Flume, value: Any, expect_ok: bool | None) -> None:
    before = db.since.value
    last = db.get(before) if before >= 0 else None
    try:
        seq = db.append(value)
    except EncodeError as e:
        assert expect_ok is not True, f"a storable value was refused: {e}"
        assert "cannot store" in str(e)
        assert db.since.value == before, "a refused append moved since"
        if before >= 0:
            assert same(db.get(before), last)
        return
    assert expect_ok is not False, f"an unstorable value was stored: {value!r:.200}"
    assert seq == before + 1 == db.since.value
    assert same(db.get(seq), value), f"{value!r:.200} came back as {db.get(seq)!r:.200}"


@fuzz()
@given(value=storable)
def test_a_storable_value_round_trips_exactly(value: Any) -> None:
    append_or_refuse(_disk_log_db(), value, expect_ok=True)


@fuzz()
@given(value=poisoned())
def test_an_unstorable_value_raises_encode_error_and_writes_nothing(value: Any) -> None:
    append_or_refuse(_disk_log_db(), value, expect_ok=False)


@fuzz(200)
@given(values=st.lists(storable, min_size=1, max_size=6), bad=poisoned(), data=st.data())
def test_a_batch_with_one_unstorable_value_writes_nothing(values: list[Any], bad: Any, data: Any) -> None:
    db = _disk_log_db()
    at = data.draw(st.integers(0, len(values)))
    batch = values[:at] + [bad] + values[at:]
    before = db.since.value
    with pytest.raises(EncodeError, match=f"item {at} of the batch"):
        db.append_many(batch)
    assert db.since.value == before
    last = db.append_many(values)
    assert last == before + len(values)
    assert all(same(db.get(before + 1 + i), v) for i, v in enumerate(values))


EDGES: list[tuple[str, Any, bool]] = [
    ("max uint64", 2**64 - 1, True),
    ("min int64", -(2**63), True),
    ("uint64 + 1", 2**64, False),
    ("int64 - 1", -(2**63) - 1, False),
    ("2**53 + 1", 2**53 + 1, True),
    ("NaN", float("nan"), True),
    ("infinities", [float("inf"), float("-inf")], True),
    ("negative zero", -0.0, True),
    ("smallest subnormal", 5e-324, True),
    ("lone surrogate", "\ud800", False),
    ("surrogate pair halves", "a\udc00b", False),
    ("surrogate dict key", {"\udfff": 1}, False),
    ("astral plane", "\U0001f600\U00010000", True),
    ("NUL in strings", "a\x00b", True),
    ("non-string keys", {1: "a", b"k": 2, None: 3, 2.5: 4, False: 5, -(2**63): 6}, True),
    ("tuple keys", {(1, "x", b"y"): [1], ((1, 2), None): {}}, True),
    ("NaN key", {float("nan"): 1}, True),
    ("nested as deep as the limit", _deep(codec.MAX_DEPTH - 1), True),
    ("nested 100000 deep", _deep(100_000), False),
    ("contains itself", _self_referencing(), False),
    ("set", {1, 2}, False),
    ("frozenset key", {frozenset(): 1}, False),
    ("object", Opaque(), False),
    ("complex", 1j, False),
]


@pytest.mark.parametrize("name, value, ok", EDGES, ids=[e[0] for e in EDGES])
def test_value_edges(name: str, value: Any, ok: bool) -> None:
    with flume.open(tempfile.mkdtemp(prefix="flume-edge-") + "/db") as db:
        db.append("before")
        append_or_refuse(db, value, expect_ok=ok)
        if ok:
            assert same(list(db.stream(gt=0, seqs=False)), [value])


@pytest.mark.timeout(600)
def test_values_of_tens_of_megabytes_round_trip_and_index(tmp_path: Any) -> None:
    big_bytes = os.urandom(30 * 1024 * 1024)
    big_str = "é€😀x" * (5 * 1024 * 1024)  # 5M chars, ~50 MB of UTF-8
    with flume.open(tmp_path / "db") as db:
        db.use("sizes", Reduce(lambda acc, v: acc + len(v["blob"]), initial=0))
        db.use("kinds", Index(lambda v: v["kind"]))
        db.use("q", Query(indexes={"kind": [["kind"]]}))
        db.append({"kind": "small", "blob": b"x"})
        assert db.append({"kind": "bytes", "blob": big_bytes}) == 1
        assert db.append_many([{"kind": "str", "blob": big_str}, {"kind": "small", "blob": "y"}]) == 3
        assert db.get(1)["blob"] == big_bytes
        assert db.get(2)["blob"] == big_str
        assert db.sizes.get() == 1 + len(big_bytes) + len(big_str) + 1
        assert [e.seq for e in db.kinds.read(prefix="small")] == [0, 3]
        assert [v["kind"] for v in db.q.read({"kind": {"$in": ["bytes", "str"]}})] == ["bytes", "str"]
        # A value too big to be worth storing is still refused cleanly when it is unstorable.
        with pytest.raises(EncodeError):
            db.append({"blob": big_bytes, "bad": {1, 2}})
        assert db.since.value == 3
    with flume.open(tmp_path / "db") as db:
        assert db.get(1)["blob"] == big_bytes and db.get(2)["blob"] == big_str


# -- read options ----------------------------------------------------------------------------

anything = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 80), st.integers(min_value=2**63, max_value=2**70),
    st.floats(), st.text(max_size=3), st.binary(max_size=2), st.lists(st.integers(), max_size=2),
    st.builds(Opaque), st.builds(set),
)
OPTION_ERRORS = (InvalidTypeError, InvalidArgumentError)


def options(names: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional={n: anything for n in names})


def call_read(make: Callable[[], Any], live: Any) -> None:
    """Make a read; it must either give a closeable iterator or refuse with an option error."""
    try:
        stream = make()
    except OPTION_ERRORS as e:
        assert isinstance(e, FlumeError) and str(e)
        return
    try:
        if live is True:
            return  # would wait for new entries: its options were checked when it was made
        list(stream)
    finally:
        stream.close()


@fuzz()
@given(kw=options(["gt", "gte", "lt", "lte", "reverse", "live", "old", "limit", "seqs", "values"]))
def test_stream_options_are_checked(kw: dict[str, Any]) -> None:
    db = shared_db("memory")
    before = state(db)
    call_read(lambda: db.stream(**kw), kw.get("live"))
    assert state(db) == before


@fuzz()
@given(
    kw=options(["reverse", "live", "old", "limit"]),
    bounds=st.fixed_dictionaries({}, optional={n: st.one_of(anything, json_like) for n in ["gt", "gte", "lt", "lte", "prefix"]}),
)
def test_index_read_options_are_checked(kw: dict[str, Any], bounds: dict[str, Any]) -> None:
    db = shared_db("memory")
    before = state(db)
    call_read(lambda: db.by_ts.read(**kw, **bounds), kw.get("live"))
    assert state(db) == before


@fuzz()
@given(kw=options(["reverse", "live", "old", "limit", "seqs"]))
@example(kw={"limit": 2**63})  # islice() refused it: ValueError
def test_query_read_options_are_checked(kw: dict[str, Any]) -> None:
    db = shared_db("memory")
    before = state(db)
    call_read(lambda: db.q.read({"author": "@a"}, **kw), kw.get("live"))
    assert state(db) == before


@fuzz(200)
@given(a=st.integers(-5, 100), b=st.integers(-5, 100), low=st.sampled_from(["gt", "gte"]),
       high=st.sampled_from(["lt", "lte"]))
def test_inverted_ranges_raise_invalid_argument_error(a: int, b: int, low: str, high: str) -> None:
    db = shared_db("memory")
    lo, hi = max(a, b), min(a, b)
    for read in (db.stream, db.by_ts.read):
        if lo > hi:
            with pytest.raises(InvalidArgumentError, match="inverted range"):
                read(**{low: lo, high: hi})
        else:
            list(read(**{low: lo, high: hi}))


# -- user view functions -----------------------------------------------------------------------


class Boom(Exception):
    pass


raising = st.sampled_from([
    ValueError("bad"), KeyError("k"), ZeroDivisionError(), Boom("custom"), RecursionError(),
    TypeError("t"), SystemExit(3), KeyboardInterrupt(), StopIteration(), MemoryError(),
])
wrong_returns = st.one_of(
    json_like,
    poisons.filter(lambda p: not (isinstance(p, list) and len(p) == 1 and p[0] == [])),
    st.builds(lambda p: (1, p), poisons),
    st.builds(lambda p: [p], poisons),
    st.just(iter([1, 2])),
    st.just(float("nan")),
    st.just(b"\xff" * 3),
)


@st.composite
def behaviours(draw: st.DrawFn) -> tuple[int, Any, bool]:
    """(the entry at which the function misbehaves, an exception to raise or a value to
    return, whether to raise)."""
    at = draw(st.integers(0, 12))
    if draw(st.booleans()):
        return at, draw(raising), True
    return at, draw(wrong_returns), False


def _misbehaving(at: int, what: Any, raises: bool, normal: Callable[[Any], Any]) -> Callable[..., Any]:
    def fn(*args: Any) -> Any:
        value = args[-1]
        if value["i"] == at:
            if raises:
                raise what
            return what
        return normal(*args)

    return fn


def check_bad_view(db: flume.Flume, name: str, n: int) -> bool:
    """The misbehaving view either works or reports a ViewError naming itself; returns
    whether it failed."""
    view = db.views[name]
    try:
        view.ready(timeout=30)
    except ViewError as e:
        assert e.view == name and 0 <= e.seq < n and e.cause is not None
        assert name in str(e) and f"seq {e.seq}" in str(e)
        assert db.status()["views"][name]["state"] == "failed"
        return True
    return False


def check_others(db: flume.Flume, n: int) -> None:
    assert db.since.value == n - 1
    assert [v["i"] for v in db.stream(seqs=False)] == list(range(n))
    assert db.count.get(timeout=30) == n
    assert [e.key for e in db.ids.read()] == list(range(n))


@fuzz()
@given(behaviour=behaviours(), kind=st.sampled_from(["index", "reduce", "reduce-map"]),
       batched=st.booleans())
def test_a_misbehaving_view_function_fails_only_its_view(behaviour: Any, kind: str, batched: bool) -> None:
    at, what, raises = behaviour
    with flume.Flume(MemoryLog()) as db:
        db.use("count", Reduce(lambda acc, v: acc + 1, initial=0))
        db.use("ids", Index(lambda v: v["i"]))
        if kind == "index":
            bad: Any = Index(_misbehaving(at, what, raises, lambda v: v["i"]))
        elif kind == "reduce":
            bad = Reduce(_misbehaving(at, what, raises, lambda acc, v: acc + v["i"]), initial=0)
        else:
            bad = Reduce(lambda acc, item: [acc, item] if isinstance(acc, int) else acc,
                         map=_misbehaving(at, what, raises, lambda v: None), initial=0)
        db.use("bad", bad)
        values = [{"i": i} for i in range(10)]
        if batched:
            db.append_many(values)
        else:
            for v in values:
                db.append(v)
        failed = check_bad_view(db, "bad", 10)
        if raises and at < 10:
            assert failed, f"{what!r} raised by the function did not fail the view"
        check_others(db, 10)
        if failed:
            # Reads of the failed view say so; the others go on with new appends.
            with pytest.raises(ViewError):
                db.bad.read() if kind == "index" else db.bad.get()
            db.append_many([{"i": 10}, {"i": 11}])
            check_others(db, 12)
        else:
            read = db.bad.read if kind == "index" else db.bad.get
            result = read()
            if kind == "index":
                list(result)


@fuzz(60)
@given(behaviour=behaviours())
def test_a_misbehaving_view_function_on_disk_fails_only_its_view(behaviour: Any) -> None:
    at, what, raises = behaviour
    with flume.open(tempfile.mkdtemp(prefix="flume-fuzz-view-") + "/db", sync=False) as db:
        db.use("count", Reduce(lambda acc, v: acc + 1, initial=0))
        db.use("ids", Index(lambda v: v["i"]))
        db.use("q", Query(indexes={"i": [["i"]]}))
        db.use("bad", Index(_misbehaving(at, what, raises, lambda v: v["i"])))
        db.append_many([{"i": i} for i in range(10)])
        failed = check_bad_view(db, "bad", 10)
        check_others(db, 10)
        assert [v["i"] for v in db.q.read({"i": {"$gte": 5}})] == [5, 6, 7, 8, 9]
        if failed:
            db.append({"i": 10})
            check_others(db, 11)
